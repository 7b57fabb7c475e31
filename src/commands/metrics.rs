//! The metrics listener of `sekisho serve` (issue #19): `GET /metrics` in the OpenMetrics
//! text format, on its own address, behind a bearer token when `[metrics] token` is set.
//! The gauges that are the database's to know are read at each scrape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sekisho_config::MetricsConfig;
use sekisho_store::Store;
use tokio_util::sync::CancellationToken;

struct Scrape {
    store: Store,
    token: Option<String>,
}

/// Binds `[metrics] listen` and serves until `shutdown`; returns the bound address.
pub async fn start(
    config: &MetricsConfig,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for metrics on {} ([metrics] listen)",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Scrape {
        store,
        token: config.token.clone(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "only GET /metrics is served here") })
        .with_state(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(addr)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

/// Whether the request carries the token (compared in constant time).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), token.as_bytes()).is_ok()
}

async fn metrics(State(s): State<Arc<Scrape>>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.token
        && !authorized(&headers, token)
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer with the [metrics] token",
        );
    }
    refresh(&s.store).await;
    (
        [(header::CONTENT_TYPE, sekisho_metrics::CONTENT_TYPE)],
        sekisho_metrics::encode(),
    )
        .into_response()
}

/// Reads what the database knows: its latency, the pool and the notification backlog. A
/// database that does not answer leaves the backlog as it was and shows in the latency's
/// absence and in `/healthz`, not as a failed scrape.
async fn refresh(store: &Store) {
    let m = sekisho_metrics::get();
    let started = Instant::now();
    match store.ping().await {
        Ok(()) => sekisho_metrics::db_timed("ping", started.elapsed()),
        Err(e) => tracing::warn!(error = %e, "metrics: the database does not answer"),
    }
    let pool = store.pool();
    let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
    let size = i64::from(pool.size());
    let state = |state| sekisho_metrics::PoolLabels { state };
    m.db_connections.get_or_create(&state("idle")).set(idle);
    m.db_connections
        .get_or_create(&state("in_use"))
        .set((size - idle).max(0));
    match store.notification_backlog().await {
        Ok(n) => {
            m.notifications_backlog.set(n);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the notification backlog"),
    }
}
