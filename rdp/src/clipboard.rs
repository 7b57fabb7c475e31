//! Clipboard text that crosses a remote desktop's `cliprdr` channel, read from the recorded
//! PDUs ([MS-RDPECLIP]): a side asks for a format (Format Data Request), the other answers
//! with the data (Format Data Response). Text formats are decoded; others (files, images)
//! are only counted by the caller as opaque.
//!
//! Static virtual channel data arrives in chunks of at most 1600 bytes, each with a
//! `CHANNEL_PDU_HEADER` (total length, flags FIRST/LAST); chunks are joined per direction
//! up to [`MAX_MESSAGE`].

use crate::replay::Dir;

const CHANNEL_FLAG_FIRST: u32 = 0x01;
const CHANNEL_FLAG_LAST: u32 = 0x02;
const CB_FORMAT_DATA_REQUEST: u16 = 0x0004;
const CB_FORMAT_DATA_RESPONSE: u16 = 0x0005;
const CB_RESPONSE_OK: u16 = 0x0001;
const CF_TEXT: u32 = 1;
const CF_OEMTEXT: u32 = 7;
const CF_UNICODETEXT: u32 = 13;
/// Clipboard messages larger than this are not joined (the recording keeps them whole).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Text that crossed, and which way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossed {
    /// `ToTarget`: the vendor pasted it into the target; `FromTarget`: copied out of it.
    pub dir: Dir,
    pub text: String,
}

fn index(dir: Dir) -> usize {
    match dir {
        Dir::ToTarget => 0,
        Dir::FromTarget => 1,
    }
}

/// Follows one `cliprdr` channel.
#[derive(Debug, Default)]
pub struct Watch {
    /// The message being joined, per direction.
    joining: [Option<Vec<u8>>; 2],
    /// The format each direction last asked for.
    asked: [Option<u32>; 2],
}

impl Watch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the user data of one Send Data Request/Indication on the clipboard channel.
    pub fn feed(&mut self, dir: Dir, user_data: &[u8]) -> Option<Crossed> {
        let header = user_data.get(..8)?;
        let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let chunk = &user_data[8..];
        let slot = &mut self.joining[index(dir)];
        if flags & CHANNEL_FLAG_FIRST != 0 {
            *slot = Some(Vec::new());
        }
        let joined = slot.as_mut()?;
        if joined.len() + chunk.len() > MAX_MESSAGE {
            *slot = None;
            return None;
        }
        joined.extend_from_slice(chunk);
        if flags & CHANNEL_FLAG_LAST == 0 {
            return None;
        }
        let message = slot.take()?;
        self.message(dir, &message)
    }

    fn message(&mut self, dir: Dir, message: &[u8]) -> Option<Crossed> {
        let msg_type = u16::from_le_bytes([*message.first()?, *message.get(1)?]);
        let msg_flags = u16::from_le_bytes([*message.get(2)?, *message.get(3)?]);
        let len = u32::from_le_bytes(message.get(4..8)?.try_into().ok()?) as usize;
        let data = message.get(8..8 + len)?;
        match msg_type {
            CB_FORMAT_DATA_REQUEST => {
                self.asked[index(dir)] = Some(u32::from_le_bytes(data.get(..4)?.try_into().ok()?));
                None
            }
            CB_FORMAT_DATA_RESPONSE if msg_flags & CB_RESPONSE_OK != 0 => {
                // The answer is to what the other side asked.
                let other = match dir {
                    Dir::ToTarget => Dir::FromTarget,
                    Dir::FromTarget => Dir::ToTarget,
                };
                let format = self.asked[index(other)].take()?;
                let text = text(format, data)?;
                (!text.trim().is_empty()).then_some(Crossed { dir, text })
            }
            _ => None,
        }
    }
}

/// The text of clipboard data in `format`, up to its terminating NUL.
fn text(format: u32, data: &[u8]) -> Option<String> {
    match format {
        CF_UNICODETEXT => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        CF_TEXT | CF_OEMTEXT => {
            let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
            Some(String::from_utf8_lossy(&data[..end]).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One cliprdr message as the channel carries it, cut into chunks of `chunk` bytes.
    fn chunks(msg_type: u16, flags: u16, data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut message = msg_type.to_le_bytes().to_vec();
        message.extend_from_slice(&flags.to_le_bytes());
        message.extend_from_slice(&(data.len() as u32).to_le_bytes());
        message.extend_from_slice(data);
        let total = message.len() as u32;
        let parts: Vec<&[u8]> = message.chunks(chunk).collect();
        let n = parts.len();
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut f = 0;
                if i == 0 {
                    f |= CHANNEL_FLAG_FIRST;
                }
                if i == n - 1 {
                    f |= CHANNEL_FLAG_LAST;
                }
                let mut out = total.to_le_bytes().to_vec();
                out.extend_from_slice(&f.to_le_bytes());
                out.extend_from_slice(part);
                out
            })
            .collect()
    }

    #[test]
    fn unicode_text_pasted_by_the_vendor_is_read_across_chunks() {
        let mut w = Watch::new();
        // The target asks for CF_UNICODETEXT; the vendor answers, in small chunks.
        for c in chunks(
            CB_FORMAT_DATA_REQUEST,
            0,
            &CF_UNICODETEXT.to_le_bytes(),
            1600,
        ) {
            assert_eq!(w.feed(Dir::FromTarget, &c), None);
        }
        let mut data: Vec<u8> = "net stop 監視"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        data.extend_from_slice(&[0, 0]);
        let parts = chunks(CB_FORMAT_DATA_RESPONSE, CB_RESPONSE_OK, &data, 7);
        let (last, first) = parts.split_last().unwrap();
        for c in first {
            assert_eq!(w.feed(Dir::ToTarget, c), None);
        }
        assert_eq!(
            w.feed(Dir::ToTarget, last),
            Some(Crossed {
                dir: Dir::ToTarget,
                text: "net stop 監視".into()
            })
        );
        // A response nobody asked for, or a failed one, is no text.
        let again = chunks(CB_FORMAT_DATA_RESPONSE, CB_RESPONSE_OK, &data, 1600);
        assert_eq!(w.feed(Dir::ToTarget, &again[0]), None);
    }
}
