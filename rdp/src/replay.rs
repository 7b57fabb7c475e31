//! The screen at any moment of a recorded desktop, drawn with IronRDP's own decoders from
//! the PDUs the gateway relayed.
//!
//! The replayer reads the connection sequence from the recording itself (the Connect
//! Initial and Response, the Attach User Confirm, the Demand Active with its share id and
//! desktop size), then feeds every target → vendor PDU to an `ActiveStage` drawing into an
//! RGBA image. The gateway turned bulk compression off and withdrew the graphics pipeline,
//! so past the codecs' first messages the image is the whole state: a [`Snapshot`] of it,
//! laid over a replay of the recording's start, lets a later moment be drawn without
//! replaying everything before it.

use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::Action;
use ironrdp_pdu::rdp::capability_sets::CapabilitySet;
use ironrdp_pdu::rdp::headers::ShareControlPdu;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder};
use ironrdp_svc::StaticChannelSet;
use serde::{Deserialize, Serialize};

use crate::RdpError;
use crate::setup::{ClientSetup, ServerSetup};

/// Which way a recorded PDU went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToTarget,
    FromTarget,
}

/// What drawing needs from the connection sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub io_channel: u16,
    pub user_channel: u16,
    pub message_channel: Option<u16>,
    pub share_id: u32,
    pub width: u16,
    pub height: u16,
    /// The client's keyboard layout (for decoding input).
    pub keyboard_layout: u32,
}

/// The drawn screen at one moment, enough to go on drawing from there.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub activation: Activation,
    /// RGBA, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

/// Draws a recorded desktop.
#[derive(Default)]
pub struct Replayer {
    client: Option<ClientSetup>,
    server: Option<ServerSetup>,
    user_channel: Option<u16>,
    activation: Option<Activation>,
    stage: Option<ActiveStage>,
    image: Option<DecodedImage>,
    /// PDUs the decoders refused (drawn around, counted for the reviewer).
    pub undecoded: u64,
}

impl Replayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a snapshot's picture on the screen, to go on drawing from its moment.
    ///
    /// The replayer must first have been fed the recording up to its first drawn screen:
    /// codecs keep state from their first message (RemoteFX sends its channels and context
    /// once), which a picture alone does not restore.
    pub fn overlay(&mut self, snapshot: &Snapshot) -> Result<(), RdpError> {
        let a = &snapshot.activation;
        let expected = usize::from(a.width) * usize::from(a.height) * 4;
        if snapshot.rgba.len() != expected {
            return Err(RdpError::protocol(
                "snapshot",
                format!("{} bytes for {}x{}", snapshot.rgba.len(), a.width, a.height),
            ));
        }
        if self.activation.as_ref() != Some(a) {
            return Err(RdpError::protocol(
                "snapshot",
                "taken in another activation than the recording's start",
            ));
        }
        let (Some(stage), Some(image)) = (self.stage.as_mut(), self.image.as_mut()) else {
            return Err(RdpError::protocol("snapshot", "drawing has not started"));
        };
        let whole = ironrdp_pdu::geometry::ExclusiveRectangle {
            left: 0,
            top: 0,
            right: a.width,
            bottom: a.height,
        };
        stage
            .composite_rgba32(image, [(whole, snapshot.rgba.clone())])
            .map_err(|e| RdpError::protocol("snapshot", e))?;
        Ok(())
    }

    /// Whether drawing has started (the connection sequence is complete).
    pub fn active(&self) -> bool {
        self.stage.is_some()
    }

    /// The client's keyboard layout, once its Connect Initial was seen.
    pub fn layout(&self) -> Option<u32> {
        self.client
            .as_ref()
            .map(|c| c.keyboard_layout)
            .or_else(|| self.activation.as_ref().map(|a| a.keyboard_layout))
    }

    pub fn activation(&self) -> Option<&Activation> {
        self.activation.as_ref()
    }

    /// Feeds one recorded PDU. Returns whether the screen changed.
    pub fn feed(&mut self, dir: Dir, pdu: &[u8]) -> bool {
        match dir {
            Dir::ToTarget => {
                if self.client.is_none()
                    && let Some(setup) = crate::setup::read_connect_initial(pdu)
                {
                    self.client = Some(setup);
                }
                false
            }
            Dir::FromTarget => self.drawn(pdu),
        }
    }

    fn drawn(&mut self, pdu: &[u8]) -> bool {
        let action = crate::pdu::action_of(pdu);
        if action == Some(Action::X224) {
            if self.server.is_none() {
                if let Ok(setup) = crate::setup::connect_response(pdu) {
                    self.server = Some(setup);
                }
                return false;
            }
            if self.user_channel.is_none() {
                self.user_channel = crate::setup::attach_user_confirm(pdu);
                return false;
            }
            // Decoded once for its channel and kind; a Demand Active (rare) is decoded whole.
            let Some((channel, user_data)) = crate::setup::send_data(pdu) else {
                return false;
            };
            if crate::setup::share_control_type(&user_data) == Some(crate::setup::DEMAND_ACTIVE)
                && let Some((share_id, size)) = demand_active(pdu)
            {
                self.activate(share_id, size);
                return false;
            }
            let io = self
                .activation
                .as_ref()
                .map(|a| (a.io_channel, a.message_channel));
            let Some((io, message)) = io else {
                return false;
            };
            if channel != io && message != Some(channel) {
                return false;
            }
        }
        let (Some(stage), Some(image), Some(action)) =
            (self.stage.as_mut(), self.image.as_mut(), action)
        else {
            return false;
        };
        match stage.process(image, action, pdu, None) {
            Ok(outputs) => outputs
                .iter()
                .any(|o| matches!(o, ironrdp_session::ActiveStageOutput::GraphicsUpdate(_))),
            Err(e) => {
                self.undecoded += 1;
                tracing::debug!(error = %e, "recorded PDU not drawn");
                false
            }
        }
    }

    fn activate(&mut self, share_id: u32, size: Option<(u16, u16)>) {
        let (Some(server), Some(user_channel)) = (self.server.as_ref(), self.user_channel) else {
            return;
        };
        let client = self.client.clone().unwrap_or_default();
        let (width, height) = size.unwrap_or((client.width, client.height));
        let activation = Activation {
            io_channel: server.io_channel,
            user_channel,
            message_channel: server.message_channel,
            share_id,
            width,
            height,
            keyboard_layout: client.keyboard_layout,
        };
        let keep = self
            .image
            .as_ref()
            .is_some_and(|i| i.width() == width && i.height() == height);
        if !keep {
            self.image = Some(DecodedImage::new(PixelFormat::RgbA32, width, height));
        }
        self.stage = Some(build_stage(&activation));
        self.activation = Some(activation);
    }

    /// The screen now, if drawing has started.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let image = self.image.as_ref()?;
        Some(Snapshot {
            activation: self.activation.clone()?,
            rgba: image.data().to_vec(),
        })
    }

    /// The screen now: width, height and RGBA pixels.
    pub fn rgba(&self) -> Option<(u16, u16, &[u8])> {
        let image = self.image.as_ref()?;
        Some((image.width(), image.height(), image.data()))
    }

    /// The screen now as PNG.
    pub fn png(&self) -> Option<Result<Vec<u8>, RdpError>> {
        let image = self.image.as_ref()?;
        Some(png(image.width(), image.height(), image.data()))
    }
}

