//! Log records that may carry secrets are never printed, whatever `RUST_LOG` asks for.
//!
//! At debug and trace level the HTTP client and TLS crates log requests, headers and hex dumps of
//! the bytes on the wire, which include `Authorization: Bearer ...` and URL credentials. Their
//! records above `info` are dropped before any layer sees them.

use tracing::Level;
use tracing::Metadata;

/// Crates (log targets, by prefix) whose debug and trace records may quote what is sent.
const WIRE_TARGETS: [&str; 6] = ["ureq", "ureq_proto", "rustls", "hyper", "h2", "http"];

/// Whether a record may be printed.
pub(super) fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || !from_wire_crate(meta.target())
}

fn from_wire_crate(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    WIRE_TARGETS.contains(&krate)
}

#[cfg(test)]
mod tests {
    use super::from_wire_crate;

    #[test]
    fn wire_crates_are_matched_by_their_crate_name() {
        for t in ["ureq", "ureq_proto::util", "rustls::conn", "hyper"] {
            assert!(from_wire_crate(t), "{t}");
        }
        for t in ["flow::executor", "ureqx", "sled::pagecache", "flow"] {
            assert!(!from_wire_crate(t), "{t}");
        }
    }
}
