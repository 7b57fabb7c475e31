//! What every console request carries, read from its headers: the session token, the
//! language, the peer address and whether a form comes from this console's own origin.

use std::net::SocketAddr;

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::i18n::Lang;

pub(crate) const TOKEN_COOKIE: &str = "sekisho_token";
pub(crate) const LANG_COOKIE: &str = "sekisho_lang";

/// What every console request carries: the session token (if logged in), the language, the
/// peer address (for the audit log) and whether a form post comes from our own origin.
pub struct Ctx {
    pub(crate) token: Option<String>,
    pub lang: Lang,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) same_origin: bool,
    pub(crate) origin_https: bool,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        let lang = cookie(h, LANG_COOKIE)
            .and_then(Lang::parse)
            .unwrap_or_else(|| {
                Lang::from_accept_language(
                    h.get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                )
            });
        // Browsers send Origin with every POST; it must be this host.
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same_origin = match (origin, host) {
            (None, _) => true,
            (Some(origin), Some(host)) => {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
            (Some(_), None) => false,
        };
        Ok(Ctx {
            token: cookie(h, TOKEN_COOKIE)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            lang,
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            same_origin,
            origin_https: origin.is_some_and(|o| o.starts_with("https://"))
                || parts.extensions.get::<axum::http::uri::Scheme>()
                    == Some(&axum::http::uri::Scheme::HTTPS),
        })
    }
}

/// The CSRF token of a session: bound to its token, so a page of another session (or
/// another site, which cannot read the cookie) cannot forge it.
pub(crate) fn csrf_for(token: &str) -> String {
    hex::encode(digest(
        &SHA256,
        format!("sekisho-console-csrf\0{token}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_are_stable() {
        assert_eq!(csrf_for("a"), csrf_for("a"));
        assert_ne!(csrf_for("a"), csrf_for("b"));
    }
}
