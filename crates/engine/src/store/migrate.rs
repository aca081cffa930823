//! Moving a history between stores: a single machine's (sled) into PostgreSQL, or back.
//!
//! Each run goes over in one atomic batch (its nodes, outputs and record together), then the
//! small keyed state; the source is only read. The target must be empty, or hold only runs of
//! this source (a migration that was interrupted and is run again: everything is written again,
//! which changes nothing already there).

use super::{PgStore, SledStore, StateStore, StoreError, Write};

/// A store to migrate from or to.
pub enum Endpoint {
    Sled(SledStore),
    Postgres(Box<PgStore>),
}

impl Endpoint {
    fn store(&self) -> &dyn StateStore {
        match self {
            Endpoint::Sled(s) => s,
            Endpoint::Postgres(p) => p.as_ref(),
        }
    }

    /// Every entry of small keyed state, by full key (`kv/NAMESPACE/KEY`).
    fn kv_entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Endpoint::Sled(s) => s.kv_entries(),
            Endpoint::Postgres(p) => p.kv_entries(),
        }
    }

    /// Writes copied records as they are (a PostgreSQL store takes no run for this process).
    fn import(&self, writes: Vec<Write>, kv: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        match self {
            Endpoint::Postgres(p) => p.import(writes, kv),
            Endpoint::Sled(s) => {
                let mut writes = writes;
                for (full, value) in kv {
                    // `kv/NAMESPACE/KEY` comes back whole from any split at a `/`.
                    let rest = full.strip_prefix("kv/").unwrap_or(&full);
                    let (namespace, key) = rest.split_once('/').unwrap_or((rest, ""));
                    writes.push(Write::Put {
                        namespace: namespace.to_string(),
                        key: key.to_string(),
                        value,
                    });
                }
                s.apply(writes)?;
                s.flush()
            }
        }
    }
}

/// What a migration copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub runs: usize,
    pub nodes: usize,
    pub outputs: usize,
    pub output_bytes: u64,
    pub entries: usize,
    /// Synced histories of source nodes.
    pub histories: usize,
}

/// Why a migration did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the store {location} already holds {count} run(s) that are not in {source_dir}, e.g. {example}; migrate into an empty store"
    )]
    TargetNotEmpty {
        location: String,
        source_dir: String,
        count: usize,
        example: String,
    },
    #[error(
        "after the copy, the store {location} holds {found} {what} where the source has {expected}; nothing was removed from the source, run the migration again"
    )]
    Mismatch {
        location: String,
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn history_error(e: crate::sync::SyncError) -> MigrateError {
    MigrateError::Store(StoreError::Io(e.to_string()))
}

/// Copies everything in `from` into `to`; `progress` hears of each run copied.
pub fn migrate(
    source: &Endpoint,
    target: &Endpoint,
    mut progress: impl FnMut(&str, &Migrated),
) -> Result<Migrated, MigrateError> {
    let (from, to) = (source.store(), target.store());
    let runs = from.runs()?;
    let ids: std::collections::HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let foreign: Vec<String> = to
        .runs()?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    if let Some(example) = foreign.first() {
        return Err(MigrateError::TargetNotEmpty {
            location: to.location(),
            source_dir: from.location(),
            count: foreign.len(),
            example: example.clone(),
        });
    }
    let mut done = Migrated::default();
    // Oldest first, so an interrupted migration leaves the newest runs to copy.
    for run in runs.iter().rev() {
        let mut writes = Vec::new();
        for record in from.nodes(&run.id)? {
            let output = from.output(&run.id, &record.node_id)?;
            if let Some(bytes) = &output {
                done.outputs += 1;
                done.output_bytes += bytes.len() as u64;
            }
            done.nodes += 1;
            writes.push(Write::Node {
                run_id: run.id.clone(),
                record,
                output,
            });
        }
        writes.push(Write::Run(run.clone()));
        target.import(writes, Vec::new())?;
        done.runs += 1;
        progress(&run.id, &done);
    }
    let kv = source.kv_entries()?;
    done.entries = kv.len();
    target.import(Vec::new(), kv)?;
    if let (Some(from), Some(to)) = (from.histories(), to.histories()) {
        for name in from.names("").map_err(history_error)? {
            if crate::sync::copy_history(from.place(&name), to.place(&name))
                .map_err(history_error)?
            {
                done.histories += 1;
            }
        }
    }
    // Read back what landed before anyone switches over.
    let landed = to.runs()?;
    if landed.len() != runs.len() {
        return Err(MigrateError::Mismatch {
            location: to.location(),
            what: "runs",
            found: landed.len(),
            expected: runs.len(),
        });
    }
    let nodes: usize = landed
        .iter()
        .map(|r| to.nodes(&r.id).map(|n| n.len()))
        .sum::<Result<usize, _>>()?;
    if nodes != done.nodes {
        return Err(MigrateError::Mismatch {
            location: to.location(),
            what: "node records",
            found: nodes,
            expected: done.nodes,
        });
    }
    Ok(done)
}
