//! What the vendor typed and clicked, from the fast-path input PDUs it sent.
//!
//! Keys arrive as scancodes (set 1), which mean a character only through the client's
//! keyboard layout; the layout is the one the client announced (US and Japanese are mapped;
//! any other layout is decoded as US and says so). Unicode key events are taken as they are.
//! A line ends with Enter; Backspace removes the last character; keys pressed with Ctrl or
//! Alt are shortcuts, not text.

use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;

/// Something the vendor did, at `t_us` into the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A line of text, ended by Enter (or by the end of the recording).
    Line { t_us: u64, text: String },
    /// A mouse button pressed at (x, y).
    Click {
        t_us: u64,
        x: u16,
        y: u16,
        button: &'static str,
    },
}

/// The name of a Windows keyboard layout id, and whether it is decoded exactly.
pub fn layout_name(layout: u32) -> (&'static str, bool) {
    match layout & 0xFFFF {
        0x0409 => ("US (0x0409)", true),
        0x0411 => ("Japanese (0x0411)", true),
        _ => ("unknown, decoded as US", false),
    }
}

/// Turns input PDUs into [`Event`]s.
#[derive(Debug, Default)]
pub struct Decoder {
    japanese: bool,
    shift: bool,
    ctrl: bool,
    alt: bool,
    caps: bool,
    line: String,
    line_t: u64,
    events: Vec<Event>,
}

impl Decoder {
    pub fn new(keyboard_layout: u32) -> Self {
        Self {
            japanese: keyboard_layout & 0xFFFF == 0x0411,
            ..Self::default()
        }
    }

    /// Feeds one vendor → target PDU; anything that is not fast-path input is ignored.
    pub fn feed(&mut self, t_us: u64, pdu: &[u8]) {
        if pdu.first().is_none_or(|b| b & 0x03 != 0) {
            return;
        }
        let Ok(input) = ironrdp_pdu::decode::<FastPathInput>(pdu) else {
            return;
        };
        for event in input.input_events() {
            self.event(t_us, event);
        }
    }

    fn event(&mut self, t_us: u64, event: &FastPathInputEvent) {
        match event {
            FastPathInputEvent::KeyboardEvent(flags, code) => self.key(t_us, *flags, *code),
            FastPathInputEvent::UnicodeKeyboardEvent(flags, unit) => {
                if !flags.contains(KeyboardFlags::RELEASE)
                    && let Some(c) = char::from_u32(u32::from(*unit))
                {
                    self.typed(t_us, c);
                }
            }
            FastPathInputEvent::MouseEvent(m) if m.flags.contains(PointerFlags::DOWN) => {
                let button = if m.flags.contains(PointerFlags::LEFT_BUTTON) {
                    "left"
                } else if m.flags.contains(PointerFlags::RIGHT_BUTTON) {
                    "right"
                } else {
                    "middle"
                };
                self.events.push(Event::Click {
                    t_us,
                    x: m.x_position,
                    y: m.y_position,
                    button,
                });
            }
            FastPathInputEvent::SyncEvent(flags) => {
                self.caps =
                    flags.contains(ironrdp_pdu::input::fast_path::SynchronizeFlags::CAPS_LOCK);
            }
            _ => {}
        }
    }

    fn key(&mut self, t_us: u64, flags: KeyboardFlags, code: u8) {
        let down = !flags.contains(KeyboardFlags::RELEASE);
        match code {
            0x2A | 0x36 => self.shift = down,
            0x1D => self.ctrl = down,
            0x38 => self.alt = down,
            0x3A if down => self.caps = !self.caps,
            _ if !down => {}
            0x1C => self.end_line(t_us),
            0x0E => {
                self.line.pop();
            }
            _ if self.ctrl || self.alt => {}
            _ if flags.contains(KeyboardFlags::EXTENDED) => {
                // Keypad Enter and '/' are extended; arrows and the rest move, not type.
                if code == 0x35 {
                    self.typed(t_us, '/');
                }
            }
            _ => {
                if let Some(c) = self.character(code) {
                    self.typed(t_us, c);
                }
            }
        }
    }

    fn character(&self, code: u8) -> Option<char> {
        let (plain, shifted) = us(code)?;
        let (plain, shifted) = if self.japanese {
            japanese(code).unwrap_or((plain, shifted))
        } else {
            (plain, shifted)
        };
        let upper = if plain.is_ascii_alphabetic() {
            self.shift != self.caps
        } else {
            self.shift
        };
        Some(if upper { shifted } else { plain })
    }

    fn typed(&mut self, t_us: u64, c: char) {
        if c == '\r' || c == '\n' {
            return self.end_line(t_us);
        }
        if c.is_control() {
            return;
        }
        if self.line.is_empty() {
            self.line_t = t_us;
        }
        self.line.push(c);
    }

    fn end_line(&mut self, t_us: u64) {
        let text = self.line.trim().to_owned();
        self.line.clear();
        if !text.is_empty() {
            self.events.push(Event::Line { t_us, text });
        }
    }

