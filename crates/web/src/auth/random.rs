//! Unguessable identifiers for sessions and CSRF tokens.

/// 32 random bytes from the operating system, as hex.
pub(crate) fn token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
