//! Files that cross the gateway: the scanners (`scan`) and the quarantine directory
//! (`quarantine`). The sftp relay that uses them is `ssh::sftp`.

pub mod quarantine;
pub mod scan;
