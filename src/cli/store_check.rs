//! `flow store check`: verifies the whole state store without changing it.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Failure, Outcome};
use flow_engine::plural::plural;
use flow_engine::store::check_store;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Verify the store: its database (from a scratch copy), the high-water mark, every run and
    /// node record, and every output file against its checksum. Exit 0 when sound, 1 when
    /// damaged.
    Check,
}

pub fn run(state: &Path, command: StoreCommand) -> Outcome {
    match command {
        StoreCommand::Check => check(state),
    }
}

fn check(state: &Path) -> Outcome {
    let report = check_store(state).map_err(Failure::from)?;
    println!("checking the state store {}", state.display());
    if report.problems.is_empty() || report.runs + report.nodes > 0 {
        println!(
            "  {}, {}, {} ({} in files)",
            plural(report.runs as u64, "run"),
            plural(report.nodes as u64, "node record"),
            plural(report.outputs as u64, "output"),
            report.output_files
        );
        println!(
            "  {} committed write batches; high-water mark {}",
            report.commits,
            report
                .high_water
                .map_or_else(|| "not recorded yet".to_string(), |n| n.to_string())
        );
    }
    for problem in &report.problems {
        println!("  damaged: {problem}");
    }
    if report.is_sound() {
        println!("the state store {} is sound", state.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "the state store {} is damaged: {}",
            state.display(),
            plural(report.problems.len() as u64, "problem")
        );
        Ok(ExitCode::from(1))
    }
}
