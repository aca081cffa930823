//! Errors at the command line's edge, each with the exit code it ends the process with: 1 for a
//! run that failed or could not go on, 2 for invalid input or usage.

use std::process::ExitCode;

use flow_engine::runs::PlanError;
use flow_engine::store::StoreError;

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub(super) code: u8,
    pub(super) error: anyhow::Error,
}

impl Failure {
    pub(super) fn invalid(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::invalid(e)
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Self {
        Failure::invalid(e)
    }
}

pub(super) type Outcome = Result<ExitCode, Failure>;

pub(super) fn format_error(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
    }
    text
}
