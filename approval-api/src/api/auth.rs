//! Identity: EdDSA-signed login tokens, the login endpoint (slowed, then locked, after
//! repeated failures), and [`Caller`], the authenticated account every handler receives.

use std::time::Duration;

use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::secret::Secret;
use sekisho_domain::user::{AccountSource, User};
use sekisho_domain::vendor::VendorStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::UserView;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::{Caller, Claims};
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::mfa::CodeVerdict;
use sekisho_store::password;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The second factor: the authenticator's 6-digit code, or a one-time recovery code.
    /// Needed when the account has one (the answer is 401 `mfa_required` without it).
    #[serde(default)]
    pub otp: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: UserView,
}

/// How a hasher failure is answered.
pub(crate) fn hasher_error(e: password::HasherError) -> ApiError {
    match e {
        password::HasherError::Busy => ApiError::Unavailable {
            code: "busy",
            message: e.to_string(),
            retry_after: 1,
        },
        other => ApiError::Internal(other.to_string()),
    }
}

/// The slowest answer to a failed login that an attacker can cause (see `throttle`).
fn wait_message(wait: Duration, zone: &sekisho_domain::zone::DisplayZone, from: &str) -> ApiError {
    let seconds = wait.as_secs().max(1);
    let until = Timestamp::now() + SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(1));
    ApiError::TooManyRequests {
        message: format!(
            "too many failed logins {from}; try again after {} ({seconds} s)",
            zone.date_time(until)
        ),
        retry_after: seconds,
    }
}

/// A username and password, checked as a login checks them (the address and the name are
/// slowed down after failures; every refusal audited); the usable account they name.
pub(crate) async fn check_password(
    state: &ApiState,
    username: &str,
    password: String,
    source: Option<&str>,
) -> ApiResult<User> {
    let source = source.map(ToOwned::to_owned);
    let settings = &state.settings;
    let claimed = sekisho_domain::audit::claimed(username);
    let fail = |reason: &str, user: Option<&User>| NewAuditEvent {
        actor: match user {
            Some(u) => Actor::user(u),
            None => Actor::Anonymous {
                claimed: claimed.clone(),
            },
        },
        outcome: Outcome::Denied,
        vendor_id: user.and_then(|u| u.vendor_id),
        source_addr: source.clone(),
        reason: Some(reason.to_owned()),
        event: AuditEvent::LoginFailed {
            username: claimed.clone(),
        },
    };
    if let Err(wait) = state.throttle.check(source.as_deref()) {
        state
            .failures
            .record(
                sekisho_domain::refusal::Channel::ApiLogin,
                fail("too many failed logins from this address", None),
            )
            .await?;
        return Err(wait_message(wait, &settings.zone, "from your address"));
    }
    // A name no account can have is not looked up (and costs the log a short row).
    let valid = sekisho_domain::user::validate_username(username).is_ok();
    let user = match valid {
        true => state.store.user_by_username(username).await?,
        false => None,
    };
    // Names that are not local accounts are the directory's, when there is one.
    if let Some(directory) = &state.directory
        && valid
        && user
            .as_ref()
            .is_none_or(|u| u.source == AccountSource::Directory)
    {
        return directory_login(state, directory, username, password, user, source).await;
    }
    let generic = || ApiError::Unauthorized("wrong username or password".into());
    let now = Timestamp::now();
    let hash = match &user {
        Some(u) => state.store.password_hash(u.id).await?,
        None => None,
    };
    let checked = state.hasher.verify(Secret::new(password), hash).await;
    let matched = match checked {
        Ok(m) => m,
        Err(e) => {
            // Refused for capacity: audited like any other refusal (and summarised).
            state
                .failures
                .record(
                    sekisho_domain::refusal::Channel::ApiLogin,
                    fail("too many password checks at once", user.as_ref()),
                )
                .await?;
            return Err(hasher_error(e));
        }
    };
    if !matched {
        let slowdown = state.throttle.failed(source.as_deref(), username);
        let reason = if user.is_some() {
            "wrong password"
        } else {
            "unknown username"
        };
        state
            .failures
            .record(
                sekisho_domain::refusal::Channel::ApiLogin,
                fail(reason, user.as_ref()),
            )
            .await?;
        tokio::time::sleep(slowdown).await;
        return Err(generic());
    }
    let Some(user) = user else {
        return Err(generic()); // unreachable: an unknown name never matches
    };
    if !user.is_usable(now) {
        state
            .store
            .audit(fail("account disabled or expired", Some(&user)))
            .await?;
        return Err(ApiError::Unauthorized(format!(
            "account {} is disabled or expired",
            user.username
        )));
    }
    if let Some(v) = user.vendor_id {
        let vendor = state
            .store
            .vendor(v)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("vendor {v} missing")))?;
        if vendor.status != VendorStatus::Active {
            let reason = format!("vendor {} is {}", vendor.name, vendor.status.as_str());
            state.store.audit(fail(&reason, Some(&user))).await?;
            return Err(ApiError::Forbidden(reason));
        }
    }
    Ok(user)
}

