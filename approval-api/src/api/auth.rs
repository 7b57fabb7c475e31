//! Identity: EdDSA-signed login tokens, the login endpoint (slowed, then locked, after
//! repeated failures), and [`Caller`], the authenticated account every handler receives.

use std::time::Duration;

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::ids::UserId;
use sekisho_domain::secret::Secret;
use sekisho_domain::user::{Role, User};
use sekisho_domain::vendor::{Vendor, VendorStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::dto::UserView;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::password;

/// The gateway's token keys: the current signing key and every key accepted for checking,
/// each with its `kid`, so a key can be rotated without logging everyone out.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why token keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid token key: {0}")]
pub struct TokenKeyError(String);

impl TokenKeys {
    /// From the Ed25519 private key (PKCS#8 PEM) and its public key (SPKI PEM).
    pub fn ed25519(
        kid: String,
        private_pem: &Secret<String>,
        public_pem: &str,
    ) -> Result<Self, TokenKeyError> {
        let encoding = EncodingKey::from_ed_pem(private_pem.expose().as_bytes())
            .map_err(|e| TokenKeyError(e.to_string()))?;
        let decoding = DecodingKey::from_ed_pem(public_pem.as_bytes())
            .map_err(|e| TokenKeyError(e.to_string()))?;
        Ok(Self {
            decoding: vec![(kid.clone(), decoding)],
            kid,
            encoding,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing token: {e}")))
    }

    /// Checks a token: EdDSA only (so `none` and HMAC are refused), a known `kid`, a valid
    /// signature and an unexpired `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        // Read `alg` ourselves first: a header naming an algorithm the library does not know
        // (`none`) should be refused as such, not as "malformed".
        let head = token.split('.').next().ok_or("malformed token")?;
        let head: serde_json::Value = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed token")?;
        if head.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err("token algorithm not accepted");
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        let kid = header.kid.ok_or("token has no key id")?;
        let key = self
            .decoding
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key)
            .ok_or("token signed by an unknown key")?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat", "jti"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired; log in again",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "token signature is invalid",
                _ => "invalid token",
            })
    }
}

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: Role,
    /// The vendor, for vendor engineers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// This token's id: a logout revokes exactly it.
    pub jti: String,
    /// The account's token generation when it was issued: a password change or disabling
    /// the account bumps the generation and so revokes every earlier token.
    pub tgen: i64,
}

impl Claims {
    /// When the token stops working anyway.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_second(self.exp).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// The authenticated account making a request, re-read from the database on every request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The caller's vendor, for vendor engineers.
    pub vendor: Option<Vendor>,
    pub source: Option<String>,
    /// The token this request came with.
    pub claims: Claims,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::user(&self.user)
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The vendor a vendor engineer is limited to; `None` for staff.
    pub fn vendor_scope(&self) -> Option<sekisho_domain::ids::VendorId> {
        if self.user.role == Role::Vendor {
            self.user.vendor_id
        } else {
            None
        }
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

/// Resolves a bearer token into a [`Caller`], refusing disabled or expired accounts and
/// engineers of vendors that are not active.
pub(crate) async fn authenticate(
    state: &ApiState,
    token: &str,
    source: Option<String>,
) -> ApiResult<Caller> {
    let claims = state
        .tokens
        .verify(token)
        .map_err(|m| ApiError::Unauthorized(m.to_owned()))?;
    let id: UserId = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("invalid token".into()))?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
    if !user.is_usable(Timestamp::now()) {
        return Err(ApiError::Unauthorized(format!(
            "account {} is disabled or expired",
            user.username
        )));
    }
    if user.role != claims.role {
        return Err(ApiError::Unauthorized(
            "account role changed; log in again".into(),
        ));
    }
    if state.store.token_generation(user.id).await? != claims.tgen {
        return Err(ApiError::Unauthorized(
            "this token was revoked (password changed or account disabled); log in again".into(),
        ));
    }
    if state.store.token_revoked(&claims.jti).await? {
        return Err(ApiError::Unauthorized(
            "this token was revoked by logging out; log in again".into(),
        ));
    }
    let vendor = match user.vendor_id {
        Some(v) => {
            let vendor = state
                .store
                .vendor(v)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("vendor no longer exists".into()))?;
            if vendor.status != VendorStatus::Active {
                return Err(ApiError::Forbidden(format!(
                    "vendor {} is {}",
                    vendor.name,
                    vendor.status.as_str()
                )));
            }
            Some(vendor)
        }
        None => None,
    };
    Ok(Caller {
        user,
        vendor,
        source,
        claims,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
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
fn wait_message(wait: Duration, zone: &sekisho_domain::zone::DisplayZone) -> ApiError {
    let seconds = wait.as_secs().max(1);
    let until = Timestamp::now() + SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(1));
    ApiError::TooManyRequests {
        message: format!(
            "too many failed logins from your address; try again after {} ({seconds} s)",
            zone.date_time(until)
        ),
        retry_after: seconds,
    }
}

/// Log in with a username and password.
///
/// Failures slow down the address they come from (after `[api] login_max_failures` in a row
/// it must wait, longer each time, up to `[api] lockout_minutes`) and the name tried (each
/// failure answers a little later), but never lock the account itself: the rightful user at
/// another address logs in. Names that exist and names that do not are treated alike.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "wrong username or password", body = ErrorBody),
        (status = 403, description = "the vendor is not active", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 429, description = "too many failures from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "busy or the database is unavailable; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    source: super::Source,
    Json(body): Json<LoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    let source = source.0;
    let settings = &state.settings;
    let claimed = sekisho_domain::audit::claimed(&body.username);
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
        return Err(wait_message(wait, &settings.zone));
    }
    // A name no account can have is not looked up (and costs the log a short row).
    let user = match sekisho_domain::user::validate_username(&body.username) {
        Ok(()) => state.store.user_by_username(&body.username).await?,
        Err(_) => None,
    };
    let generic = || ApiError::Unauthorized("wrong username or password".into());
    let now = Timestamp::now();
    let hash = match &user {
        Some(u) => state.store.password_hash(u.id).await?,
        None => None,
    };
    let checked = state.hasher.verify(Secret::new(body.password), hash).await;
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
        let slowdown = state.throttle.failed(source.as_deref(), &body.username);
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
