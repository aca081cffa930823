//! Who may use the server. On a loopback address anyone who can connect may; on any other
//! address every request proves itself with a bearer token (programs) or a session cookie set
//! by the login form (browsers). State-changing requests from browsers are checked against
//! cross-site forgery: a same-origin `Origin`, and the session's CSRF token in `X-Flow-CSRF`.

mod guard;
mod headers;
mod login;
mod random;
mod sessions;
mod tokens;

pub(crate) use guard::guard;
pub(crate) use headers::security_headers;
pub(crate) use login::router;
pub use sessions::Session;
pub(crate) use sessions::Sessions;
pub use tokens::{MIN_TOKEN_LEN, TokenError, Tokens};

/// The session cookie's name.
pub const COOKIE: &str = "flow_session";
/// The header carrying the CSRF token on state-changing requests made with a cookie.
pub const CSRF_HEADER: &str = "x-flow-csrf";
