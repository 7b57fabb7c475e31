//! A gateway node's state as people see it (`GET /api/v1/nodes`, `sekisho node list`).

use serde::{Deserialize, Serialize};

/// How a node is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Heartbeating.
    Up,
    /// Silent for more than a third of the time after which it is marked down: not yet
    /// taken over, but worth a look.
    Late,
    /// Stopped on purpose.
    Stopped,
    /// Marked down by another node, which ended its sessions.
    Down,
}

impl NodeState {
    /// The state of a node whose last heartbeat was `silent` ago; `down_after` is the
    /// configured time after which a silent node is taken over.
    pub fn of(
        stopped: bool,
        down: bool,
        silent: jiff::SignedDuration,
        down_after: std::time::Duration,
    ) -> Self {
        let late =
            jiff::SignedDuration::try_from(down_after / 3).unwrap_or(jiff::SignedDuration::MAX);
        if down {
            Self::Down
        } else if stopped {
            Self::Stopped
        } else if silent > late {
            Self::Late
        } else {
            Self::Up
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Late => "late",
            Self::Stopped => "stopped",
            Self::Down => "down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use std::time::Duration;

    #[test]
    fn a_node_is_up_late_stopped_or_down() {
        let after = Duration::from_secs(30);
        let s = SignedDuration::from_secs;
        assert_eq!(NodeState::of(false, false, s(2), after), NodeState::Up);
        assert_eq!(NodeState::of(false, false, s(10), after), NodeState::Up);
        assert_eq!(NodeState::of(false, false, s(11), after), NodeState::Late);
        assert_eq!(
            NodeState::of(true, false, s(500), after),
            NodeState::Stopped
        );
        // A node marked down that then stopped is still shown down until it starts again.
        assert_eq!(NodeState::of(true, true, s(500), after), NodeState::Down);
        // A clock a little behind another node's is not "late".
        assert_eq!(NodeState::of(false, false, s(-3), after), NodeState::Up);
    }
}
