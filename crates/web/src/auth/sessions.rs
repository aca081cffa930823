//! Browser sessions: the cookie holds a random session id, mapped here (in memory) to the
//! CSRF token pages send back. The token used to log in is never put in the cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::random;

/// How long a session lasts after login.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept; the oldest goes when a login would pass it.
const MAX_SESSIONS: usize = 10_000;

/// Who a request is, as handlers and pages see it (a request extension).
#[derive(Debug, Clone)]
pub struct Session {
    /// The token state-changing requests made with the session cookie must carry in
    /// `X-Flow-CSRF` (pages put it in `<meta name="flow-csrf">`).
    pub csrf: String,
    /// Logged in (by cookie or bearer token), as opposed to reaching a loopback server.
    pub authenticated: bool,
    /// Authenticated by the session cookie (so CSRF checks apply).
    pub(crate) by_cookie: bool,
}

struct Entry {
    csrf: String,
    expires: Instant,
}

/// The live sessions, and the CSRF token of anonymous (loopback) browsers.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
    anonymous_csrf: String,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            anonymous_csrf: random::token(),
        }
    }
}

impl Sessions {
    /// A new session: its id (for the cookie).
    pub fn create(&self) -> String {
        let id = random::token();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Entry {
                csrf: random::token(),
                expires: now + LIFETIME,
            },
        );
        id
    }

    /// The session of a cookie value, if it is live.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Lookup by hash is not constant-time, but the id is 256 random bits: guessing a
        // prefix gains nothing.
        let entry = map.get(id).filter(|e| e.expires > Instant::now())?;
        Some(Session {
            csrf: entry.csrf.clone(),
            authenticated: true,
            by_cookie: true,
        })
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The session of a browser on a loopback server, which needs no login.
    pub fn anonymous(&self) -> Session {
        Session {
            csrf: self.anonymous_csrf.clone(),
            authenticated: false,
            by_cookie: false,
        }
    }
}
