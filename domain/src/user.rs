//! Accounts: hospital staff (admin, approver, auditor) and vendor engineers.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{UserId, VendorId};

/// What an account may do. Checked in one place by the API.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the gateway: targets, accounts, configuration.
    Admin,
    /// Hospital IT: decides requests, terminates sessions, reviews recordings.
    Approver,
    /// Read-only: audit log, recordings, reports.
    Auditor,
    /// One engineer of a registered vendor.
    Vendor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Approver, Role::Auditor, Role::Vendor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Vendor => "vendor",
        }
    }

    /// Whether this role may decide work requests.
    pub fn may_approve(self) -> bool {
        matches!(self, Role::Admin | Role::Approver)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected one of admin, approver, auditor, vendor")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Whether an account may be used at all.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

/// An account. Vendor engineers (`role == Vendor`) always belong to a vendor; staff never do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    pub vendor_id: Option<VendorId>,
    pub status: UserStatus,
    /// After this instant the account no longer works (vendor engineers' contracts end).
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The one site of a hospital group a staff account is limited to; `None`: every site.
    #[serde(default)]
    pub site: Option<String>,
    /// The language of the mail Sekisho sends them; `None`: `[notifications] language`.
    #[serde(default)]
    pub language: Option<crate::notify::Language>,
    /// Where the account comes from.
    #[serde(default)]
    pub source: AccountSource,
}

/// Where an account comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSource {
    /// Made in Sekisho, with its own password: vendor engineers, and staff's break-glass way
    /// in when the directory is down.
    #[default]
    Local,
    /// Made and kept up to date by a login through the hospital's directory; no password here.
    Directory,
}

impl AccountSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountSource::Local => "local",
            AccountSource::Directory => "directory",
        }
    }
}

/// Why a username is not acceptable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username must be 1 to 64 characters")]
    Length,
    #[error(
        "username may contain only lowercase letters, digits, '.', '-' and '_' and must start with a letter or digit"
    )]
    Characters,
}

/// Usernames appear in SSH login names (`alice+pacs`), so `+`, `@` and spaces are out.
pub fn validate_username(name: &str) -> Result<(), UsernameError> {
    if name.is_empty() || name.len() > 64 {
        return Err(UsernameError::Length);
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok || !name.chars().all(ok_char) {
        return Err(UsernameError::Characters);
    }
    Ok(())
}

/// Passwords shorter than this are refused when set.
pub const PASSWORD_MIN_LENGTH: usize = 12;
/// Passwords longer than this are refused (hashing cost is not the attacker's to choose).
pub const PASSWORD_MAX_LENGTH: usize = 1024;

/// Why a password is refused; the message says what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("must be at least {PASSWORD_MIN_LENGTH} characters")]
    TooShort,
    #[error("must be at most {PASSWORD_MAX_LENGTH} characters")]
    TooLong,
    #[error("is too easy to guess (strength {score} of 4, at least 3 needed){advice}")]
    Weak { score: u8, advice: String },
}

/// Whether `password` may be set for an account named by `names` (username, display name):
/// long enough, and hard to guess by the `zxcvbn` estimate (at least 10^10 guesses), which
/// refuses twelve spaces, `aaaaaaaaaaaa` or the username repeated with a readable reason.
pub fn check_password(password: &str, names: &[&str]) -> Result<(), PasswordProblem> {
    let length = password.chars().count();
    if length < PASSWORD_MIN_LENGTH {
        return Err(PasswordProblem::TooShort);
    }
    if length > PASSWORD_MAX_LENGTH {
        return Err(PasswordProblem::TooLong);
    }
    let mut inputs = names.to_vec();
    inputs.push("sekisho");
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    let score = u8::from(estimate.score());
    if score >= 3 {
        return Ok(());
    }
    let mut advice = String::new();
    if let Some(f) = estimate.feedback() {
        if let Some(w) = f.warning() {
            advice.push_str(&format!(": {w}"));
        }
        for s in f.suggestions() {
            advice.push_str(&format!(" {s}"));
        }
    }
    Err(PasswordProblem::Weak { score, advice })
}

/// A way a vendor engineer's credential came to exist, for separation of duties.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The account was created with a password someone else chose.
    InitialPassword,
    /// Someone else set a new password.
    PasswordReset,
    /// Someone created an enrollment code for the designated client.
    EnrollmentCode,
    /// Someone registered or approved an SSH key.
    SshKey,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 4] = [
        CredentialKind::InitialPassword,
        CredentialKind::PasswordReset,
        CredentialKind::EnrollmentCode,
        CredentialKind::SshKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::InitialPassword => "initial_password",
            CredentialKind::PasswordReset => "password_reset",
            CredentialKind::EnrollmentCode => "enrollment_code",
            CredentialKind::SshKey => "ssh_key",
        }
    }

    /// What was done, for messages ("you issued ... on 2026-11-30").
    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::InitialPassword => "set the initial password of",
            CredentialKind::PasswordReset => "reset the password of",
            CredentialKind::EnrollmentCode => "created an enrollment code for",
            CredentialKind::SshKey => "registered or approved an SSH key of",
        }
    }
}

impl FromStr for CredentialKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CredentialKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown credential kind `{s}`"))
    }
}

/// Whether a key logs in yet.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SshKeyStatus {
    /// Registered by the engineer themself; waits for IT's approval.
    Pending,
    Active,
}

impl SshKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SshKeyStatus::Pending => "pending",
            SshKeyStatus::Active => "active",
        }
    }
}

/// Someone (`actor`) gave a vendor engineer (`user`) a credential at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialIssue {
    pub user: UserId,
    pub actor: UserId,
    pub kind: CredentialKind,
    pub at: Timestamp,
}

impl User {
    /// Active and not past its expiry.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.status == UserStatus::Active && self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert_eq!(check_password("correct horse battery", &["alice"]), Ok(()));
        assert_eq!(
            check_password("short", &["alice"]),
            Err(PasswordProblem::TooShort)
        );
        for weak in [
            "            ",
            "aaaaaaaaaaaa",
            "alicealicealice",
            "password1234",
        ] {
            let err = check_password(weak, &["alice"]).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("is too easy to guess (strength "),
                "{weak:?}: {err}"
            );
        }
        let err = check_password("aaaaaaaaaaaa", &[]).unwrap_err();
        assert!(err.to_string().contains("Repeats like"), "{err}");
    }

    #[test]
    fn roles_round_trip_through_strings() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn usernames_that_would_break_ssh_login_names_are_refused() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("a.b-c_9").is_ok());
        assert_eq!(validate_username(""), Err(UsernameError::Length));
        assert_eq!(
            validate_username("alice+pacs"),
            Err(UsernameError::Characters)
        );
        assert_eq!(validate_username("Alice"), Err(UsernameError::Characters));
        assert_eq!(validate_username("-x"), Err(UsernameError::Characters));
        assert_eq!(
            validate_username(&"a".repeat(65)),
            Err(UsernameError::Length)
        );
    }
}
