//! What the API reads and writes about targets: their levels, credentials and Remote
//! Desktop settings (re-exported by `dto`).

use sekisho_domain::ids::TargetId;
use sekisho_domain::target::{AccessLevel, LevelPolicy, Target};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A port that may be `null` (`Some(None)`) or absent (`None`).
fn double_option_port<'de, D>(d: D) -> Result<Option<Option<u16>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    integral::optional_port(d).map(Some)
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The secret the gateway logs in with: exactly one of the two. Write-only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    #[schema(format = Password)]
    pub password: Option<String>,
    /// OpenSSH private key (PEM text).
    pub private_key: Option<String>,
}

fn yes() -> bool {
    true
}

/// What one access level may do on a target.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    /// The account on the target the gateway logs in as.
    pub account: String,
    /// Required when the level is first defined; omit on update to keep the stored one.
    pub credential: Option<CredentialBody>,
    #[serde(default = "yes")]
    pub ssh: bool,
    #[serde(default, deserialize_with = "integral::ports")]
    #[schema(value_type = Vec<u16>, minimum = 1, maximum = 65535)]
    pub allowed_ports: Vec<u16>,
    #[serde(default)]
    pub port_forwarding: bool,
    #[serde(default)]
    pub file_upload: bool,
    /// Whether files may be read over sftp (each download is logged with its SHA-256).
    #[serde(default = "yes")]
    pub file_download: bool,
    /// The largest file a vendor may download at this level, in bytes; omit for no limit.
    #[serde(default, deserialize_with = "integral::optional_bytes")]
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub download_max_bytes: Option<u64>,
    /// Remote Desktop at this level (the target needs an `rdp_port` and the level a password
    /// credential: the gateway logs into Windows with it).
    #[serde(default)]
    pub rdp: bool,
    /// The desktop's clipboard (text that crosses is recorded); refused when off.
    #[serde(default)]
    pub rdp_clipboard: bool,
    /// Redirection of the vendor's drives and other devices; refused when off.
    #[serde(default)]
    pub rdp_drives: bool,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelsBody {
    pub reference: Option<LevelBody>,
    pub change: Option<LevelBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTargetBody {
    /// Short name used in SSH login names (`alice+pacs`).
    pub name: String,
    pub host: String,
    #[serde(default = "ssh_port", deserialize_with = "integral::port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// The target's SSH host key (`ssh-ed25519 AAAA...`); omit to pin on first use.
    pub host_key: Option<String>,
    /// The target's Remote Desktop port (3389 usually); omit when it offers no Remote Desktop.
    #[serde(default, deserialize_with = "integral::optional_port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub rdp_port: Option<u16>,
    /// The site of a hospital group it belongs to; omit for the group's own.
    pub site: Option<String>,
    pub levels: LevelsBody,
}

/// Integers in request bodies, also when a client writes them as `22.0`: JSON has one number
/// type, and the schema's `integer` (which the document promises) includes integral floats.
mod integral {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }

    fn to_u16<E: Error>(n: Number) -> Result<u16, E> {
        let value = match n {
            Number::Int(i) => i,
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
            Number::Float(f) => return Err(E::custom(format!("{f} is not a whole number"))),
        };
        u16::try_from(value).map_err(|_| E::custom(format!("{value} is not a port (0 to 65535)")))
    }

    pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        to_u16(Number::deserialize(d)?)
    }

    pub fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        Option::<Number>::deserialize(d)?.map(to_u16).transpose()
    }

    /// A byte count: 1 to 2^63-1 (0 and larger counts are refused by the handler).
    pub fn optional_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<Number>::deserialize(d)?
            .map(|n| match n {
                Number::Int(i) => u64::try_from(i)
                    .map_err(|_| D::Error::custom(format!("{i} is not a number of bytes"))),
                Number::Float(f) if f.fract() == 0.0 && (0.0..9.2e18).contains(&f) => Ok(f as u64),
                Number::Float(f) => Err(D::Error::custom(format!("{f} is not a number of bytes"))),
            })
            .transpose()
    }

    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        Vec::<Number>::deserialize(d)?
            .into_iter()
            .map(to_u16)
            .collect()
    }
}

fn ssh_port() -> u16 {
    22
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatchBody {
    pub name: Option<String>,
    pub host: Option<String>,
    #[serde(default, deserialize_with = "integral::optional_port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    /// A new pinned key, or `null` to clear it so it is pinned again on next use.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub host_key: Option<Option<String>>,
    /// A new Remote Desktop port, or `null` to stop offering Remote Desktop.
    #[serde(default, deserialize_with = "double_option_port")]
    #[schema(value_type = Option<u16>, minimum = 1, maximum = 65535)]
    pub rdp_port: Option<Option<u16>>,
    /// `true` clears the pinned Remote Desktop certificate (pinned again on next use), after
    /// the target's certificate was legitimately replaced.
    #[serde(default)]
    pub clear_rdp_certificate: bool,
    /// Another site, or `null` for the group's own.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub site: Option<Option<String>>,
    #[serde(default)]
    pub levels: LevelsBody,
    #[serde(default)]
    pub remove_levels: Vec<AccessLevel>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LevelView {
    pub account: String,
    pub ssh: bool,
    pub allowed_ports: Vec<u16>,
    pub port_forwarding: bool,
    pub file_upload: bool,
    pub file_download: bool,
    pub download_max_bytes: Option<u64>,
    pub rdp: bool,
    pub rdp_clipboard: bool,
    pub rdp_drives: bool,
}

impl From<&LevelPolicy> for LevelView {
    fn from(p: &LevelPolicy) -> Self {
        Self {
            account: p.account.clone(),
            ssh: p.ssh,
            allowed_ports: p.allowed_ports.clone(),
            port_forwarding: p.port_forwarding,
            file_upload: p.file_upload,
            file_download: p.file_download,
            download_max_bytes: p.download_max_bytes,
            rdp: p.rdp,
            rdp_clipboard: p.rdp_clipboard,
            rdp_drives: p.rdp_drives,
        }
    }
}

/// A target. Credentials are never shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetView {
    #[schema(value_type = String, format = Uuid)]
    pub id: TargetId,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub host_key: Option<String>,
    pub rdp_port: Option<u16>,
    /// SHA-256 (hex) of the target's Remote Desktop TLS certificate, once pinned.
    pub rdp_certificate: Option<String>,
    /// The site it belongs to; `null`: the group's own.
    #[serde(default)]
    pub site: Option<String>,
    pub reference: Option<LevelView>,
    pub change: Option<LevelView>,
    /// How uploads at levels that allow them are scanned ("clamd at …"); `null`: not
    /// scanned, they go straight to the target (logged with their hash).
    #[serde(default)]
    pub upload_scanning: Option<String>,
}

impl From<&Target> for TargetView {
    fn from(t: &Target) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            host_key: t.host_key.clone(),
            rdp_port: t.rdp_port,
            rdp_certificate: t.rdp_certificate.clone(),
            site: t.site.clone(),
            reference: t.reference.as_ref().map(LevelView::from),
            change: t.change.as_ref().map(LevelView::from),
            upload_scanning: None,
        }
    }
}

// ---- requests ------------------------------------------------------------------------
