//! Typed identifiers, so a vendor id can never be passed where a user id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A registered vendor company.
    VendorId
);
id_type!(
    /// A user account: hospital staff or one vendor engineer.
    UserId
);
id_type!(
    /// A hospital system behind the gateway.
    TargetId
);
id_type!(
    /// A vendor's assignment to a target under a maintenance contract.
    AssignmentId
);
id_type!(
    /// An external connection line or device in the inventory.
    LineId
);
id_type!(
    /// A work request (shown to people as `R-<number>`).
    RequestId
);
id_type!(
    /// One connection through the gateway.
    SessionId
);
