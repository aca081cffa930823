//! The state store reached through `flow serve`.
//!
//! `flow serve` holds the store's lock for as long as it runs, so other `flow` commands reach
//! the same store through a Unix socket in the store directory ([`SOCKET`]): each
//! [`StateStore`] call is one request and one response on the connection. A `flow run` started
//! beside the server therefore executes in its own process, with its own progress display and
//! Ctrl-C, and its checkpoints are written (and flushed) by the server.
//!
//! Framing: a message is a count of binary parts, a JSON header, then the parts (outputs and
//! values travel as raw bytes, not JSON); every piece is a big-endian length and its bytes.
//!
//! The server also knows which runs are live: those it executes itself, and those whose last
//! record from a connected client says `running`. A client that disconnects with a run still
//! `running` was killed, so its run is no longer live and shows as interrupted.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{
    BoundedStore, NodeRecord, Removal, Removed, RunRecord, RunStatus, StateStore, StoreError, Write,
};

/// The socket's file name inside the store directory.
pub const SOCKET: &str = "serve.sock";
/// Bumped when requests or responses change incompatibly.
const PROTOCOL: u32 = 1;
/// A JSON header larger than this is not one of ours.
const MAX_HEADER: u64 = 256 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Hello {
        protocol: u32,
    },
    /// The parts are the outputs and values of the writes, in order.
    Apply {
        writes: Vec<WireWrite>,
    },
    Flush,
    Run {
        run_id: String,
    },
    Runs,
    NewestRunId,
    Nodes {
        run_id: String,
    },
    Output {
        run_id: String,
        node_id: String,
    },
    Get {
        namespace: String,
        key: String,
    },
    Scan {
        namespace: String,
        prefix: String,
    },
    LiveRuns,
    Remove {
        removal: Removal,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
enum WireWrite {
    Run {
        record: Box<RunRecord>,
    },
    Node {
        run_id: String,
        record: Box<NodeRecord>,
        has_output: bool,
    },
    Put {
        namespace: String,
        key: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default)]
    value: Json,
}

/// One framed message: a JSON header and its binary parts.
struct Message {
    header: Vec<u8>,
    parts: Vec<Vec<u8>>,
}

fn write_message(
    w: &mut impl std::io::Write,
    header: &[u8],
    parts: &[&[u8]],
) -> std::io::Result<()> {
    w.write_all(&(parts.len() as u64).to_be_bytes())?;
    w.write_all(&(header.len() as u64).to_be_bytes())?;
    w.write_all(header)?;
    for part in parts {
        w.write_all(&(part.len() as u64).to_be_bytes())?;
        w.write_all(part)?;
    }
    w.flush()
}

fn read_len(r: &mut impl Read) -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    r.read_exact(&mut buf)?;
    Ok(u64::from_be_bytes(buf))
}

fn read_bytes(r: &mut impl Read, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

fn read_message(r: &mut impl Read) -> std::io::Result<Message> {
    let parts = read_len(r)?;
    let header_len = read_len(r)?;
    if header_len > MAX_HEADER || parts > MAX_HEADER {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a flow store message",
        ));
    }
    let header = read_bytes(r, header_len)?;
    let mut out = Vec::with_capacity(parts as usize);
    for _ in 0..parts {
        let len = read_len(r)?;
        out.push(read_bytes(r, len)?);
    }
    Ok(Message { header, parts: out })
}

// ---------------------------------------------------------------------------------------------
// Client

/// A [`StateStore`] whose every call goes to the `flow serve` holding the store.
pub struct RemoteStore {
    dir: PathBuf,
    conn: Mutex<(BufReader<UnixStream>, BufWriter<UnixStream>)>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl RemoteStore {
    /// Connects to the server holding the store in `dir`; `None` when no server answers there
    /// (the store is held by some other process, or the socket is left over from a crash).
    pub fn connect(dir: &Path) -> Result<Option<Self>, StoreError> {
        let stream = match UnixStream::connect(dir.join(SOCKET)) {
            Ok(s) => s,
            Err(_) => return Ok(None),
        };
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        let store = RemoteStore {
            dir: dir.to_path_buf(),
            conn: Mutex::new((reader, BufWriter::new(stream))),
        };
        let (value, _) = store.call(&Request::Hello { protocol: PROTOCOL }, &[])?;
        if value.as_u64() != Some(u64::from(PROTOCOL)) {
            return Err(StoreError::Remote {
                path: dir.to_path_buf(),
                reason: format!(
                    "it speaks protocol {value}, this flow speaks {PROTOCOL}; use the same flow version for both"
                ),
            });
        }
        Ok(Some(store))
    }

    fn call(&self, request: &Request, parts: &[&[u8]]) -> Result<(Json, Vec<Vec<u8>>), StoreError> {
        let header = serde_json::to_vec(request).map_err(|e| StoreError::Io(e.to_string()))?;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let lost = |e: std::io::Error| {
            StoreError::Io(format!(
                "lost the connection to the `flow serve` holding {}: {e}",
                self.dir.display()
            ))
        };
        write_message(&mut conn.1, &header, parts).map_err(lost)?;
        let message = read_message(&mut conn.0).map_err(lost)?;
        let response: Response =
            serde_json::from_slice(&message.header).map_err(|e| StoreError::Corrupt {
                what: "a response from flow serve".into(),
                reason: e.to_string(),
            })?;
        match response.error {
            Some(reason) => Err(StoreError::Remote {
                path: self.dir.clone(),
                reason,
            }),
            None => Ok((response.value, message.parts)),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(what: &str, value: Json) -> Result<T, StoreError> {
        serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
            what: what.into(),
            reason: e.to_string(),
        })
    }
}

impl StateStore for RemoteStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut wire = Vec::with_capacity(writes.len());
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for w in writes {
            match w {
                Write::Run(record) => wire.push(WireWrite::Run {
                    record: Box::new(record),
                }),
                Write::Node {
                    run_id,
                    record,
                    output,
                } => {
                    wire.push(WireWrite::Node {
                        run_id,
                        record: Box::new(record),
                        has_output: output.is_some(),
                    });
                    parts.extend(output);
                }
                Write::Put {
                    namespace,
                    key,
                    value,
                } => {
                    wire.push(WireWrite::Put { namespace, key });
                    parts.push(value);
                }
            }
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.call(&Request::Apply { writes: wire }, &parts)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.call(&Request::Flush, &[])?;
        Ok(())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let (value, _) = self.call(
            &Request::Run {
                run_id: run_id.into(),
            },
            &[],
        )?;
        Self::decode("a run record", value)
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let (value, _) = self.call(&Request::Runs, &[])?;
        Self::decode("run records", value)
    }

