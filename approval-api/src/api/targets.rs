//! Targets: hospital systems behind the gateway and what each access level may use there.
//! Credentials are write-only: sealed at rest, never returned.

use std::collections::HashSet;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sekisho_domain::ids::TargetId;
use sekisho_domain::secret::Secret;
use sekisho_domain::target::{AccessLevel, LevelPolicy};

use super::dto::{
    CredentialBody, LevelBody, LevelsBody, NewTargetBody, TargetPatchBody, TargetView,
};
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::Caller;
use super::users::parse_public_key;
use super::vendors::{parse_id, required};
use sekisho_store::assignments::AssignmentFilter;
use sekisho_store::targets::{Credential, LevelSpec, NewTarget, TargetChanges};

fn credential(body: CredentialBody, field: &'static str) -> ApiResult<Credential> {
    match (body.password, body.private_key) {
        (Some(p), None) if !p.is_empty() => Ok(Credential::Password(Secret::new(p))),
        (None, Some(k)) => match russh::keys::decode_secret_key(&k, None) {
            Ok(_) => Ok(Credential::PrivateKey(Secret::new(k))),
            // The reason names the problem, never the key.
            Err(e) => Err(ApiError::invalid(
                field,
                format!(
                    "private_key is not a usable OpenSSH private key without a passphrase ({})",
                    match e {
                        russh::keys::Error::KeyIsEncrypted => "it is encrypted".to_owned(),
                        _ => "it cannot be read".to_owned(),
                    }
                ),
            )),
        },
        _ => Err(ApiError::invalid(
            field,
            "give exactly one of password or private_key",
        )),
    }
}

fn level(level: AccessLevel, body: LevelBody) -> ApiResult<LevelSpec> {
    let (account_field, cred_field) = match level {
        AccessLevel::Reference => ("levels.reference.account", "levels.reference.credential"),
        AccessLevel::Change => ("levels.change.account", "levels.change.credential"),
    };
    if body.allowed_ports.contains(&0) {
        return Err(ApiError::invalid("allowed_ports", "port 0 is not a port"));
    }
    if body.download_max_bytes == Some(0) || body.download_max_bytes > Some(i64::MAX as u64) {
        return Err(ApiError::invalid(
            "download_max_bytes",
            "a download limit is between 1 byte and 2^63-1 bytes (omit it for no limit)",
        ));
    }
    if (body.rdp_clipboard || body.rdp_drives) && !body.rdp {
        return Err(ApiError::invalid(
            "rdp",
            "rdp_clipboard and rdp_drives need rdp at the same level",
        ));
    }
    Ok(LevelSpec {
        level,
        policy: LevelPolicy {
            account: required(account_field, &body.account, 64)?,
            ssh: body.ssh,
            allowed_ports: body.allowed_ports,
            port_forwarding: body.port_forwarding,
            file_upload: body.file_upload,
            file_download: body.file_download,
            download_max_bytes: body.download_max_bytes,
            rdp: body.rdp,
            rdp_clipboard: body.rdp_clipboard,
            rdp_drives: body.rdp_drives,
        },
        credential: body
            .credential
            .map(|c| credential(c, cred_field))
            .transpose()?,
    })
}

fn levels(body: LevelsBody) -> ApiResult<Vec<LevelSpec>> {
    let mut out = vec![];
    if let Some(r) = body.reference {
        out.push(level(AccessLevel::Reference, r)?);
    }
    if let Some(c) = body.change {
        out.push(level(AccessLevel::Change, c)?);
    }
    Ok(out)
}

/// Remote Desktop needs the target's RDP port, and a password to log into Windows with.
fn check_rdp(rdp_port: Option<u16>, levels: &[LevelSpec]) -> ApiResult<()> {
    for l in levels.iter().filter(|l| l.policy.rdp) {
        if rdp_port.is_none() {
            return Err(ApiError::invalid(
                "rdp_port",
                format!(
                    "level {} allows Remote Desktop: give the target's rdp_port",
                    l.level
                ),
            ));
        }
        if matches!(l.credential, Some(Credential::PrivateKey(_))) {
            return Err(ApiError::invalid(
                "levels",
                format!(
                    "level {} allows Remote Desktop: its credential must be the Windows account's password",
                    l.level
                ),
            ));
        }
    }
    Ok(())
}

fn target_name(name: &str) -> ApiResult<String> {
    sekisho_domain::user::validate_username(name).map_err(|_| {
        ApiError::invalid(
            "name",
            "use lowercase letters, digits, '.', '-' and '_' (it appears in SSH login names)",
        )
    })?;
    Ok(name.to_owned())
}

/// A host name or IP address, nothing else: no spaces, newlines or option-like `-o...`.
fn host(value: &str) -> ApiResult<String> {
    sekisho_domain::text::check_host(value)
        .map_err(|e| ApiError::invalid("host", e.to_string()))?;
    Ok(value.to_owned())
}

fn host_key(key: &str) -> ApiResult<String> {
    parse_public_key(key)
        .map(|(k, _, _)| k)
        .map_err(|m| ApiError::invalid("host_key", m))
}

/// The targets the caller may see: for a vendor engineer those assigned to their vendor under
/// a contract that has not ended, for staff limited to a site that site's.
#[utoipa::path(get, path = "/api/v1/targets", tag = "targets",
    responses((status = 200, body = Vec<TargetView>), (status = 401, body = ErrorBody)))]
