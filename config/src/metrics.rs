//! `[metrics]`: the Prometheus/OpenMetrics endpoint (issue #19), on its own listener so that
//! the monitoring network need not reach the API, with an optional bearer token.

use toml_edit::Value;

use crate::model::MetricsConfig;
use crate::reader::{Parsed, Reader};

/// A bearer token long enough not to be guessed.
fn token(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    if s.len() >= 16 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s)
    } else {
        Err("expected at least 16 printable ASCII characters without spaces".into())
    }
}

pub(crate) fn read(r: &Reader) -> Option<MetricsConfig> {
    let s = r.section("metrics", &["listen", "token"]);
    let token = r.opt(s, "token", token);
    let Some(listen) = r.opt(s, "listen", Reader::socket_addr) else {
        if token.is_some() && !s.has("listen") {
            r.problem_at(s, "token", "a token without `listen` serves nothing".into());
        }
        return None;
    };
    Some(MetricsConfig { listen, token })
}