/// A login through the hospital's directory: the password is the directory's, the role its
/// groups'; the account is made or brought up to date here, and cut off when the directory
/// no longer puts the person in a Sekisho group.
async fn directory_login(
    state: &ApiState,
    directory: &crate::directory::Directory,
    username: &str,
    password: String,
    known: Option<User>,
    source: Option<String>,
) -> ApiResult<User> {
    use crate::directory::Verdict;
    let claimed = sekisho_domain::audit::claimed(username);
    let failed = |reason: String, user: Option<&User>| NewAuditEvent {
        actor: match user {
            Some(u) => Actor::user(u),
            None => Actor::Anonymous {
                claimed: claimed.clone(),
            },
        },
        outcome: Outcome::Denied,
        vendor_id: None,
        source_addr: source.clone(),
        reason: Some(reason),
        event: AuditEvent::LoginFailed {
            username: claimed.clone(),
        },
    };
    let login = sekisho_domain::refusal::Channel::ApiLogin;
    let verdict = match directory.login(username, &password).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "the directory does not answer; refusing the login");
            state
                .failures
                .record(login, failed(e.to_string(), known.as_ref()))
                .await?;
            return Err(ApiError::Unavailable {
                code: "directory_unavailable",
                message: "the hospital's directory does not answer: try again later, or log in with a local (break-glass) account".into(),
                retry_after: 5,
            });
        }
    };
    match verdict {
        Verdict::Refused(reason) => {
            let slowdown = state.throttle.failed(source.as_deref(), username);
            state
                .failures
                .record(login, failed(reason.to_owned(), known.as_ref()))
                .await?;
            tokio::time::sleep(slowdown).await;
            Err(ApiError::Unauthorized("wrong username or password".into()))
        }
        Verdict::NoGroup { dn } => {
            if let Some(u) = &known {
                state.store.directory_removed(u, source.as_deref()).await?;
            }
            let reason = format!("{dn} is in no Sekisho group of the directory");
            state.store.audit(failed(reason, known.as_ref())).await?;
            Err(ApiError::Forbidden(format!(
                "{username} is in none of Sekisho's groups in the hospital's directory: ask the hospital's IT"
            )))
        }
        Verdict::Person(person) => {
            let user = state
                .store
                .sync_directory_user(&person, source.as_deref())
                .await?;
            if !user.is_usable(Timestamp::now()) {
                state
                    .store
                    .audit(failed("account disabled or expired".into(), Some(&user)))
                    .await?;
                return Err(ApiError::Unauthorized(format!(
                    "account {} is disabled or expired",
                    user.username
                )));
            }
            Ok(user)
        }
    }
}

