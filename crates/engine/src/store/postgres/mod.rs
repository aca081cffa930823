//! The state store on PostgreSQL, for several flow processes (on several hosts) sharing one
//! history.
//!
//! It stores what the sled store stores, in tables: run records, node records, outputs (split
//! into chunks, so an output of any size fits), and small keyed state under the same keys as
//! sled. Every [`StateStore::apply`] is one transaction, committed (and so durable) before it
//! returns: an output and its `succeeded` record commit together or not at all.
//!
//! Many processes may open the store at once; the runs they execute are told apart by
//! advisory locks (see [`liveness`]).

mod histories;
mod listen;
mod liveness;
mod pool;
mod schema;
mod tasks;

pub use listen::Listener;
pub use tasks::{ClaimedTask, ENDED as TASKS_ENDED, READY as TASKS_READY, TaskState};

use std::collections::HashSet;
use std::time::Duration;

use postgres::Client;

use self::liveness::{Liveness, RUN_LOCK_CLASS};
use self::pool::{Conn, Pool};
use super::{
    NodeRecord, Removal, Removed, RunRecord, RunStatus, StateStore, StoreError, Write, decode_json,
    encode_json, keys,
};

/// How long a call waits for a lost connection to come back (a database restart, a failover)
/// before it fails.
pub(super) const RETRY_FOR: Duration = Duration::from_secs(30);

/// Connections each process keeps for reads and writes (the liveness connection is one more).
const CONNECTIONS: usize = 4;

/// Outputs and history segments are stored in pieces of this size.
const CHUNK: usize = 8 << 20;

/// `bytes` as numbered pieces of at most [`CHUNK`]; empty bytes are one empty piece, so that
/// what was stored can be told from what was not.
fn chunks(bytes: &[u8]) -> impl Iterator<Item = (i32, &[u8])> {
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(CHUNK).collect()
    };
    pieces.into_iter().enumerate().map(|(i, p)| (i as i32, p))
}

/// A state store in a PostgreSQL database.
pub struct PgStore {
    config: postgres::Config,
    pool: Pool,
    liveness: Liveness,
    location: String,
    /// Histories this process has open for writing (see [`histories`]).
    held_histories: std::sync::Arc<std::sync::Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish()
    }
}

/// Whether a `--store` value names a PostgreSQL database.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The URL with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

pub(super) fn pg_error(location: &str, e: postgres::Error) -> StoreError {
    StoreError::Io(format!("PostgreSQL store {location}: {}", describe(&e)))
}

/// The error with its causes ("error connecting to server: Connection refused").
fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl PgStore {
    /// Connects, creating or upgrading the schema.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let location = redact_url(url);
        let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Unreachable {
            location: location.clone(),
            reason: format!("not a valid PostgreSQL URL: {e}"),
        })?;
        config
            .application_name("flow")
            .connect_timeout(Duration::from_secs(10));
        let pool = Pool::start(
            "flow-pg",
            (0..CONNECTIONS)
                .map(|_| Conn::new(config.clone()))
                .collect(),
        );
        let unreachable = |reason: String| StoreError::Unreachable {
            location: location.clone(),
            reason,
        };
        let schema = pool
            .call(|conn| -> Result<_, (bool, postgres::Error)> {
                let client = conn.client().map_err(|e| (true, e))?;
                schema::migrate(client).map_err(|e| (false, e))
            })
            .ok_or_else(|| unreachable("the store closed".into()))?;
        match schema {
            Err((true, e)) => return Err(unreachable(describe(&e))),
            Err((false, e)) => return Err(pg_error(&location, e)),
            Ok(schema::Schema::Newer(found)) => {
                return Err(StoreError::NewerSchema {
                    location,
                    found,
                    supported: schema::supported(),
                });
            }
            Ok(schema::Schema::Ready { upgraded_from }) => {
                if let Some(from) = upgraded_from {
                    tracing::info!(
                        store = %location,
                        "{} the store's schema (version {from} to {})",
                        if from == 0 { "created" } else { "upgraded" },
                        schema::supported()
                    );
                }
            }
        }
        let liveness = Liveness::start(config.clone(), location.clone());
        Ok(PgStore {
            config,
            pool,
            liveness,
            location,
            held_histories: Default::default(),
        })
    }

    /// Writes records and keyed state copied from another store as they are: no run is taken
    /// for this process, whatever its status says. `kv` holds full keys (`kv/NAMESPACE/KEY`).
    pub fn import(&self, writes: Vec<Write>, kv: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        let mut rows = to_rows(writes)?;
        rows.extend(kv.into_iter().map(|(key, value)| Row::Kv { key, value }));
        let rows = std::sync::Arc::new(rows);
        self.call(move |c| write_rows(c, &rows, &[]))?
            .map_err(|run_id| StoreError::RunTakenOver { run_id })
    }

    /// Every entry of small keyed state (`kv/NAMESPACE/KEY` and its value), in key order.
    pub fn kv_entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.call(|c| scan_kv(c, ""))
    }

    /// Listens on a notification channel (see [`Listener`]).
    pub fn listen(&self, channel: &'static str) -> Listener {
        Listener::start(self.config.clone(), channel)
    }

    /// Runs `f` on a pooled connection, retrying over lost connections.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnMut(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.pool
            .call(move |conn| conn.run(RETRY_FOR, f))
            .ok_or_else(|| {
                StoreError::Io(format!("the PostgreSQL store {} closed", self.location))
            })?
            .map_err(|e| pg_error(&self.location, e))
    }

    fn bytes_at(&self, sql: &'static str, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |c| Ok(c.query_opt(sql, &[&key])?.map(|row| row.get(0))))
    }
}