    /// Everything decoded; a line not ended by Enter is included.
    pub fn finish(mut self) -> Vec<Event> {
        let t = self.line_t;
        self.end_line(t);
        self.events
    }
}

/// Scancode set 1 on a US layout: (plain, shifted).
fn us(code: u8) -> Option<(char, char)> {
    const ROW1: &[u8; 13] = b"1234567890-=\x00";
    const ROW1S: &[u8; 13] = b"!@#$%^&*()_+\x00";
    Some(match code {
        0x02..=0x0D => (
            char::from(ROW1[usize::from(code - 2)]),
            char::from(ROW1S[usize::from(code - 2)]),
        ),
        0x10..=0x19 => pair(b"qwertyuiop", code - 0x10),
        0x1A => ('[', '{'),
        0x1B => (']', '}'),
        0x1E..=0x26 => pair(b"asdfghjkl", code - 0x1E),
        0x27 => (';', ':'),
        0x28 => ('\'', '"'),
        0x29 => ('`', '~'),
        0x2B => ('\\', '|'),
        0x2C..=0x32 => pair(b"zxcvbnm", code - 0x2C),
        0x33 => (',', '<'),
        0x34 => ('.', '>'),
        0x35 => ('/', '?'),
        0x39 => (' ', ' '),
        0x0F => (' ', ' '),
        0x37 => ('*', '*'),
        0x4A => ('-', '-'),
        0x4E => ('+', '+'),
        0x47..=0x49 => num(code - 0x47 + 7),
        0x4B..=0x4D => num(code - 0x4B + 4),
        0x4F..=0x51 => num(code - 0x4F + 1),
        0x52 => ('0', '0'),
        0x53 => ('.', '.'),
        _ => return None,
    })
}

fn pair(row: &[u8], i: u8) -> (char, char) {
    let c = char::from(row.get(usize::from(i)).copied().unwrap_or(b'?'));
    (c, c.to_ascii_uppercase())
}

fn num(n: u8) -> (char, char) {
    let c = char::from(b'0' + n);
    (c, c)
}

/// Where the Japanese (JIS) layout differs from US.
fn japanese(code: u8) -> Option<(char, char)> {
    Some(match code {
        0x03 => ('2', '"'),
        0x07 => ('6', '&'),
        0x08 => ('7', '\''),
        0x09 => ('8', '('),
        0x0A => ('9', ')'),
        0x0B => ('0', '0'),
        0x0C => ('-', '='),
        0x0D => ('^', '~'),
        0x1A => ('@', '`'),
        0x1B => ('[', '{'),
        0x27 => (';', '+'),
        0x28 => (':', '*'),
        0x2B => (']', '}'),
        0x73 => ('\\', '_'),
        0x7D => ('\\', '|'),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::input::fast_path::FastPathInput;

    fn keys(events: Vec<FastPathInputEvent>) -> Vec<u8> {
        ironrdp_pdu::encode_vec(&FastPathInput::new(events).unwrap()).unwrap()
    }

    fn press(code: u8) -> [FastPathInputEvent; 2] {
        [
            FastPathInputEvent::KeyboardEvent(KeyboardFlags::empty(), code),
            FastPathInputEvent::KeyboardEvent(KeyboardFlags::RELEASE, code),
        ]
    }

    #[test]
    fn scancodes_become_lines_with_shift_backspace_and_layout() {
        let mut events = vec![];
        // "Ls -x" then Backspace, "a", Enter.
        events.push(FastPathInputEvent::KeyboardEvent(
            KeyboardFlags::empty(),
            0x2A,
        ));
        events.extend(press(0x26));
        events.push(FastPathInputEvent::KeyboardEvent(
            KeyboardFlags::RELEASE,
            0x2A,
        ));
        for c in [0x1F, 0x39, 0x0C, 0x2D, 0x0E, 0x1E] {
            events.extend(press(c));
        }
        events.extend(press(0x1C));
        let mut d = Decoder::new(0x0409);
        d.feed(5, &keys(events));
        assert_eq!(
            d.finish(),
            vec![Event::Line {
                t_us: 5,
                text: "Ls -a".into()
            }]
        );

        // Shift+2 is '@' on US and '"' on Japanese keyboards.
        let shifted_two = || {
            let mut e = vec![FastPathInputEvent::KeyboardEvent(
                KeyboardFlags::empty(),
                0x2A,
            )];
            e.extend(press(0x03));
            keys(e)
        };
        let mut us = Decoder::new(0x0409);
        us.feed(1, &shifted_two());
        let mut jp = Decoder::new(0x0411);
        jp.feed(1, &shifted_two());
        assert_eq!(
            us.finish(),
            vec![Event::Line {
                t_us: 1,
                text: "@".into()
            }]
        );
        assert_eq!(
            jp.finish(),
            vec![Event::Line {
                t_us: 1,
                text: "\"".into()
            }]
        );
    }
}
