//! sftp through the gateway: the wire format (`wire`), one file's log and hash (`track`),
//! the decisions on every request and reply (`proxy`), and the relay that acts on them for
//! one channel, staging and scanning uploads where the level asks for it (`relay`).

pub mod proxy;
pub mod relay;
pub mod track;
pub mod wire;
