//! The SSH login name: `alice+pacs` (vendor user `alice`, target `pacs`), optionally with the
//! access level, `alice+pacs+change`, when the user holds requests of both levels.

use sekisho_domain::target::AccessLevel;

/// A parsed login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub target: String,
    pub level: Option<AccessLevel>,
}

impl Login {
    /// Parses `user+target[+level]`; the error names what is wrong, for the vendor to read.
    pub fn parse(name: &str) -> Result<Login, String> {
        // Longer than any user+target+level: refused before anything else looks at it.
        if name.len() > 200 {
            return Err(format!(
                "login name `{}` is too long",
                sekisho_domain::audit::claimed(name)
            ));
        }
        let mut parts = name.split('+');
        let user = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let level = parts.next();
        if parts.next().is_some() || user.is_empty() || target.is_empty() {
            return Err(format!(
                "login name `{}` is not USER+TARGET (for example alice+pacs, or alice+pacs+change)",
                sekisho_domain::audit::claimed(name)
            ));
        }
        let level = level
            .map(|l| l.parse::<AccessLevel>().map_err(|e| e.to_string()))
            .transpose()?;
        Ok(Login {
            user: user.to_owned(),
            target: target.to_owned(),
            level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_target_and_optional_level() {
        assert_eq!(
            Login::parse("alice+pacs").unwrap(),
            Login {
                user: "alice".into(),
                target: "pacs".into(),
                level: None
            }
        );
        assert_eq!(
            Login::parse("alice+pacs+change").unwrap().level,
            Some(AccessLevel::Change)
        );
        for bad in [
            "alice",
            "alice+",
            "+pacs",
            "alice+pacs+root",
            "a+b+change+x",
            "",
        ] {
            assert!(Login::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(
            Login::parse("alice+pacs+root")
                .unwrap_err()
                .contains("unknown access level `root`")
        );
    }
}
