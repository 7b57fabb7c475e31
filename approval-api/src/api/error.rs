//! One error type for every handler: a status and a JSON body
//! `{"error": {"code": "...", "message": "..."}}`. Internal errors are logged with detail and
//! answered with a bare 500.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sekisho_domain::request::TransitionError;
use sekisho_store::StoreError;
use sekisho_store::requests::ActionError;

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable.
    pub code: String,
    /// For people; names the field or the rule.
    pub message: String,
}

/// What a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    /// The password was right; the login needs the second factor's code too (401,
    /// `mfa_required`), or the account must enrol one first (403, `mfa_enrollment_required`).
    SecondFactor {
        enrol: bool,
        message: String,
    },
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed(String),
    Conflict {
        code: &'static str,
        message: String,
    },
    /// Validation of a field: the message names it.
    Invalid {
        field: &'static str,
        message: String,
    },
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Slow down: try again after `retry_after` seconds (sent as `Retry-After`).
    TooManyRequests {
        message: String,
        retry_after: u64,
    },
    /// Something the gateway depends on (the database, the password hashers) cannot serve
    /// now; nothing was changed. Answered 503 with `Retry-After`.
    Unavailable {
        code: &'static str,
        message: String,
        retry_after: u64,
    },
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(format!("{} not found", what.into()))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The stable error code and the message, as sent in the JSON body (also used where
    /// the same rules answer over another transport, e.g. the designated client).
    pub fn code_and_message(self) -> (&'static str, String) {
        let (_, code, message) = self.parts();
        (code, message)
    }

    fn parts(self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::SecondFactor {
                enrol: false,
                message,
            } => (StatusCode::UNAUTHORIZED, "mfa_required", message),
            ApiError::SecondFactor {
                enrol: true,
                message,
            } => (StatusCode::FORBIDDEN, "mfa_enrollment_required", message),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::MethodNotAllowed(m) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", m)
            }
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            ApiError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{field}: {message}"),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than [api] max_body_bytes".to_owned(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json".to_owned(),
            ),
            ApiError::TooManyRequests { message, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            }
            ApiError::Unavailable { code, message, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error answering an API request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the gateway log has the details".to_owned(),
                )
            }
        }
    }
}

impl ApiError {
    /// Seconds after which the same request may succeed, for `Retry-After`.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after, .. }
            | ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let (status, code, message) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::NotFound(m) => ApiError::NotFound(format!("{m} not found")),
            // The database failed (down, disk full, locked): nothing was changed, and the
            // caller may try again; fail closed with 503 rather than a bare 500.
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database failure answering an API request");
                ApiError::Unavailable {
                    code: sekisho_domain::refusal::Code::DatabaseUnavailable.as_str(),
                    message: "the database cannot serve this request right now; nothing was \
                              changed, try again shortly"
                        .into(),
                    retry_after: 5,
                }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        let message = e.to_string();
        match e {
            TransitionError::SelfApproval { .. }
            | TransitionError::IssuedCredentials { .. }
            | TransitionError::NotAnApprover
            | TransitionError::NotRequester { .. } => ApiError::Forbidden(message),
            TransitionError::InvalidState { .. } => ApiError::Conflict {
                code: "invalid_transition",
                message,
            },
            TransitionError::AlreadyApproved { .. } => ApiError::Conflict {
                code: "already_approved",
                message,
            },
            TransitionError::VendorInactive { .. } | TransitionError::VendorNotQualified { .. } => {
                ApiError::Conflict {
                    code: "vendor_not_qualified",
                    message,
                }
            }
            TransitionError::WindowEnded { .. }
            | TransitionError::WindowNotEnded { .. }
            | TransitionError::EmergencyDisabled { .. }
            | TransitionError::NotApproved { .. } => ApiError::Conflict {
                code: "invalid_transition",
                message,
            },
        }
    }
}

impl From<sekisho_store::requests::FileError> for ApiError {
    fn from(e: sekisho_store::requests::FileError) -> Self {
        use sekisho_store::requests::FileError;
        match e {
            FileError::NotAVendor => ApiError::Forbidden(e.to_string()),
            FileError::Invalid { field, message } => ApiError::Invalid { field, message },
            FileError::Store(s) => s.into(),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Rule(r) => r.into(),
            ActionError::Store(s) => s.into(),
        }
    }
}

/// `axum::Json` whose rejections are ours: malformed JSON and unknown or missing fields are
/// 400 naming the problem, oversized bodies 413, a wrong content type 415.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                JsonRejection::JsonDataError(e) => ApiError::BadRequest(format!(
                    "invalid JSON body: {}",
                    std::error::Error::source(&e)
                        .map_or_else(|| e.body_text(), ToString::to_string)
                )),
                JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!(
                    "malformed JSON: {}",
                    std::error::Error::source(&e)
                        .map_or_else(|| e.body_text(), ToString::to_string)
                )),
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that may be absent: an empty body is `None`, anything else must parse.
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(r.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        // JSON `null` is "no body" too, as the schema (an optional body) allows.
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}
