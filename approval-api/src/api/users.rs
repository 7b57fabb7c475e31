//! Accounts: vendor engineers (created under their vendor) and SSH keys for stock-SSH access.

use aws_lc_rs::digest::{SHA256, digest};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sekisho_domain::ids::{UserId, VendorId};
use sekisho_domain::secret::Secret;
use sekisho_domain::user::{Role, User, UserStatus, validate_username};

use super::dto::{
    NewVendorUserBody, PasswordChangeBody, SshKeyBody, SshKeyView, UserPatchBody, UserView,
};
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::check_vendor_scope;
use super::state::ApiState;
use super::token::Caller;
use super::vendors::{parse_id, required};
use sekisho_store::events::GatewayEvent;
use sekisho_store::users::{NewUser, UserChanges};

/// The account making the request.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(Extension(caller): Extension<Caller>) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}

/// Checks a new password for the account named by `names` (strength, length) and hashes it.
async fn hash_password(
    state: &ApiState,
    pw: String,
    field: &'static str,
    names: &[&str],
) -> ApiResult<String> {
    sekisho_domain::user::check_password(&pw, names)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    state
        .hasher
        .hash(Secret::new(pw))
        .await
        .map_err(super::auth::hasher_error)
}

/// Change your own password (everyone): the current one proves it is you. Every token you
/// hold stops working, this one included: log in again. A password you chose yourself is the
/// secret that, with an enrollment code from IT, enrolls the designated client.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "users", request_body = PasswordChangeBody,
    responses((status = 204, description = "changed; log in again")))]
