//! Targets, their per-level policies, and the sealed credentials the gateway injects.

use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::TargetId;
use sekisho_domain::secret::Secret;
use sekisho_domain::target::{AccessLevel, LevelPolicy, Target};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, conflict, json, micros, now, parse, parse_json};
use crate::crypto::AtRestKey;

/// What is pinned on a target's first connection.
enum Pinned {
    HostKey,
    RdpCertificate,
}

/// A secret the gateway uses to log into a target. Never returned by the API.
#[derive(Clone, Debug)]
pub enum Credential {
    Password(Secret<String>),
    /// An OpenSSH private key.
    PrivateKey(Secret<String>),
}

impl Credential {
    fn kind(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password",
            Credential::PrivateKey(_) => "private_key",
        }
    }

    fn secret(&self) -> &Secret<String> {
        match self {
            Credential::Password(s) | Credential::PrivateKey(s) => s,
        }
    }
}

/// One access level of a target as given by an admin.
#[derive(Clone, Debug)]
pub struct LevelSpec {
    pub level: AccessLevel,
    pub policy: LevelPolicy,
    /// `None` on update keeps the stored credential.
    pub credential: Option<Credential>,
}

/// A target as given by an admin.
#[derive(Clone, Debug)]
pub struct NewTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Pinned SSH host key (OpenSSH public key line); `None` pins on first use.
    pub host_key: Option<String>,
    /// The Remote Desktop port, when the target offers Remote Desktop.
    pub rdp_port: Option<u16>,
    /// The site of a hospital group it belongs to; `None`: the group's own.
    pub site: Option<String>,
    pub levels: Vec<LevelSpec>,
}

/// What may change on a target.
#[derive(Clone, Debug, Default)]
pub struct TargetChanges {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `Some(None)` clears the pin (re-pinned on next use).
    pub host_key: Option<Option<String>>,
    /// `Some(None)` stops offering Remote Desktop.
    pub rdp_port: Option<Option<u16>>,
    /// `Some(None)` clears the pinned RDP certificate (re-pinned on next use).
    pub rdp_certificate: Option<Option<String>>,
    /// `Some(None)` makes it the group's own (no site).
    pub site: Option<Option<String>>,
    /// Levels to set (replacing that level); credentials may be omitted to keep them.
    pub levels: Vec<LevelSpec>,
    /// Levels to remove.
    pub remove_levels: Vec<AccessLevel>,
}

fn context(target: TargetId, level: AccessLevel) -> String {
    credential_context(&target.to_string(), level.as_str())
}

/// What a level's sealed credential is bound to: its target and level, as stored.
pub(crate) fn credential_context(target: &str, level: &str) -> String {
    format!("sekisho:target:{target}:{level}")
}

fn row_to_level(row: &AnyRow) -> Result<(AccessLevel, LevelPolicy)> {
    let level: AccessLevel = parse("access level", &row.try_get::<String, _>("level")?)?;
    Ok((
        level,
        LevelPolicy {
            account: row.try_get("account")?,
            ssh: row.try_get::<i64, _>("ssh")? != 0,
            allowed_ports: parse_json(
                "allowed ports",
                &row.try_get::<String, _>("allowed_ports")?,
            )?,
            port_forwarding: row.try_get::<i64, _>("port_forwarding")? != 0,
            file_upload: row.try_get::<i64, _>("file_upload")? != 0,
            file_download: row.try_get::<i64, _>("file_download")? != 0,
            download_max_bytes: row
                .try_get::<Option<i64>, _>("download_max_bytes")?
                .map(|n| u64::try_from(n).unwrap_or(0)),
            rdp: row.try_get::<i64, _>("rdp")? != 0,
            rdp_clipboard: row.try_get::<i64, _>("rdp_clipboard")? != 0,
            rdp_drives: row.try_get::<i64, _>("rdp_drives")? != 0,
        },
    ))
}