pub async fn list_targets(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<TargetView>>> {
    let assigned = assigned(&state, &caller).await?;
    Ok(Json(
        state
            .store
            .targets()
            .await?
            .iter()
            .filter(|t| sekisho_domain::site::in_scope(&caller.user, t))
            .filter(|t| assigned.as_ref().is_none_or(|a| a.contains(&t.id)))
            .map(|t| view(&state, t))
            .collect(),
    ))
}

/// For a vendor engineer, the targets their vendor works on now; `None` (all) for staff.
async fn assigned(state: &ApiState, caller: &Caller) -> ApiResult<Option<HashSet<TargetId>>> {
    if caller.user.role != sekisho_domain::user::Role::Vendor {
        return Ok(None);
    }
    let Some(vendor) = caller.user.vendor_id else {
        return Ok(Some(HashSet::new()));
    };
    let now = jiff::Timestamp::now();
    Ok(Some(
        state
            .store
            .assignments(AssignmentFilter {
                vendor: Some(vendor),
                target: None,
            })
            .await?
            .into_iter()
            .filter(|a| !a.ended(now))
            .map(|a| a.target_id)
            .collect(),
    ))
}

/// Define a target.
#[utoipa::path(post, path = "/api/v1/targets", tag = "targets", request_body = NewTargetBody,
    responses((status = 201, body = TargetView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_target(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewTargetBody>,
) -> ApiResult<(StatusCode, Json<TargetView>)> {
    let levels = levels(body.levels)?;
    if levels.is_empty() {
        return Err(ApiError::invalid(
            "levels",
            "define at least one of reference or change",
        ));
    }
    if let Some(l) = levels.iter().find(|l| l.credential.is_none()) {
        return Err(ApiError::invalid(
            "levels",
            format!("level {} needs a credential", l.level),
        ));
    }
    if body.port == 0 {
        return Err(ApiError::invalid("port", "must be 1 to 65535"));
    }
    if body.rdp_port == Some(0) {
        return Err(ApiError::invalid("rdp_port", "must be 1 to 65535"));
    }
    check_rdp(body.rdp_port, &levels)?;
    let new = NewTarget {
        name: target_name(&body.name)?,
        host: host(&body.host)?,
        port: body.port,
        host_key: body.host_key.as_deref().map(host_key).transpose()?,
        rdp_port: body.rdp_port,
        site: body.site.as_deref().map(super::extract::site).transpose()?,
        levels,
    };
    let t = state
        .store
        .create_target(&state.at_rest, new, &caller.actor(), caller.source())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &t))))
}

/// One target.
#[utoipa::path(get, path = "/api/v1/targets/{id}", tag = "targets", params(("id" = String, Path)),
    responses((status = 200, body = TargetView), (status = 404, body = ErrorBody)))]
pub async fn get_target(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<TargetView>> {
    let id: TargetId = parse_id(&id, "target")?;
    let t = state
        .store
        .target(id)
        .await?
        .filter(|t| sekisho_domain::site::in_scope(&caller.user, t))
        .ok_or_else(|| ApiError::not_found(format!("target {id}")))?;
    if assigned(&state, &caller)
        .await?
        .is_some_and(|a| !a.contains(&t.id))
    {
        return Err(ApiError::not_found(format!("target {id}")));
    }
    Ok(Json(view(&state, &t)))
}

/// Change a target: address, pinned host key, levels and credentials.
#[utoipa::path(patch, path = "/api/v1/targets/{id}", tag = "targets", params(("id" = String, Path)), request_body = TargetPatchBody,
    responses((status = 200, body = TargetView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_target(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<TargetPatchBody>,
) -> ApiResult<Json<TargetView>> {
    let id: TargetId = parse_id(&id, "target")?;
    if body.port == Some(0) {
        return Err(ApiError::invalid("port", "must be 1 to 65535"));
    }
    if body.rdp_port == Some(Some(0)) {
        return Err(ApiError::invalid("rdp_port", "must be 1 to 65535"));
    }
    let current = state
        .store
        .target(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("target {id}")))?;
    let new_levels = levels(body.levels)?;
    let rdp_port = body.rdp_port.unwrap_or(current.rdp_port);
    check_rdp(rdp_port, &new_levels)?;
    // Levels that stay as they are must not keep Remote Desktop without a port either.
    for (level, policy) in [
        (AccessLevel::Reference, &current.reference),
        (AccessLevel::Change, &current.change),
    ] {
        let kept = policy.as_ref().is_some_and(|p| p.rdp)
            && !new_levels.iter().any(|l| l.level == level)
            && !body.remove_levels.contains(&level);
        if kept && rdp_port.is_none() {
            return Err(ApiError::invalid(
                "rdp_port",
                format!("level {level} allows Remote Desktop: it needs the target's rdp_port"),
            ));
        }
    }
    let changes = TargetChanges {
        name: body.name.as_deref().map(target_name).transpose()?,
        host: body.host.as_deref().map(host).transpose()?,
        port: body.port,
        host_key: body
            .host_key
            .map(|k| k.as_deref().map(host_key).transpose())
            .transpose()?,
        rdp_port: body.rdp_port,
        rdp_certificate: body.clear_rdp_certificate.then_some(None),
        site: body
            .site
            .map(|s| s.as_deref().map(super::extract::site).transpose())
            .transpose()?,
        levels: new_levels,
        remove_levels: body.remove_levels,
    };
    let t = state
        .store
        .update_target(
            &state.at_rest,
            id,
            changes,
            &caller.actor(),
            caller.source(),
        )
        .await?;
    Ok(Json(view(&state, &t)))
}

/// A target as the API shows it, with how this gateway scans uploads.
fn view(state: &ApiState, t: &sekisho_domain::target::Target) -> TargetView {
    let mut v = TargetView::from(t);
    v.upload_scanning = state.settings.upload_scanning.clone();
    v
}
