//! The gate every request passes: the host and origin checks, who the caller is, and the CSRF
//! check of state-changing requests made with a session cookie.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{COOKIE, CSRF_HEADER, Session};
use crate::hooks::constant_time_eq;
use crate::{ApiError, AppState};

/// Paths anyone may reach: the login form, the health check, static assets, and webhooks
/// (which check their own signature or token).
fn public(path: &str) -> bool {
    path == "/login"
        || path == "/api/health"
        || path.starts_with("/hooks/")
        || path.starts_with("/assets/")
}

pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match check(&state, &request) {
        Ok(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Err(Refusal::Login) => Redirect::to("/login").into_response(),
        Err(Refusal::Error(e)) => e.into_response(),
    }
}

enum Refusal {
    /// A page asked for without a session: the login form.
    Login,
    Error(ApiError),
}

fn check(state: &AppState, request: &Request) -> Result<Session, Refusal> {
    let headers = request.headers();
    let path = request.uri().path();
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !state.opts.auth_required() && !host.is_empty() && !loopback_host(host) {
        // A page elsewhere resolving its own name to 127.0.0.1 (DNS rebinding) must not
        // reach a server that trusts loopback.
        return Err(Refusal::Error(ApiError::forbidden(
            "this server answers requests for a loopback host name only",
        )));
    }
    if changes_state && !path.starts_with("/hooks/") && !same_origin(headers, host) {
        return Err(Refusal::Error(ApiError::forbidden(
            "cross-origin requests may not change anything",
        )));
    }
    let session = identify(state, headers);
    let session = match session {
        Some(s) => s,
        None if !state.opts.auth_required() || public(path) => state.sessions.anonymous(),
        None => {
            // A browser asking for a page is sent to the login form; the API answers 401.
            let page = request.method() == Method::GET && !path.starts_with("/api/");
            return Err(if page {
                Refusal::Login
            } else {
                Refusal::Error(ApiError::unauthorized(
                    "authentication required: send `Authorization: Bearer TOKEN` or log in at /login",
                ))
            });
        }
    };
    if changes_state && session.by_cookie && path != "/login" && path != "/logout" {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given.is_empty() || !constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(Refusal::Error(ApiError::forbidden(format!(
                "missing or wrong `{CSRF_HEADER}` header (read it from GET /api/session)"
            ))));
        }
    }
    Ok(session)
}

/// The caller's session: a valid bearer token, or a live session cookie.
fn identify(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer
        && state.opts.tokens.find(token).is_some()
    {
        return Some(Session {
            csrf: String::new(),
            authenticated: true,
            by_cookie: false,
        });
    }
    let cookie = session_cookie(headers)?;
    state.sessions.get(&cookie)
}

/// The value of the `flow_session` cookie.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the request's `Origin` (when a browser sent one) is this server.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Programs (curl) send none; browsers always send it on cross-origin requests.
        return true;
    };
    let origin = origin.to_str().unwrap_or("null");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!(authority, Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:1",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn origins_must_name_this_server() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, "127.0.0.1:80"));
        h.insert(header::ORIGIN, "http://127.0.0.1:80".parse().unwrap());
        assert!(same_origin(&h, "127.0.0.1:80"));
        assert!(!same_origin(&h, "127.0.0.1:81"));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h, "127.0.0.1:80"));
    }
}
