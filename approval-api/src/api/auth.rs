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
use crate::password;
use crate::store::audit::NewAuditEvent;

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
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
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
}

/// The authenticated account making a request, re-read from the database on every request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The caller's vendor, for vendor engineers.
    pub vendor: Option<Vendor>,
    pub source: Option<String>,
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

/// A hash to verify against for unknown usernames, so timing does not reveal which exist.
static DUMMY_HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

async fn verify_password(password: Secret<String>, hash: Option<String>) -> bool {
    let hash = match hash {
        Some(h) => Some(h),
        None => DUMMY_HASH
            .get_or_init(|| password::hash(&Secret::new("sekisho-dummy-password".into())).ok())
            .clone(),
    };
    tokio::task::spawn_blocking(move || hash.is_some_and(|h| password::verify(&password, &h)))
        .await
        .unwrap_or(false)
}

/// Log in with a username and password.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "wrong username or password", body = ErrorBody),
        (status = 403, description = "the vendor is not active", body = ErrorBody),
        (status = 429, description = "locked after repeated failures", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    source: super::Source,
    Json(body): Json<LoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    let source = source.0;
    let settings = &state.settings;
    let user = state.store.user_by_username(&body.username).await?;
    let fail = |reason: &str, user: Option<&User>| NewAuditEvent {
        actor: match user {
            Some(u) => Actor::user(u),
            None => Actor::Anonymous {
                claimed: body.username.clone(),
            },
        },
        outcome: Outcome::Denied,
        vendor_id: user.and_then(|u| u.vendor_id),
        source_addr: source.clone(),
        reason: Some(reason.to_owned()),
        event: AuditEvent::LoginFailed {
            username: body.username.clone(),
        },
    };
    let generic = || ApiError::Unauthorized("wrong username or password".into());
    let now = Timestamp::now();
    let Some(user) = user else {
        verify_password(Secret::new(body.password), None).await;
        state.store.audit(fail("unknown username", None)).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Err(generic());
    };
    let lock = state.store.login_lock(user.id).await?;
    if let Some(until) = lock.locked_until.filter(|u| *u > now) {
        state
            .store
            .audit(fail("account locked after repeated failures", Some(&user)))
            .await?;
        return Err(ApiError::TooManyRequests(format!(
            "too many failed logins; try again after {}",
            settings.zone.date_time(until)
        )));
    }
    let hash = state.store.password_hash(user.id).await?;
    if !verify_password(Secret::new(body.password), hash).await {
        let lock = state
            .store
            .record_login_failure(user.id, settings.login_max_failures, settings.lockout)
            .await?;
        let reason = if lock.locked_until.is_some() {
            "wrong password; account locked"
        } else {
            "wrong password"
        };
        state.store.audit(fail(reason, Some(&user))).await?;
        // Each failure in a row waits longer before answering: 200 ms, 400 ms, ... up to 3 s.
        let exp = u32::try_from(lock.failures.clamp(1, 5) - 1).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(exp)).min(Duration::from_secs(3)))
            .await;
        return Err(generic());
    }
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
    state.store.reset_login_failures(user.id).await?;
    let expires_at = now + SignedDuration::from_mins(i64::from(settings.token_ttl_minutes));
    let token = state.tokens.issue(&Claims {
        sub: user.id.to_string(),
        role: user.role,
        vendor: user.vendor_id.map(|v| v.to_string()),
        iat: now.as_second(),
        exp: expires_at.as_second(),
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

/// Who the token belongs to (the web console asks this on every page).
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(axum::Extension(caller): axum::Extension<Caller>) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}