pub async fn change_own_password(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<PasswordChangeBody>,
) -> ApiResult<StatusCode> {
    let user = &caller.user;
    let stored = state.store.password_hash(user.id).await?;
    let matches = state
        .hasher
        .verify(Secret::new(body.current_password), stored)
        .await
        .map_err(super::auth::hasher_error)?;
    if !matches {
        return Err(ApiError::invalid(
            "current_password",
            "is not your current password",
        ));
    }
    let names = [user.username.as_str(), user.display_name.as_str()];
    let hash = hash_password(&state, body.new_password, "new_password", &names).await?;
    state
        .store
        .update_user(
            user.id,
            UserChanges {
                password_hash: Some(hash),
                ..UserChanges::default()
            },
            &caller.actor(),
            caller.source(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a vendor engineer's account under a vendor.
#[utoipa::path(post, path = "/api/v1/vendors/{id}/users", tag = "users", params(("id" = String, Path)), request_body = NewVendorUserBody,
    responses((status = 201, body = UserView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_vendor_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<NewVendorUserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let vendor: VendorId = parse_id(&id, "vendor")?;
    state
        .store
        .vendor(vendor)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("vendor {vendor}")))?;
    validate_username(&body.username).map_err(|e| ApiError::invalid("username", e.to_string()))?;
    let display_name = body
        .display_name
        .as_deref()
        .map(|d| required("display_name", d, 200))
        .transpose()?;
    let names = [
        body.username.as_str(),
        display_name.as_deref().unwrap_or(""),
    ];
    let hash = hash_password(&state, body.password, "password", &names).await?;
    let user = state
        .store
        .create_user(
            NewUser {
                display_name: display_name.unwrap_or_else(|| body.username.clone()),
                username: body.username,
                email: body.email,
                role: Role::Vendor,
                vendor_id: Some(vendor),
                expires_at: body.expires_at,
                password_hash: Some(hash),
                site: None,
            },
            &caller.actor(),
            caller.source(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// All accounts.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(State(state): State<ApiState>) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(
        state
            .store
            .users(None)
            .await?
            .iter()
            .map(UserView::from)
            .collect(),
    ))
}

/// Vendor engineers may read only their own account.
fn check_self_or_staff(caller: &Caller, id: UserId) -> ApiResult<()> {
    if caller.user.role == Role::Vendor && caller.user.id != id {
        return Err(ApiError::not_found(format!("user {id}")));
    }
    Ok(())
}

/// One account (vendor engineers: only their own).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let id: UserId = parse_id(&id, "user")?;
    check_self_or_staff(&caller, id)?;
    let u = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    Ok(Json(UserView::from(&u)))
}

/// Change an account. `status: disabled` takes effect at once, live sessions included.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserPatchBody,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<UserPatchBody>,
) -> ApiResult<Json<UserView>> {
    let id: UserId = parse_id(&id, "user")?;
    if id == caller.user.id && body.status == Some(UserStatus::Disabled) {
        return Err(ApiError::Conflict {
            code: "conflict",
            message: "you cannot disable your own account".into(),
        });
    }
    let target = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    keep_an_admin(&state, &target, &body).await?;
    if target.source == sekisho_domain::user::AccountSource::Directory && body.password.is_some() {
        return Err(ApiError::Conflict {
            code: "conflict",
            message: format!(
                "{} comes from the hospital's directory, which holds its password",
                target.username
            ),
        });
    }
    let password_hash = match body.password {
        Some(pw) => {
            let names = [target.username.as_str(), target.display_name.as_str()];
            Some(hash_password(&state, pw, "password", &names).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        display_name: body
            .display_name
            .as_deref()
            .map(|d| required("display_name", d, 200))
            .transpose()?,
        email: body.email,
        status: body.status,
        expires_at: body.expires_at,
        password_hash,
        site: match body.site {
            Some(Some(_)) if !sekisho_domain::site::may_be_limited(target.role) => {
                return Err(ApiError::invalid(
                    "site",
                    "only approvers and auditors are limited to a site (admins manage the whole group; a vendor engineer's scope is its vendor)",
                ));
            }
            Some(s) => Some(s.as_deref().map(super::extract::site).transpose()?),
            None => None,
        },
        language: body.language,
    };
    let u = state
        .store
        .update_user(id, changes, &caller.actor(), caller.source())
        .await?;
    if u.status == UserStatus::Disabled {
        state.events.send(GatewayEvent::UserDisabled { user: id });
    }
    Ok(Json(UserView::from(&u)))
}

/// Refuses a change that would leave no admin able to log in now (disabling or expiring the
/// last one): the gateway must stay administrable. `sekisho user add` on the server remains
/// the way back in should every admin account be lost anyway.
async fn keep_an_admin(state: &ApiState, target: &User, body: &UserPatchBody) -> ApiResult<()> {
    let now = jiff::Timestamp::now();
    if target.role != Role::Admin || !target.is_usable(now) {
        return Ok(());
    }
    let mut after = target.clone();
    if let Some(s) = body.status {
        after.status = s;
    }
    if let Some(e) = body.expires_at {
        after.expires_at = e;
    }
    if after.is_usable(now) {
        return Ok(());
    }
    let others = state
        .store
        .users(None)
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Admin && u.id != target.id && u.is_usable(now))
        .count();
    if others == 0 {
        return Err(ApiError::Conflict {
            code: "last_admin",
            message: format!(
                "{} is the last admin who can log in: create another admin before disabling or expiring this one",
                target.username
            ),
        });
    }
    Ok(())
}

/// Parses an OpenSSH public key line and returns (normalised key, SHA256 fingerprint, comment).
pub(crate) fn parse_public_key(line: &str) -> Result<(String, String, Option<String>), String> {
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let mut parts = line.split_whitespace();
    let kind = parts.next().ok_or("empty key")?;
    if !TYPES.contains(&kind) {
        return Err(format!(
            "unsupported key type `{kind}` (use ssh-ed25519, ecdsa-sha2-* or ssh-rsa)"
        ));
    }
    let b64 = parts.next().ok_or("missing key data after the type")?;
    let blob = STANDARD
        .decode(b64)
        .map_err(|_| "key data is not valid base64".to_owned())?;
    // The blob starts with the key type as an SSH string: u32 length, then the name.
    let ok = blob.len() > 4 + kind.len()
        && blob[..4] == u32::try_from(kind.len()).unwrap_or(0).to_be_bytes()
        && &blob[4..4 + kind.len()] == kind.as_bytes();
    if !ok {
        return Err(format!("key data does not hold a {kind} key"));
    }
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(digest(&SHA256, &blob)));
    let comment = parts.collect::<Vec<_>>().join(" ");
    Ok((
        format!("{kind} {b64}"),
        fingerprint,
        (!comment.is_empty()).then_some(comment),
    ))
}

