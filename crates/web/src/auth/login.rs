//! `GET /login` (a small server-rendered form), `POST /login` (a token in, a session cookie
//! out), `POST /logout`, and `GET /api/session` (the CSRF token for scripts).

use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::session_cookie;
use super::{COOKIE, Session};
use crate::AppState;

/// How long a wrong token waits before its answer (guessing over the network gets slow).
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(400);

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_form, login))
        .routes(routes!(logout))
        .routes(routes!(session))
}

/// The login form's field.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginForm {
    /// One of the server's tokens.
    #[serde(default)]
    token: String,
}

/// What a page's scripts need to know about their session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionInfo {
    /// Send it as `X-Flow-CSRF` with state-changing requests made with the session cookie.
    csrf: String,
    /// Logged in (by cookie or token); false on a loopback server that needs no login.
    authenticated: bool,
    /// Whether this server requires a login at all.
    auth_required: bool,
}

#[utoipa::path(get, path = "/login", tag = "auth",
    responses((status = 200, description = "The login form", content_type = "text/html", body = String)))]
async fn login_form(State(state): State<AppState>) -> Html<String> {
    Html(page(&state, None))
}

#[utoipa::path(post, path = "/login", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: a session cookie is set and the browser goes to /"),
        (status = 401, description = "The token is not valid", content_type = "text/html", body = String)))]
async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    if state.opts.tokens.find(form.token.trim()).is_none() {
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        tracing::info!("a login was refused: wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(page(&state, Some("That token is not valid."))),
        )
            .into_response();
    }
    let id = state.sessions.create();
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[utoipa::path(post, path = "/logout", tag = "auth",
    responses((status = 303, description = "The session ends; the browser goes to /login")))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.sessions.remove(&id);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("flow_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

#[utoipa::path(get, path = "/api/session", tag = "auth",
    responses((status = 200, description = "The caller's session", body = SessionInfo)))]
async fn session(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Json<SessionInfo> {
    Json(SessionInfo {
        csrf: session.csrf,
        authenticated: session.authenticated,
        auth_required: state.opts.auth_required(),
    })
}

/// The login page. Everything shown is escaped; it needs no script or style.
fn page(state: &AppState, problem: Option<&str>) -> String {
    let note = if state.opts.auth_required() {
        "Sign in with one of this server's access tokens."
    } else {
        "This server listens on a loopback address: no login is needed."
    };
    let problem = problem
        .map(|p| format!("<p role=\"alert\"><strong>{}</strong></p>", escape(p)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in · flow</title></head>\n<body><main><h1>flow</h1><p>{}</p>{problem}\n<form method=\"post\" action=\"/login\"><label for=\"token\">Access token</label><br><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus> <button type=\"submit\">Sign in</button></form>\n<p><a href=\"/\">Back to runs</a></p></main></body></html>\n",
        escape(note)
    )
}

pub(crate) use flow_engine::html::escape;
