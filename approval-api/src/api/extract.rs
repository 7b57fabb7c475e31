//! Small things handlers take from a request: the client's address, a page size, the
//! caller's vendor scope.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::error::ApiError;
use super::token::Caller;

/// The client's address, when the server recorded it.
#[derive(Clone, Debug)]
pub struct Source(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// A page size from a query: `default` when absent, 1 to 1000 when given.
pub(crate) fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit {n} is out of range: use 1 to 1000"
        ))),
    }
}

/// Checks a caller may see things of `vendor` (vendor engineers only their own).
pub(crate) fn check_vendor_scope(
    caller: &Caller,
    vendor: sekisho_domain::ids::VendorId,
) -> Result<(), ApiError> {
    match caller.vendor_scope() {
        Some(own) if own != vendor => Err(ApiError::not_found("no such item for your vendor")),
        _ => Ok(()),
    }
}

/// A site name from a request body (targets and staff accounts), checked.
pub(crate) fn site(value: &str) -> Result<String, ApiError> {
    sekisho_domain::site::check_site(value)
        .map_err(|e| ApiError::invalid("site", e.to_string()))?;
    Ok(value.to_owned())
}

/// Runs file work (recordings) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}
