//! Rules for the text people type into Sekisho: names, free text and host names.
//!
//! Names are shown to other people (in the console, the audit log, the committee's reports):
//! a NUL, a right-to-left override or a zero-width space in one can make two names look the
//! same or make a line read backwards. Host names are handed to network code and to logs:
//! a newline or an option-like `-oProxyCommand=...` has no business there.

use std::net::IpAddr;

/// Whether `c` is invisible or changes how surrounding text reads: control characters, bidi
/// embeddings/overrides/isolates and marks, zero-width characters, the byte-order mark, the
/// soft hyphen and other format characters.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// Why a piece of text was refused; the message is for the person who typed it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters (got {got})")]
    TooLong { max: usize, got: usize },
    #[error("must not contain invisible or control characters (found U+{0:04X})")]
    Invisible(u32),
    #[error("must not start or end with spaces")]
    Padded,
    #[error("is not a host name or IP address: {0}")]
    Host(&'static str),
}

/// A one-line name (vendor, target, display name, contact): not empty, at most `max`
/// characters, no invisible or control characters, no leading or trailing spaces.
pub fn check_name(value: &str, max: usize) -> Result<(), TextError> {
    if value.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if value.trim() != value {
        return Err(TextError::Padded);
    }
    check_chars(value, max, false)
}

/// Free text (a reason, a plan, a comment): at most `max` characters; line breaks and tabs
/// are fine, other control and invisible characters are not.
pub fn check_text(value: &str, max: usize) -> Result<(), TextError> {
    check_chars(value, max, true)
}

fn check_chars(value: &str, max: usize, multiline: bool) -> Result<(), TextError> {
    let got = value.chars().count();
    if got > max {
        return Err(TextError::TooLong { max, got });
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    match value.chars().find(|c| is_invisible(*c) && !allowed(*c)) {
        Some(c) => Err(TextError::Invisible(u32::from(c))),
        None => Ok(()),
    }
}

/// A target's host: an IP address, or a DNS name of letters, digits, hyphens and dots
/// (RFC 1123), at most 253 characters, no label starting or ending with a hyphen.
pub fn check_host(host: &str) -> Result<(), TextError> {
    if host.is_empty() {
        return Err(TextError::Empty);
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 {
        return Err(TextError::TooLong {
            max: 253,
            got: host.chars().count(),
        });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(TextError::Host(
                "every dot-separated label needs 1 to 63 characters",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(TextError::Host(
                "use letters, digits, hyphens and dots only",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(TextError::Host("a label cannot start or end with a hyphen"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_invisible_characters() {
        assert_eq!(check_name("Acme Medical 株式会社", 200), Ok(()));
        assert_eq!(check_name("", 200), Err(TextError::Empty));
        assert_eq!(check_name(" Acme", 200), Err(TextError::Padded));
        assert_eq!(check_name("A\u{0}B", 200), Err(TextError::Invisible(0)));
        assert_eq!(
            check_name("Acme\u{202e}emcA", 200),
            Err(TextError::Invisible(0x202e))
        );
        assert_eq!(
            check_name("Ac\u{200b}me", 200),
            Err(TextError::Invisible(0x200b))
        );
        assert_eq!(
            check_name("abc", 2),
            Err(TextError::TooLong { max: 2, got: 3 })
        );
        assert_eq!(check_text("line one\nline two\ttab", 100), Ok(()));
        assert_eq!(check_text("a\u{7}", 100), Err(TextError::Invisible(7)));
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        for ok in [
            "pacs.hospital.local",
            "10.0.0.5",
            "::1",
            "pacs",
            "a-b.example.",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "pacs\nevil",
            "-oProxyCommand=sh",
            "pacs -p 22",
            "a..b",
            "bad-.example",
            "x_y.example",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }
}
