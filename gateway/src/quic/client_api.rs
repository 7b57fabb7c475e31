//! What the designated client may ask besides opening a service: the vendor's work requests
//! and filing a new one, as the engineer its certificate names. The same rules as the HTTP
//! API apply (`Store::file_application`, which both file through); refusals carry the same
//! codes and messages.

use sekisho_domain::refusal::Code;
use sekisho_domain::request::WorkRequest;
use sekisho_domain::user::User;
use sekisho_protocol::{NewRequest, RequestSummary, ServerMessage};
use sekisho_store::requests::{Application, FileError, RequestFilter};

use crate::session::Shared;

fn summary(r: &WorkRequest) -> RequestSummary {
    RequestSummary {
        number: r.number,
        target: r.target_name.clone(),
        level: r.level.as_str().to_owned(),
        status: r.status.as_str().to_owned(),
        window_start: r.window.start.to_string(),
        window_end: r.window.end.to_string(),
        reason: r.reason.clone(),
    }
}

fn denied(code: Code, message: String) -> ServerMessage {
    ServerMessage::Denied {
        code: code.as_str().to_owned(),
        message,
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> ServerMessage {
    tracing::error!(error = %e, "database failure answering the designated client");
    denied(
        Code::DatabaseUnavailable,
        "the gateway cannot read requests right now (database unavailable); try again later".into(),
    )
}

/// The requests of `user`'s vendor, newest first.
pub async fn list(shared: &Shared, user: &User) -> ServerMessage {
    let Some(vendor) = user.vendor_id else {
        return denied(
            Code::Forbidden,
            "only vendor engineers have requests".into(),
        );
    };
    let filter = RequestFilter {
        vendor_id: Some(vendor),
        site: None,
        limit: 200,
        ..RequestFilter::default()
    };
    match shared.store.requests(&filter).await {
        Ok(requests) => ServerMessage::Requests {
            requests: requests.iter().map(|r| summary(&r.request)).collect(),
        },
        Err(e) => unavailable(&e),
    }
}

/// Files a request as `user`.
pub async fn file(shared: &Shared, user: &User, new: NewRequest, peer: &str) -> ServerMessage {
    let field =
        |name: &str, e: &dyn std::fmt::Display| denied(Code::Invalid, format!("{name}: {e}"));
    let level = match new.level.parse() {
        Ok(l) => l,
        Err(_) => return field("level", &"must be `reference` or `change`"),
    };
    let window_start = match new.window_start.parse() {
        Ok(t) => t,
        Err(e) => {
            return field(
                "from",
                &format!("`{}` is not an RFC 3339 time ({e})", new.window_start),
            );
        }
    };
    let window_end = match new.window_end.parse() {
        Ok(t) => t,
        Err(e) => {
            return field(
                "until",
                &format!("`{}` is not an RFC 3339 time ({e})", new.window_end),
            );
        }
    };
    let application = Application {
        target: new.target,
        level,
        window: sekisho_domain::request::Window {
            start: window_start,
            end: window_end,
        },
        reason: new.reason,
        plan: new.plan.unwrap_or_default(),
        emergency: false,
    };
    match shared
        .store
        .file_application(&shared.policy, user, application, Some(peer))
        .await
    {
        Ok(r) => {
            tracing::info!(user = %user.username, request = r.number, "request filed through the designated client");
            ServerMessage::Filed {
                request: summary(&r),
            }
        }
        Err(FileError::NotAVendor) => denied(Code::Forbidden, FileError::NotAVendor.to_string()),
        Err(e @ FileError::Invalid { .. }) => denied(Code::Invalid, e.to_string()),
        Err(FileError::Store(e)) => unavailable(&e),
    }
}
