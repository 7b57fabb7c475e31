//! Which static virtual channels cross the gateway.
//!
//! A level allows the clipboard (`cliprdr`) and drive redirection (`rdpdr`, which also
//! carries printers, ports and smart cards) or not. A refused channel stays in the
//! connection (the vendor's client asked for it and expects an id), but nothing is relayed
//! on it in either direction: the target never sees the vendor's drives or clipboard.

use std::collections::BTreeMap;

use crate::setup::{ClientSetup, ServerSetup};

/// What a level allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelPolicy {
    pub clipboard: bool,
    pub drives: bool,
}

/// A channel the gateway knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Known {
    Clipboard,
    Drives,
}

impl Known {
    fn of(name: &str) -> Option<Self> {
        match name {
            "cliprdr" => Some(Known::Clipboard),
            "rdpdr" => Some(Known::Drives),
            _ => None,
        }
    }

    /// For audit records and messages.
    pub fn describe(self) -> &'static str {
        match self {
            Known::Clipboard => "clipboard (cliprdr)",
            Known::Drives => "drive redirection (rdpdr)",
        }
    }
}

/// Channel ids mapped to names, and the policy.
#[derive(Clone, Debug, Default)]
pub struct Channels {
    by_id: BTreeMap<u16, String>,
    policy: ChannelPolicy,
}

impl Channels {
    pub fn new(client: &ClientSetup, server: &ServerSetup, policy: ChannelPolicy) -> Self {
        let by_id = server
            .channel_ids
            .iter()
            .zip(&client.channels)
            .map(|(id, name)| (*id, name.clone()))
            .collect();
        Self { by_id, policy }
    }

    pub fn name(&self, id: u16) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    pub fn known(&self, id: u16) -> Option<Known> {
        self.name(id).and_then(Known::of)
    }

    /// Whether data on channel `id` is refused (`Some(which)`), or relayed.
    pub fn refused(&self, id: u16) -> Option<Known> {
        match self.known(id)? {
            Known::Clipboard if !self.policy.clipboard => Some(Known::Clipboard),
            Known::Drives if !self.policy.drives => Some(Known::Drives),
            _ => None,
        }
    }

    /// The channels the vendor asked for, with whether each is relayed.
    pub fn summary(&self) -> Vec<(String, bool)> {
        self.by_id
            .iter()
            .map(|(id, name)| (name.clone(), self.refused(*id).is_none()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_refuses_clipboard_and_drives_change_may_allow_them() {
        let client = ClientSetup {
            channels: vec!["rdpdr".into(), "cliprdr".into(), "rdpsnd".into()],
            ..Default::default()
        };
        let server = ServerSetup {
            io_channel: 1003,
            channel_ids: vec![1004, 1005, 1006],
            message_channel: None,
        };
        let reference = Channels::new(&client, &server, ChannelPolicy::default());
        assert_eq!(reference.refused(1004), Some(Known::Drives));
        assert_eq!(reference.refused(1005), Some(Known::Clipboard));
        assert_eq!(reference.refused(1006), None);
        assert_eq!(reference.refused(1003), None);
        let change = Channels::new(
            &client,
            &server,
            ChannelPolicy {
                clipboard: true,
                drives: false,
            },
        );
        assert_eq!(change.refused(1005), None);
        assert_eq!(change.refused(1004), Some(Known::Drives));
    }
}