/// The SSH public keys registered for an account.
#[utoipa::path(get, path = "/api/v1/users/{id}/ssh-keys", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = Vec<SshKeyView>), (status = 404, body = ErrorBody)))]
pub async fn list_ssh_keys(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SshKeyView>>> {
    let id: UserId = parse_id(&id, "user")?;
    check_self_or_staff(&caller, id)?;
    Ok(Json(
        state
            .store
            .ssh_keys(id)
            .await?
            .into_iter()
            .map(SshKeyView::from)
            .collect(),
    ))
}

/// Register an SSH public key for stock-OpenSSH access. Registered by an admin it works at
/// once; registered by the engineer themself it is `pending` until an approver or admin
/// approves it (`POST .../ssh-keys/{key}/approve`), so a stolen password alone never yields
/// SSH access.
#[utoipa::path(post, path = "/api/v1/users/{id}/ssh-keys", tag = "users", params(("id" = String, Path)), request_body = SshKeyBody,
    responses((status = 201, body = SshKeyView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_ssh_key(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<SshKeyBody>,
) -> ApiResult<(StatusCode, Json<SshKeyView>)> {
    let id: UserId = parse_id(&id, "user")?;
    check_self_or_staff(&caller, id)?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    if user.role != Role::Vendor {
        return Err(ApiError::invalid(
            "user",
            "SSH keys are for vendor engineers' accounts",
        ));
    }
    if let Some(v) = user.vendor_id {
        check_vendor_scope(&caller, v)?;
    }
    let (key, fingerprint, comment) =
        parse_public_key(&body.public_key).map_err(|m| ApiError::invalid("public_key", m))?;
    let k = state
        .store
        .add_ssh_key(
            &user,
            key,
            fingerprint,
            comment,
            &caller.actor(),
            caller.source(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(SshKeyView::from(k))))
}

/// Approve a key an engineer registered for themself (approvers and admins). Whoever approves
/// it counts as having given the engineer a credential (separation of duties).
#[utoipa::path(post, path = "/api/v1/users/{id}/ssh-keys/{key}/approve", tag = "users",
    params(("id" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = SshKeyView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_ssh_key(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<SshKeyView>> {
    let id: UserId = parse_id(&id, "user")?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    let key = state
        .store
        .approve_ssh_key(&user, &key, &caller.user, caller.source())
        .await?;
    Ok(Json(SshKeyView::from(key)))
}

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EnrollmentCodeView {
    /// Give this to the engineer once: `sekisho-client enroll --gateway GATEWAY --code CODE`.
    pub code: String,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub username: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// `host:port` of the gateway's QUIC listener.
    pub gateway: String,
    /// The gateway certificate's fingerprint, which the client pins.
    pub gateway_fingerprint: String,
}

/// A one-time code with which a vendor engineer enrolls the designated client (approvers and
/// admins). Only its hash is stored; it is shown once.
#[utoipa::path(post, path = "/api/v1/users/{id}/enrollment-codes", tag = "users", params(("id" = String, Path)),
    responses((status = 201, body = EnrollmentCodeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_enrollment_code(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<EnrollmentCodeView>)> {
    let id: UserId = parse_id(&id, "user")?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    if user.role != Role::Vendor {
        return Err(ApiError::invalid(
            "user",
            "enrollment codes are for vendor engineers' accounts",
        ));
    }
    if !user.is_usable(jiff::Timestamp::now()) {
        return Err(ApiError::invalid(
            "user",
            format!("account {} is disabled or expired", user.username),
        ));
    }
    // 20 characters from a 32-letter alphabet without look-alikes: 100 bits.
    let code =
        sekisho_store::crypto::typed_code(5, 4).map_err(|e| ApiError::Internal(e.to_string()))?;
    let hash = hex::encode(digest(&SHA256, code.as_bytes()));
    let e = &state.settings.enrollment;
    let expires_at = jiff::Timestamp::now() + e.code_ttl;
    state
        .store
        .create_enrollment_code(&user, &hash, expires_at, &caller.user, caller.source())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentCodeView {
            code,
            user_id: user.id,
            username: user.username,
            expires_at,
            gateway: e.gateway.clone(),
            gateway_fingerprint: e.fingerprint.clone(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_public_key;

    #[test]
    fn public_keys_are_checked_and_fingerprinted_like_ssh_keygen() {
        // A key made with `ssh-keygen -t ed25519`; `ssh-keygen -l` printed this fingerprint.
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPALiwi/7p77Pl5cwHoa+8V/MnariFBFPyU+j2fOVB2H alice@laptop";
        let (key, fp, comment) = parse_public_key(line).unwrap();
        assert_eq!(
            key,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPALiwi/7p77Pl5cwHoa+8V/MnariFBFPyU+j2fOVB2H"
        );
        assert_eq!(fp, "SHA256:N6Aksw9KkWELPFfmk1/e4YF+I19Sl3eCyiAlhl0BXvw");
        assert_eq!(comment.as_deref(), Some("alice@laptop"));
        assert!(parse_public_key("ssh-dss AAAA").is_err());
        assert!(parse_public_key("ssh-ed25519 !!!").is_err());
        // A valid base64 blob of another type.
        assert!(
            parse_public_key(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPALiwi/7p77Pl5cwHoa+8V/MnariFBFPyU+j2fOVB2H"
            )
            .is_err()
        );
    }
}