/// A write as table rows.
enum Row {
    Run {
        id: String,
        status: &'static str,
        record: Vec<u8>,
    },
    Node {
        run_id: String,
        node_id: String,
        record: Vec<u8>,
        output: Option<Vec<u8>>,
    },
    Kv {
        key: String,
        value: Vec<u8>,
    },
}

fn to_rows(writes: Vec<Write>) -> Result<Vec<Row>, StoreError> {
    writes
        .into_iter()
        .map(|w| {
            Ok(match w {
                Write::Run(run) => Row::Run {
                    status: run.status.as_str(),
                    record: encode_json(&run)?,
                    id: run.id,
                },
                Write::Node {
                    run_id,
                    record,
                    output,
                } => Row::Node {
                    run_id,
                    node_id: record.node_id.clone(),
                    record: encode_json(&record)?,
                    output,
                },
                Write::Put {
                    namespace,
                    key,
                    value,
                } => Row::Kv {
                    key: keys::kv(&namespace, &key),
                    value,
                },
            })
        })
        .collect()
}

/// Writes the rows in one transaction, if every run in `fence` still has the epoch this
/// process took it at; otherwise writes nothing and names a run that has another.
fn write_rows(
    client: &mut Client,
    rows: &[Row],
    fence: &[(String, i64)],
) -> Result<Result<(), String>, postgres::Error> {
    let mut tx = client.transaction()?;
    if !fence.is_empty() {
        let ids: Vec<&str> = fence.iter().map(|(id, _)| id.as_str()).collect();
        // FOR SHARE holds off another process raising an epoch until this commits.
        let found: std::collections::HashMap<String, i64> = tx
            .query(
                "SELECT run_id, epoch FROM flow_run_owners WHERE run_id = ANY($1) FOR SHARE",
                &[&ids],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if let Some((id, _)) = fence
            .iter()
            .find(|(id, epoch)| found.get(id) != Some(epoch))
        {
            return Ok(Err(id.clone()));
        }
    }
    for row in rows {
        match row {
            Row::Run { id, status, record } => {
                tx.execute(
                    "INSERT INTO flow_runs (id, status, record) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record",
                    &[id, status, record],
                )?;
            }
            Row::Node {
                run_id,
                node_id,
                record,
                output,
            } => {
                // The output goes in the same transaction as the record: a record never says
                // `succeeded` without its output being there.
                if let Some(output) = output {
                    tx.execute(
                        "DELETE FROM flow_outputs WHERE run_id = $1 AND node_id = $2",
                        &[run_id, node_id],
                    )?;
                    for (i, chunk) in chunks(output) {
                        tx.execute(
                            "INSERT INTO flow_outputs (run_id, node_id, chunk, data) VALUES ($1, $2, $3, $4)",
                            &[run_id, node_id, &i, &chunk],
                        )?;
                    }
                }
                tx.execute(
                    "INSERT INTO flow_nodes (run_id, node_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, node_id) DO UPDATE SET record = EXCLUDED.record",
                    &[run_id, node_id, record],
                )?;
            }
            Row::Kv { key, value } => {
                tx.execute(
                    "INSERT INTO flow_kv (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[key, value],
                )?;
            }
        }
    }
    tx.commit().map(Ok)
}

/// The least string greater than every string starting with `prefix`, if there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate gap, which holds no chars.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Keys (of `flow_kv`) starting with `prefix`, with their values, in key order.
fn scan_kv(client: &mut Client, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, postgres::Error> {
    let rows = match prefix_end(prefix) {
        Some(end) => client.query(
            "SELECT key, value FROM flow_kv WHERE key >= $1 AND key < $2 ORDER BY key",
            &[&prefix, &end],
        )?,
        None => client.query(
            "SELECT key, value FROM flow_kv WHERE key >= $1 ORDER BY key",
            &[&prefix],
        )?,
    };
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Ids among `ids` whose runs some process holds (see [`liveness`]).
const LIVE: &str = "
    SELECT id FROM unnest($1::text[]) AS id
    WHERE (hashtext(id)::bigint & 4294967295) IN (
        SELECT objid::bigint FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = $2::bigint::oid
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

impl StateStore for PgStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut starting = Vec::new();
        let mut ending = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        for write in &writes {
            let run_id = match write {
                Write::Run(run) => {
                    match run.status {
                        RunStatus::Running => starting.push(run.id.clone()),
                        _ => ending.push(run.id.clone()),
                    }
                    &run.id
                }
                Write::Node { run_id, .. } => run_id,
                // Schedule watermarks are written by the leading server only.
                Write::Put { namespace, .. } if namespace == crate::serve::WATERMARKS => {
                    if !touched.iter().any(|t| t == liveness::SCHEDULER) {
                        touched.push(liveness::SCHEDULER.to_string());
                    }
                    continue;
                }
                Write::Put { .. } => continue,
            };
            if self.liveness.is_lost(run_id) {
                return Err(StoreError::RunTakenOver {
                    run_id: run_id.clone(),
                });
            }
            if !touched.contains(run_id) {
                touched.push(run_id.clone());
            }
        }
        for run_id in starting {
            if !self.liveness.take(&run_id)? {
                return Err(StoreError::RunHeldElsewhere { run_id });
            }
        }
        let rows = std::sync::Arc::new(to_rows(writes)?);
        let runs = self.liveness.runs();
        // A mismatch may be this process's own re-taking after a reconnect (which raised the
        // epoch): read the epochs again and retry before calling the run lost.
        let mut mismatch = None;
        for _ in 0..3 {
            let fence: Vec<(String, i64)> = {
                let runs = runs.lock().unwrap_or_else(|p| p.into_inner());
                if touched.iter().any(|t| t == liveness::SCHEDULER)
                    && runs.epoch(liveness::SCHEDULER).is_none()
                {
                    return Err(StoreError::NotLeading);
                }
                touched
                    .iter()
                    .filter_map(|id| runs.epoch(id).map(|e| (id.clone(), e)))
                    .collect()
            };
            let rows = rows.clone();
            match self.call(move |c| write_rows(c, &rows, &fence))? {
                Ok(()) => {
                    mismatch = None;
                    break;
                }
                Err(run_id) => {
                    mismatch = Some(run_id);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        match mismatch {
            Some(run_id) if run_id == liveness::SCHEDULER => return Err(StoreError::NotLeading),
            Some(run_id) => return Err(StoreError::RunTakenOver { run_id }),
            None => {}
        }
        for run_id in ending {
            self.liveness.release(&run_id)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every apply committed its transaction.
        Ok(())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.bytes_at("SELECT record FROM flow_runs WHERE id = $1", run_id.into())?
            .map(|b| decode_json(run_id, &b))
            .transpose()
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let rows = self.call(|c| {
            Ok(c.query("SELECT id, record FROM flow_runs", &[])?
                .into_iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
                .collect::<Vec<_>>())
        })?;
        let mut runs = rows
            .iter()
            .map(|(id, record)| decode_json(id, record))
            .collect::<Result<Vec<RunRecord>, _>>()?;
        crate::run_id::newest_first(&mut runs);
        Ok(runs)
    }

    fn newest_run_id(&self) -> Result<Option<String>, StoreError> {
        // Ids in the current format sort by creation as text; an id in the older format
        // carries no order a new id must follow.
        let ids = self.call(|c| {
            Ok(
                c.query("SELECT id FROM flow_runs ORDER BY id DESC LIMIT 1000", &[])?
                    .into_iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            )
        })?;
        Ok(ids
            .iter()
            .find(|id| crate::run_id::is_current(id))
            .or(ids.first())
            .cloned())
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        let id = run_id.to_string();
        let rows = self.call(move |c| {
            Ok(c.query(
                "SELECT node_id, record FROM flow_nodes WHERE run_id = $1 ORDER BY node_id",
                &[&id],
            )?
            .into_iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
            .collect::<Vec<_>>())
        })?;
        rows.iter()
            .map(|(node, record)| decode_json(&keys::node(run_id, node), record))
            .collect()
    }

    fn output(&self, run_id: &str, node_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (run_id, node_id) = (run_id.to_string(), node_id.to_string());
        self.call(move |c| {
            let rows = c.query(
                "SELECT data FROM flow_outputs WHERE run_id = $1 AND node_id = $2 ORDER BY chunk",
                &[&run_id, &node_id],
            )?;
            if rows.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::new();
            for row in rows {
                out.extend_from_slice(row.get::<_, &[u8]>(0));
            }
            Ok(Some(out))
        })
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bytes_at(
            "SELECT value FROM flow_kv WHERE key = $1",
            keys::kv(namespace, key),
        )
    }

    fn scan(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let strip = keys::kv(namespace, "").len();
        let prefix = keys::kv(namespace, prefix);
        let found = self.call(move |c| scan_kv(c, &prefix))?;
        Ok(found
            .into_iter()
            .map(|(k, v)| (k[strip..].to_string(), v))
            .collect())
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        Some(std::sync::Arc::new(histories::PgPlaces {
            pool: self.pool.handle(),
            locks: self.liveness.pool(),
            held: self.held_histories.clone(),
            location: self.location.clone(),
        }))
    }

    fn live_runs(&self) -> Result<HashSet<String>, StoreError> {
        self.call(|c| {
            let ids: Vec<String> = c
                .query("SELECT id FROM flow_runs WHERE status = 'running'", &[])?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            Ok(c.query(LIVE, &[&ids, &i64::from(RUN_LOCK_CLASS)])?
                .into_iter()
                .map(|r| r.get::<_, String>(0))
                .collect())
        })
    }

    fn lead_schedules(&self) -> Result<bool, StoreError> {
        self.liveness.lead()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn stored_bytes(&self) -> Option<u64> {
        self.call(|c| {
            c.query_one(
                "SELECT sum(pg_total_relation_size(t))::bigint FROM unnest(ARRAY['flow_runs', 'flow_nodes', 'flow_outputs', 'flow_kv', 'flow_meta', 'flow_tasks', 'flow_histories', 'flow_history_segments']::regclass[]) AS t",
                &[],
            )
            .map(|r| r.get::<_, Option<i64>>(0))
        })
        .ok()
        .flatten()
        .map(|n| n as u64)
    }

    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        let removal = removal.clone();
        self.call(move |c| remove_runs(c, &removal))
    }
}

/// Removes the runs (but for those some process is executing) and the listed keys in one
/// transaction.
fn remove_runs(client: &mut Client, removal: &Removal) -> Result<Removed, postgres::Error> {
    let mut removed = Removed::default();
    let mut tx = client.transaction()?;
    let live: HashSet<String> = tx
        .query(LIVE, &[&removal.run_ids, &i64::from(RUN_LOCK_CLASS)])?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let count = |rows: Vec<postgres::Row>, removed: &mut Removed| {
        for row in rows {
            removed.entries += 1;
            removed.bytes += row.get::<_, i64>(0) as u64;
        }
    };
    for run_id in removal.run_ids.iter().filter(|id| !live.contains(*id)) {
        tx.execute("DELETE FROM flow_run_owners WHERE run_id = $1", &[run_id])?;
        tx.execute("DELETE FROM flow_tasks WHERE run_id = $1", &[run_id])?;
        let runs = tx.query(
            "DELETE FROM flow_runs WHERE id = $1 RETURNING octet_length(id)::bigint + octet_length(record)",
            &[run_id],
        )?;
        removed.runs += runs.len();
        count(runs, &mut removed);
        count(
            tx.query(
                "DELETE FROM flow_nodes WHERE run_id = $1
                 RETURNING octet_length(node_id)::bigint + octet_length(record)",
                &[run_id],
            )?,
            &mut removed,
        );
        // One entry per output, however many chunks it had.
        count(
            tx.query(
                "WITH gone AS (DELETE FROM flow_outputs WHERE run_id = $1 RETURNING node_id, data)
                 SELECT sum(octet_length(data))::bigint FROM gone GROUP BY node_id",
                &[run_id],
            )?,
            &mut removed,
        );
        for prefix in keys::run_prefixes(run_id)
            .into_iter()
            .filter(|p| p.starts_with("kv/"))
        {
            let end = prefix_end(&prefix).expect("a run prefix ends in '/'");
            count(
                tx.query(
                    "DELETE FROM flow_kv WHERE key >= $1 AND key < $2
                     RETURNING octet_length(key)::bigint + octet_length(value)",
                    &[&prefix, &end],
                )?,
                &mut removed,
            );
        }
    }
    for (namespace, key) in &removal.keys {
        count(
            tx.query(
                "DELETE FROM flow_kv WHERE key = $1 RETURNING octet_length(key)::bigint + octet_length(value)",
                &[&keys::kv(namespace, key)],
            )?,
            &mut removed,
        );
    }
    tx.commit()?;
    Ok(removed)
}

#[cfg(test)]
#[path = "tests.rs"]
mod store_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact_url("postgres://flow:s3cret@db.example:5432/flow?sslmode=disable"),
            "postgres://flow:***@db.example:5432/flow?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://flow@db/flow"),
            "postgres://flow@db/flow"
        );
        assert_eq!(redact_url("postgresql://db/x"), "postgresql://db/x");
    }

    #[test]
    fn prefix_ends_bound_exactly_the_prefixed_keys() {
        assert_eq!(
            prefix_end("kv/effects/r1/").as_deref(),
            Some("kv/effects/r10")
        );
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}