fn build_stage(a: &Activation) -> ActiveStage {
    ActiveStageBuilder {
        static_channels: StaticChannelSet::new(),
        user_channel_id: a.user_channel,
        io_channel_id: a.io_channel,
        message_channel_id: a.message_channel,
        share_id: a.share_id,
        compression_type: None,
        enable_server_pointer: false,
        pointer_software_rendering: false,
    }
    .build()
}

/// The share id and desktop size of a Server Demand Active.
fn demand_active(pdu: &[u8]) -> Option<(u32, Option<(u16, u16)>)> {
    let ctx = ironrdp_pdu::mcs::decode_send_data_indication(pdu).ok()?;
    let share = ironrdp_pdu::rdp::headers::decode_share_control(ctx).ok()?;
    let ShareControlPdu::ServerDemandActive(demand) = share.pdu else {
        return None;
    };
    let size = demand.pdu.capability_sets.iter().find_map(|c| match c {
        CapabilitySet::Bitmap(b) => Some((b.desktop_width, b.desktop_height)),
        _ => None,
    });
    Some((share.share_id, size))
}

/// Encodes RGBA as PNG.
pub fn png(width: u16, height: u16, rgba: &[u8]) -> Result<Vec<u8>, RdpError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, u32::from(width), u32::from(height));
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RdpError::encode("PNG", e))?;
        writer
            .write_image_data(rgba)
            .map_err(|e| RdpError::encode("PNG", e))?;
    }
    Ok(out)
}

/// Decodes an RGBA PNG written by [`png`].
pub fn unpng(bytes: &[u8]) -> Result<(u16, u16, Vec<u8>), RdpError> {
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder
        .read_info()
        .map_err(|e| RdpError::protocol("PNG", e))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| RdpError::protocol("PNG", e))?;
    buf.truncate(info.buffer_size());
    let w = u16::try_from(info.width).map_err(|e| RdpError::protocol("PNG", e))?;
    let h = u16::try_from(info.height).map_err(|e| RdpError::protocol("PNG", e))?;
    if info.color_type != png::ColorType::Rgba {
        return Err(RdpError::protocol("PNG", "not RGBA"));
    }
    Ok((w, h, buf))
}