    fn newest_run_id(&self) -> Result<Option<String>, StoreError> {
        let (value, _) = self.call(&Request::NewestRunId, &[])?;
        Self::decode("the newest run id", value)
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        let (value, _) = self.call(
            &Request::Nodes {
                run_id: run_id.into(),
            },
            &[],
        )?;
        Self::decode("node records", value)
    }

    fn output(&self, run_id: &str, node_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (_, parts) = self.call(
            &Request::Output {
                run_id: run_id.into(),
                node_id: node_id.into(),
            },
            &[],
        )?;
        Ok(parts.into_iter().next())
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (_, parts) = self.call(
            &Request::Get {
                namespace: namespace.into(),
                key: key.into(),
            },
            &[],
        )?;
        Ok(parts.into_iter().next())
    }

    fn scan(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let (value, parts) = self.call(
            &Request::Scan {
                namespace: namespace.into(),
                prefix: prefix.into(),
            },
            &[],
        )?;
        let keys: Vec<String> = Self::decode("scanned keys", value)?;
        if keys.len() != parts.len() {
            return Err(StoreError::Corrupt {
                what: "a scan response from flow serve".into(),
                reason: format!("{} keys but {} values", keys.len(), parts.len()),
            });
        }
        Ok(keys.into_iter().zip(parts).collect())
    }

    fn location(&self) -> String {
        format!("{} (through flow serve)", self.dir.display())
    }

    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        Some(std::sync::Arc::new(crate::sync::DirPlaces::new(
            self.dir.join("nodes"),
        )))
    }

    fn live_runs(&self) -> Result<HashSet<String>, StoreError> {
        let (value, _) = self.call(&Request::LiveRuns, &[])?;
        Self::decode("live runs", value)
    }

    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        let (value, _) = self.call(
            &Request::Remove {
                removal: removal.clone(),
            },
            &[],
        )?;
        Self::decode("what was removed", value)
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Server

/// Who keeps a run going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The serving process itself.
    Server,
    /// A client connection.
    Client(u64),
}

/// Runs in progress right now, shared by the scheduler and the socket server.
#[derive(Debug, Clone, Default)]
pub struct LiveRuns(Arc<Mutex<HashMap<String, Owner>>>);

impl LiveRuns {
    /// Marks a run the serving process executes as live.
    pub fn start(&self, run_id: &str) {
        self.lock().insert(run_id.to_string(), Owner::Server);
    }