/// Log in with a username and password.
///
/// Failures slow down the address they come from (after `[api] login_max_failures` in a row
/// it must wait, longer each time, up to `[api] lockout_minutes`) and the name tried (each
/// failure answers a little later), but never lock the account itself: the rightful user at
/// another address logs in. Names that exist and names that do not are treated alike.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body = LoginBody,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "wrong username or password; or `mfa_required`: the account's one-time code is needed (`otp`)", body = ErrorBody),
        (status = 403, description = "the vendor is not active; or `mfa_enrollment_required`: the role must enrol a second factor first", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 429, description = "too many failures from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "busy or the database is unavailable; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    source: super::extract::Source,
    Json(body): Json<LoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    let source = source.0;
    let settings = &state.settings;
    let user = check_password(&state, &body.username, body.password, source.as_deref()).await?;
    let now = Timestamp::now();
    second_factor(&state, &user, body.otp.as_deref(), source.as_deref()).await?;
    state.throttle.succeeded(source.as_deref(), &body.username);
    let expires_at = now + SignedDuration::from_mins(i64::from(settings.token_ttl_minutes));
    let token = state.tokens.issue(&Claims {
        sub: user.id.to_string(),
        role: user.role,
        vendor: user.vendor_id.map(|v| v.to_string()),
        iat: now.as_second(),
        exp: expires_at.as_second(),
        jti: token_id()?,
        tgen: state.store.token_generation(user.id).await?,
    })?;
    state
        .store
        .audit(NewAuditEvent {
            actor: Actor::user(&user),
            outcome: Outcome::Success,
            vendor_id: user.vendor_id,
            source_addr: source.clone(),
            reason: None,
            event: AuditEvent::LoginSucceeded {
                username: user.username.clone(),
            },
        })
        .await?;
    Ok(Json(LoginResponse {
        token,
        expires_at,
        user: UserView::from(&user),
    }))
}

/// After the right password: the second factor, if the account has one or its role needs
/// one. A wrong or replayed code is a failed login (audited, and it slows the address and
/// the name down like a wrong password).
async fn second_factor(
    state: &ApiState,
    user: &User,
    otp: Option<&str>,
    source: Option<&str>,
) -> ApiResult<()> {
    let mfa = state.store.mfa_state(user.id).await?;
    if !mfa.enabled {
        if state.settings.mfa_required.contains(&user.role) {
            return Err(ApiError::SecondFactor {
                enrol: true,
                message: format!(
                    "{}s must use a second factor: enrol one with POST /api/v1/auth/mfa/enroll (or the console's login page), then log in with its code",
                    user.role.as_str()
                ),
            });
        }
        return Ok(());
    }
    let Some(code) = otp.filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError::SecondFactor {
            enrol: false,
            message: "this account needs its one-time code (otp): the 6 digits of its authenticator, or a recovery code".into(),
        });
    };
    let failed = |reason: &str| NewAuditEvent {
        actor: Actor::user(user),
        outcome: Outcome::Denied,
        vendor_id: user.vendor_id,
        source_addr: source.map(ToOwned::to_owned),
        reason: Some(reason.to_owned()),
        event: AuditEvent::LoginFailed {
            username: user.username.clone(),
        },
    };
    let login = sekisho_domain::refusal::Channel::ApiLogin;
    let verdict = state
        .store
        .second_factor(&state.throttle, user, &state.at_rest, code, source, source)
        .await?;
    let (reason, slowdown) = match verdict {
        CodeVerdict::Accepted => return Ok(()),
        // Wrong codes hold the account's second factor back, from every address.
        CodeVerdict::Held(wait) => {
            let reason = "too many wrong one-time codes for this account";
            state.failures.record(login, failed(reason)).await?;
            return Err(wait_message(
                wait,
                &state.settings.zone,
                "with a wrong one-time code for this account",
            ));
        }
        CodeVerdict::Refused {
            replayed: true,
            slowdown,
        } => ("one-time code already used", slowdown),
        CodeVerdict::Refused {
            replayed: false,
            slowdown,
        } => ("wrong one-time code", slowdown),
    };
    state.failures.record(login, failed(reason)).await?;
    tokio::time::sleep(slowdown).await;
    Err(ApiError::Unauthorized(format!(
        "{reason}: enter the current code of your authenticator"
    )))
}

/// A random token id (128 bits, hex).
fn token_id() -> ApiResult<String> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| ApiError::Internal("random number generator failed".into()))?;
    Ok(hex::encode(id))
}

/// Log out: the token this request carries stops working at once (audited).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "the token is revoked"), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> ApiResult<axum::http::StatusCode> {
    state
        .store
        .revoke_token(
            &caller.claims.jti,
            caller.claims.expires_at(),
            &caller.user,
            caller.source(),
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Who the token belongs to (the web console asks this on every page).
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(axum::Extension(caller): axum::Extension<Caller>) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}
