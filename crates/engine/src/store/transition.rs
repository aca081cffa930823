//! The error of a state machine asked to make a move its states do not allow.

/// A transition the state machine refuses: the record keeps its state. Reaching one means the
/// caller's view of the state was wrong, so it is reported, never applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject} is `{from}`, so it cannot {event}")]
pub struct InvalidTransition {
    /// What the state belongs to: `the run`, `node `load``.
    pub subject: String,
    /// The state it is in.
    pub from: &'static str,
    /// What was asked of it, as a verb phrase.
    pub event: String,
}
