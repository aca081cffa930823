use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::*;
use crate::store::MemoryStore;

/// A store whose flush blocks forever or fails, as sled's does on a full disk.
struct FaultyStore {
    inner: MemoryStore,
    dir: PathBuf,
    hang: AtomicBool,
    fail: AtomicBool,
}

impl FaultyStore {
    fn new(dir: &Path) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner: MemoryStore::default(),
            dir: dir.to_path_buf(),
            hang: AtomicBool::new(false),
            fail: AtomicBool::new(false),
        })
    }
}

impl StateStore for FaultyStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.apply(writes)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if self.hang.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io(
                "IO error: No space left on device (os error 28)".into(),
            ));
        }
        self.inner.flush()
    }
    crate::store::delegate_reads!(inner);
    fn location(&self) -> String {
        self.dir.display().to_string()
    }
    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        self.inner.remove(removal)
    }
    fn encode_output(
        &self,
        run_id: &str,
        node_id: &str,
        output: &crate::data::Output,
    ) -> Result<Vec<u8>, StoreError> {
        if self.hang.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        self.inner.encode_output(run_id, node_id, output)
    }
}

fn put(key: &str) -> Vec<Write> {
    vec![Write::Put {
        namespace: "test".into(),
        key: key.into(),
        value: b"v".to_vec(),
    }]
}

/// A broken store fails a write at once, naming the earlier failure.
fn later_writes_fail_at_once(store: &BoundedStore) {
    let start = Instant::now();
    let err = store.apply(put("b")).unwrap_err().to_string();
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("an earlier write failed"), "{err}");
}

#[test]
fn a_flush_that_never_returns_fails_within_the_deadline_and_names_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(dir.path());
    let store = BoundedStore::with_deadline(faulty.clone(), Duration::from_millis(200));
    store.apply(put("a")).unwrap();
    store.flush().unwrap();
    faulty.hang.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = store.flush().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::NotDurable { .. }), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("did not finish within 200ms"), "{message}");
    // The disk here has space: the message must not claim otherwise.
    assert!(message.contains("still accepts writes"), "{message}");
    // The writer is stuck: later writes fail at once rather than queueing behind it.
    later_writes_fail_at_once(&store);
    // Reads still work, and what was written before is there.
    assert!(store.get("test", "a").unwrap().is_some());
}

#[test]
fn a_failed_flush_breaks_the_store_so_later_writes_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(dir.path());
    let store = BoundedStore::with_deadline(faulty.clone(), Duration::from_secs(30));
    faulty.fail.store(true, Ordering::SeqCst);
    let err = store.flush().unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    // A later write would block in sled after such an error: it is not attempted.
    faulty.fail.store(false, Ordering::SeqCst);
    faulty.hang.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = store.flush().unwrap_err().to_string();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("No space left on device"), "{err}");
}

#[test]
fn the_deadline_reads_seconds_or_durations_and_refuses_zero() {
    assert_eq!(parse_deadline("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_deadline("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_deadline(" 500ms "), Some(Duration::from_millis(500)));
    assert_eq!(parse_deadline("0"), None);
    assert_eq!(parse_deadline("soon"), None);
}

/// A table whose encoding is larger than the threshold above which outputs go to files.
fn large_output() -> crate::data::Output {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    let n = 100_000;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("customer-{}", i * 7919 % 100_003)),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
    crate::data::Output::table(batch)
}

#[test]
fn a_large_output_goes_to_its_file_as_it_is_encoded_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn StateStore> = Arc::new(super::super::SledStore::open(dir.path()).unwrap());
    let store = BoundedStore::with_deadline(sled, Duration::from_secs(30));
    let output = large_output();
    let in_memory = crate::data::encode(&output).unwrap();
    assert!(in_memory.len() > super::super::OUTPUT_FILE_THRESHOLD);

    let reference = store.encode_output("r1", "big", &output).unwrap();
    // What the record holds names the file; the encoding itself is in the file.
    assert!(reference.len() < 1024, "{} bytes", reference.len());
    let file = dir.path().join("outputs").join("r1").join("big.out");
    assert_eq!(std::fs::read(&file).unwrap(), in_memory);

    let mut record = super::super::NodeRecord::new("big");
    record.status = super::super::NodeStatus::Succeeded;
    store
        .apply_durable(vec![Write::Node {
            run_id: "r1".into(),
            record,
            output: Some(reference),
        }])
        .unwrap();
    let back = store.output("r1", "big").unwrap().expect("the output");
    assert_eq!(back, in_memory);
    let decoded = crate::data::decode(&back).unwrap();
    assert_eq!(
        decoded.select(None).as_table(),
        output.select(None).as_table()
    );
}

#[test]
fn a_large_output_whose_file_write_never_returns_fails_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(dir.path());
    let store = BoundedStore::with_deadline(faulty.clone(), Duration::from_millis(200));
    // A small output is encoded in memory, whatever the inner store does.
    faulty.hang.store(true, Ordering::SeqCst);
    let small = crate::data::Output::data(crate::data::Data::Json(serde_json::json!([1, 2])));
    store.encode_output("r1", "small", &small).unwrap();

    let start = Instant::now();
    let err = store
        .encode_output("r1", "big", &large_output())
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::NotDurable { .. }), "{message}");
    assert!(message.contains("did not finish within 200ms"), "{message}");
    // The store is broken for this process: later writes fail at once.
    later_writes_fail_at_once(&store);
}