    pub fn finish(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    pub fn ids(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn contains(&self, run_id: &str) -> bool {
        self.lock().contains_key(run_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn track_client(&self, client: u64, run: &RunRecord) {
        let mut live = self.lock();
        if run.status == RunStatus::Running {
            live.entry(run.id.clone()).or_insert(Owner::Client(client));
        } else if live.get(&run.id) == Some(&Owner::Client(client)) {
            live.remove(&run.id);
        }
    }

    fn client_gone(&self, client: u64) {
        self.lock()
            .retain(|_, owner| *owner != Owner::Client(client));
    }
}

/// Serves a store on the socket in its directory until stopped (or dropped).
#[derive(Debug)]
pub struct StoreServer {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    /// Open client connections, closed when the server stops so their threads let go of the
    /// store (which then closes cleanly).
    clients: Arc<Mutex<HashMap<u64, UnixStream>>>,
}

impl StoreServer {
    /// Binds `DIR/serve.sock` and answers requests on background threads. The caller must hold
    /// the store's lock, so a socket file found there is left over from a crash.
    pub fn start(
        dir: &Path,
        store: Arc<dyn StateStore>,
        live: LiveRuns,
    ) -> Result<Self, StoreError> {
        // Clients' writes end within the deadline a run's own writes have: a disk that does not
        // answer fails the client's checkpoint instead of hanging it and the server thread.
        let deadline = super::bounded::deadline_from_env()?;
        let path = dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the socket {} for other flow commands: {e}",
                path.display()
            ))
        })?;
        // Only the store's owner may reach it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let open: Arc<Mutex<HashMap<u64, UnixStream>>> = Arc::default();
        let connections = open.clone();
        let clients = AtomicU64::new(0);
        std::thread::Builder::new()
            .name("flow-store-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let client = clients.fetch_add(1, Ordering::SeqCst);
                    if let Ok(handle) = conn.try_clone() {
                        lock(&connections).insert(client, handle);
                    }
                    // One per client, as one per run in-process: a write that failed breaks
                    // only that client's (its run's) store, not later clients'.
                    let store = BoundedStore::with_deadline(store.clone(), deadline);
                    let live = live.clone();
                    let connections = connections.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("flow-store-client-{client}"))
                        .spawn(move || {
                            serve_client(conn, &store, &live, client);
                            live.client_gone(client);
                            lock(&connections).remove(&client);
                        });
                }
            })
            .map_err(io)?;
        Ok(StoreServer {
            path,
            stopping,
            clients: open,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.path
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
        for conn in lock(&self.clients).values() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve_client(conn: UnixStream, store: &dyn StateStore, live: &LiveRuns, client: u64) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = BufWriter::new(conn);
    while let Ok(message) = read_message(&mut reader) {
        let (response, parts) = match serde_json::from_slice::<Request>(&message.header) {
            Ok(request) => match answer(request, message.parts, store, live, client) {
                Ok((value, parts)) => (Response { error: None, value }, parts),
                Err(e) => (
                    Response {
                        error: Some(e.to_string()),
                        value: Json::Null,
                    },
                    Vec::new(),
                ),
            },
            Err(e) => (
                Response {
                    error: Some(format!("unknown request: {e}")),
                    value: Json::Null,
                },
                Vec::new(),
            ),
        };
        let header = serde_json::to_vec(&response).unwrap_or_default();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        if write_message(&mut writer, &header, &parts).is_err() {
            break;
        }
    }
}

fn answer(
    request: Request,
    parts: Vec<Vec<u8>>,
    store: &dyn StateStore,
    live: &LiveRuns,
    client: u64,
) -> Result<(Json, Vec<Vec<u8>>), StoreError> {
    Ok(match request {
        Request::Hello { .. } => (Json::from(PROTOCOL), Vec::new()),
        Request::Apply { writes } => {
            let mut parts = parts.into_iter();
            let mut missing = || {
                parts.next().ok_or_else(|| StoreError::Corrupt {
                    what: "a write request".into(),
                    reason: "fewer values than writes".into(),
                })
            };
            let mut batch = Vec::with_capacity(writes.len());
            let mut runs = Vec::new();
            for w in writes {
                batch.push(match w {
                    WireWrite::Run { record } => {
                        runs.push((*record).clone());
                        Write::Run(*record)
                    }
                    WireWrite::Node {
                        run_id,
                        record,
                        has_output,
                    } => Write::Node {
                        run_id,
                        record: *record,
                        output: if has_output { Some(missing()?) } else { None },
                    },
                    WireWrite::Put { namespace, key } => Write::Put {
                        namespace,
                        key,
                        value: missing()?,
                    },
                });
            }
            store.apply(batch)?;
            for run in &runs {
                live.track_client(client, run);
            }
            (Json::Null, Vec::new())
        }
        Request::Flush => {
            store.flush()?;
            (Json::Null, Vec::new())
        }
        Request::Run { run_id } => (json(&store.run(&run_id)?)?, Vec::new()),
        Request::Runs => (json(&store.runs()?)?, Vec::new()),
        Request::NewestRunId => (json(&store.newest_run_id()?)?, Vec::new()),
        Request::Nodes { run_id } => (json(&store.nodes(&run_id)?)?, Vec::new()),
        Request::Output { run_id, node_id } => (
            Json::Null,
            store.output(&run_id, &node_id)?.into_iter().collect(),
        ),
        Request::Get { namespace, key } => (
            Json::Null,
            store.get(&namespace, &key)?.into_iter().collect(),
        ),
        Request::Scan { namespace, prefix } => {
            let (keys, values): (Vec<String>, Vec<Vec<u8>>) =
                store.scan(&namespace, &prefix)?.into_iter().unzip();
            (Json::from(keys), values)
        }
        Request::LiveRuns => (json(&live.ids())?, Vec::new()),
        Request::Remove { mut removal } => {
            // A run may have started (or been resumed) since the client looked.
            let running = live.ids();
            removal.run_ids.retain(|id| !running.contains(id));
            (json(&store.remove(&removal)?)?, Vec::new())
        }
    })
}

fn json<T: Serialize>(value: &T) -> Result<Json, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Io(e.to_string()))
}
