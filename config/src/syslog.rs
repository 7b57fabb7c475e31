//! `[syslog]`: the audit log streamed to the hospital's SIEM as RFC 5424 syslog (issue #18).

use toml_edit::Value;

use crate::model::SyslogConfig;
use crate::reader::{Parsed, Reader};

/// Facility names and their numbers (RFC 5424 table 1, with the usual Unix names).
pub const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn facility(v: &Value) -> Parsed<u8> {
    let s = Reader::non_empty_string(v)?;
    FACILITIES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, n)| *n)
        .ok_or_else(|| "expected a facility name such as authpriv, auth or local0".into())
}

/// `HOST:PORT`, the port a number.
fn address(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(s),
        _ => Err("expected HOST:PORT, e.g. \"siem.hospital.example:6514\"".into()),
    }
}

/// An APP-NAME: 1 to 48 printable US-ASCII characters without spaces (RFC 5424 6.2.5).
fn app_name(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    if s.len() <= 48 && s.bytes().all(|b| (33..=126).contains(&b)) {
        Ok(s)
    } else {
        Err("expected 1 to 48 printable ASCII characters without spaces".into())
    }
}

/// Reads `[syslog]`; `None` without an `address`.
pub(crate) fn read(r: &Reader) -> Option<SyslogConfig> {
    let s = r.section(
        "syslog",
        &[
            "address",
            "tls",
            "ca_file",
            "server_name",
            "facility",
            "app_name",
        ],
    );
    let address = r.opt(s, "address", address)?;
    let c = SyslogConfig {
        tls: r.get(s, "tls", Reader::bool, true),
        ca_file: r.opt(s, "ca_file", Reader::path),
        server_name: r.opt(s, "server_name", Reader::non_empty_string),
        facility: r.get(s, "facility", facility, 10),
        app_name: r.get(s, "app_name", app_name, "sekisho".into()),
        address,
    };
    if !c.tls && (c.ca_file.is_some() || c.server_name.is_some()) {
        r.problem_at(
            s,
            "tls",
            "ca_file and server_name are for TLS; remove them or set tls = true".into(),
        );
    }
    Some(c)
}
