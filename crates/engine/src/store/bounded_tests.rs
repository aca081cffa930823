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
}

fn put(key: &str) -> Vec<Write> {
    vec![Write::Put {
        namespace: "test".into(),
        key: key.into(),
        value: b"v".to_vec(),
    }]
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
    let start = Instant::now();
    let err = store.apply(put("b")).unwrap_err().to_string();
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("an earlier write failed"), "{err}");
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