async fn load(conn: &mut AnyConnection, where_sql: &str, arg: String) -> Result<Option<Target>> {
    let sql = format!(
        "SELECT id, name, host, port, host_key, rdp_port, rdp_certificate, site FROM targets WHERE {where_sql}"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(arg)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let id: TargetId = parse("target id", &row.try_get::<String, _>("id")?)?;
    let port: i64 = row.try_get("port")?;
    let rdp_port = row
        .try_get::<Option<i64>, _>("rdp_port")?
        .map(|p| u16::try_from(p).map_err(|_| StoreError::Corrupt(format!("target RDP port {p}"))))
        .transpose()?;
    let mut target = Target {
        id,
        name: row.try_get("name")?,
        host: row.try_get("host")?,
        port: u16::try_from(port)
            .map_err(|_| StoreError::Corrupt(format!("target port {port}")))?,
        reference: None,
        change: None,
        host_key: row.try_get("host_key")?,
        rdp_port,
        rdp_certificate: row.try_get("rdp_certificate")?,
        site: row.try_get("site")?,
    };
    let levels = sqlx::query(
        "SELECT level, account, ssh, allowed_ports, port_forwarding, file_upload, file_download, download_max_bytes, rdp, rdp_clipboard, rdp_drives \
         FROM target_levels WHERE target_id = $1",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    for row in &levels {
        let (level, policy) = row_to_level(row)?;
        match level {
            AccessLevel::Reference => target.reference = Some(policy),
            AccessLevel::Change => target.change = Some(policy),
        }
    }
    Ok(Some(target))
}

/// A download limit as stored (BIGINT; a limit beyond it is no limit).
fn max_bytes(limit: Option<u64>) -> Option<i64> {
    limit.and_then(|n| i64::try_from(n).ok())
}

async fn put_level(
    conn: &mut AnyConnection,
    key: &AtRestKey,
    target: TargetId,
    spec: &LevelSpec,
) -> Result<()> {
    let level = spec.level.as_str();
    let sealed = match &spec.credential {
        Some(c) => Some((
            c.kind(),
            key.seal(c.secret(), &context(target, spec.level))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )),
        None => None,
    };
    let p = &spec.policy;
    let exists =
        sqlx::query("SELECT 1 AS x FROM target_levels WHERE target_id = $1 AND level = $2")
            .bind(target.to_string())
            .bind(level)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
    match (exists, sealed) {
        (false, None) => {
            return Err(StoreError::Conflict(format!(
                "level {level} needs a credential the first time it is defined"
            )));
        }
        (false, Some((kind, sealed))) => {
            sqlx::query(
                "INSERT INTO target_levels (target_id, level, account, credential_kind, credential_sealed, ssh, allowed_ports, port_forwarding, file_upload, rdp, rdp_clipboard, rdp_drives, file_download, download_max_bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(target.to_string())
            .bind(level)
            .bind(&p.account)
            .bind(kind)
            .bind(sealed)
            .bind(i64::from(p.ssh))
            .bind(json(&p.allowed_ports)?)
            .bind(i64::from(p.port_forwarding))
            .bind(i64::from(p.file_upload))
            .bind(i64::from(p.rdp))
            .bind(i64::from(p.rdp_clipboard))
            .bind(i64::from(p.rdp_drives))
            .bind(i64::from(p.file_download))
            .bind(max_bytes(p.download_max_bytes))
            .execute(&mut *conn)
            .await?;
        }
        (true, sealed) => {
            sqlx::query(
                "UPDATE target_levels SET account = $1, ssh = $2, allowed_ports = $3, port_forwarding = $4, file_upload = $5, \
                 rdp = $6, rdp_clipboard = $7, rdp_drives = $8, file_download = $9, download_max_bytes = $10 \
                 WHERE target_id = $11 AND level = $12",
            )
            .bind(&p.account)
            .bind(i64::from(p.ssh))
            .bind(json(&p.allowed_ports)?)
            .bind(i64::from(p.port_forwarding))
            .bind(i64::from(p.file_upload))
            .bind(i64::from(p.rdp))
            .bind(i64::from(p.rdp_clipboard))
            .bind(i64::from(p.rdp_drives))
            .bind(i64::from(p.file_download))
            .bind(max_bytes(p.download_max_bytes))
            .bind(target.to_string())
            .bind(level)
            .execute(&mut *conn)
            .await?;
            if let Some((kind, sealed)) = sealed {
                sqlx::query("UPDATE target_levels SET credential_kind = $1, credential_sealed = $2 WHERE target_id = $3 AND level = $4")
                    .bind(kind)
                    .bind(sealed)
                    .bind(target.to_string())
                    .bind(level)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(())
}

impl Store {
    pub async fn create_target(
        &self,
        key: &AtRestKey,
        new: NewTarget,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Target> {
        let id = TargetId::new();
        let t = now();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO targets (id, name, host, port, host_key, rdp_port, created_at, updated_at, site) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(id.to_string())
            .bind(&new.name)
            .bind(&new.host)
            .bind(i64::from(new.port))
            .bind(&new.host_key)
            .bind(new.rdp_port.map(i64::from))
            .bind(micros(t))
            .bind(micros(t))
            .bind(&new.site)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("a target named `{}` already exists", new.name)))?;
        for spec in &new.levels {
            put_level(&mut tx, key, id, spec).await?;
        }
        let target = load(&mut tx, "id = $1", id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {id}")))?;
        let ev = |event| NewAuditEvent::success(actor.clone(), None, source, event);
        audit::append(
            &mut tx,
            ev(AuditEvent::TargetCreated {
                target: id,
                name: target.name.clone(),
            }),
        )
        .await?;
        if let Some(k) = &target.host_key {
            audit::append(
                &mut tx,
                ev(AuditEvent::HostKeyPinned {
                    target: id,
                    name: target.name.clone(),
                    fingerprint: k.clone(),
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(target)
    }

    pub async fn target(&self, id: TargetId) -> Result<Option<Target>> {
        load(&mut *self.pool.acquire().await?, "id = $1", id.to_string()).await
    }

    pub async fn target_by_name(&self, name: &str) -> Result<Option<Target>> {
        load(
            &mut *self.pool.acquire().await?,
            "name = $1",
            name.to_owned(),
        )
        .await
    }

    /// Whether any target belongs to `site` (a site is named by its targets).
    pub async fn site_exists(&self, site: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT id FROM targets WHERE site = $1 LIMIT 1")
                .bind(site)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    pub async fn targets(&self) -> Result<Vec<Target>> {
        let ids: Vec<String> = sqlx::query("SELECT id FROM targets ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(load(&mut conn, "id = $1", id).await?);
        }
        Ok(out)
    }

    pub async fn update_target(
        &self,
        key: &AtRestKey,
        id: TargetId,
        changes: TargetChanges,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Target> {
        let mut tx = self.begin().await?;
        let mut t = load(&mut tx, "id = $1", id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {id}")))?;
        let mut changed = vec![];
        if let Some(name) = changes.name {
            changed.push("name".to_owned());
            t.name = name;
        }
        if let Some(host) = changes.host {
            changed.push("host".to_owned());
            t.host = host;
        }
        if let Some(port) = changes.port {
            changed.push("port".to_owned());
            t.port = port;
        }
        if let Some(hk) = changes.host_key {
            changed.push(
                if hk.is_some() {
                    "host_key pinned"
                } else {
                    "host_key cleared"
                }
                .to_owned(),
            );
            t.host_key = hk;
        }
        if let Some(p) = changes.rdp_port {
            changed.push(match p {
                Some(p) => format!("rdp_port {p}"),
                None => "rdp_port removed".to_owned(),
            });
            t.rdp_port = p;
        }
        if let Some(c) = changes.rdp_certificate {
            changed.push(
                if c.is_some() {
                    "rdp_certificate pinned"
                } else {
                    "rdp_certificate cleared"
                }
                .to_owned(),
            );
            t.rdp_certificate = c;
        }
        if let Some(site) = changes.site {
            changed.push(match &site {
                Some(s) => format!("site {s}"),
                None => "site removed".to_owned(),
            });
            t.site = site;
        }
        sqlx::query("UPDATE targets SET name = $1, host = $2, port = $3, host_key = $4, rdp_port = $5, rdp_certificate = $6, updated_at = $7, site = $8 WHERE id = $9")
            .bind(&t.name)
            .bind(&t.host)
            .bind(i64::from(t.port))
            .bind(&t.host_key)
            .bind(t.rdp_port.map(i64::from))
            .bind(&t.rdp_certificate)
            .bind(micros(now()))
            .bind(&t.site)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("a target named `{}` already exists", t.name)))?;
        for spec in &changes.levels {
            put_level(&mut tx, key, id, spec).await?;
            changed.push(format!(
                "level {}{}",
                spec.level.as_str(),
                if spec.credential.is_some() {
                    " (credential replaced)"
                } else {
                    ""
                }
            ));
        }
        for level in &changes.remove_levels {
            sqlx::query("DELETE FROM target_levels WHERE target_id = $1 AND level = $2")
                .bind(id.to_string())
                .bind(level.as_str())
                .execute(&mut *tx)
                .await?;
            changed.push(format!("level {} removed", level.as_str()));
        }
        let target = load(&mut tx, "id = $1", id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {id}")))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                None,
                source,
                AuditEvent::TargetUpdated {
                    target: id,
                    name: target.name.clone(),
                    changes: changed,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(target)
    }

    /// Pins `key` (an OpenSSH public key line) as the target's host key if none is pinned yet
    /// (trust on first use), audited. Returns whether this call pinned it.
    pub async fn pin_host_key(
        &self,
        target: &Target,
        key: &str,
        fingerprint: &str,
    ) -> Result<bool> {
        self.pin(
            target,
            Pinned::HostKey,
            key,
            fingerprint.to_owned(),
            "first connection: no host key was pinned",
        )
        .await
    }

    /// Pins `fingerprint` (SHA-256 of the target's RDP TLS certificate, hex) if none is pinned
    /// yet (trust on first use), audited. Returns whether this call pinned it.
    pub async fn pin_rdp_certificate(&self, target: &Target, fingerprint: &str) -> Result<bool> {
        self.pin(
            target,
            Pinned::RdpCertificate,
            fingerprint,
            format!("rdp-tls:SHA256:{fingerprint}"),
            "first Remote Desktop connection: no certificate was pinned",
        )
        .await
    }

    /// Sets `what` to `value` if it is still empty, and audits it as `HostKeyPinned` with
    /// `fingerprint`, in one transaction. Returns whether this call set it.
    async fn pin(
        &self,
        target: &Target,
        what: Pinned,
        value: &str,
        fingerprint: String,
        reason: &str,
    ) -> Result<bool> {
        let query = match what {
            Pinned::HostKey => {
                "UPDATE targets SET host_key = $1 WHERE id = $2 AND host_key IS NULL"
            }
            Pinned::RdpCertificate => {
                "UPDATE targets SET rdp_certificate = $1 WHERE id = $2 AND rdp_certificate IS NULL"
            }
        };
        let mut tx = self.begin().await?;
        let updated = sqlx::query(query)
            .bind(value)
            .bind(target.id.to_string())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::System,
                outcome: sekisho_domain::audit::Outcome::Success,
                vendor_id: None,
                source_addr: None,
                reason: Some(reason.into()),
                event: AuditEvent::HostKeyPinned {
                    target: target.id,
                    name: target.name.clone(),
                    fingerprint,
                },
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The credential of `level` on `target`, opened with the at-rest key (for the gateway).
    pub async fn target_credential(
        &self,
        key: &AtRestKey,
        target: TargetId,
        level: AccessLevel,
    ) -> Result<Credential> {
        let row = sqlx::query("SELECT credential_kind, credential_sealed FROM target_levels WHERE target_id = $1 AND level = $2")
            .bind(target.to_string())
            .bind(level.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{} credential of target {target}", level.as_str())))?;
        let kind: String = row.try_get("credential_kind")?;
        let sealed: String = row.try_get("credential_sealed")?;
        let secret = key
            .open(&sealed, &context(target, level))
            .map_err(|e| StoreError::Corrupt(format!("credential of target {target}: {e}")))?;
        match kind.as_str() {
            "password" => Ok(Credential::Password(secret)),
            "private_key" => Ok(Credential::PrivateKey(secret)),
            other => Err(StoreError::Corrupt(format!("credential kind `{other}`"))),
        }
    }
}
