//! The HTTP client the nodes share (ureq): flow's user agent, every status returned as a value
//! (the caller decides what a 429 or a 5xx means), no redirects (one could carry a token to
//! another host), and no proxy from the environment for a loopback URL (a proxy must not
//! intercept a local endpoint).

use std::time::Duration;

/// An agent for API requests to `url`, each bounded by `timeout` overall.
pub fn agent(url: &str, timeout: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    config.build().into()
}

/// An agent for large downloads from `url` (a result file at a signed storage URL): the
/// connection must open within `connect`, the body may take as long as it needs, and
/// redirects are followed (no credentials are sent with a download).
pub fn download_agent(url: &str, connect: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_recv_body(None)
        .timeout_connect(Some(connect))
        .http_status_as_error(false)
        .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    config.build().into()
}

/// Whether `url`'s host is this machine (`localhost`, `127.x.x.x`, `[::1]`).
pub fn is_loopback(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]" || h == "::1")
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://localhost:8080/x",
            "http://127.0.0.1:9/",
            "http://[::1]:80/",
            "https://127.1.2.3/a?b=c",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://shop.myshopify.com/",
            "http://10.0.0.1/",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
