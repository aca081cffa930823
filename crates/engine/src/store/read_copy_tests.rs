use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::high_water::{self, HighWater};
use super::super::{StateStore, StoreError, Write};
use super::SledStore;

fn put(value: &str) -> Write {
    Write::Put {
        namespace: "ns".into(),
        key: "k".into(),
        value: value.as_bytes().to_vec(),
    }
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(contents(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// A store holding one value, without the mark of a clean close (as after a failed run).
fn unclean_store(dir: &Path) {
    let store = SledStore::open(dir).unwrap();
    store.apply(vec![put("saved")]).unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::remove_file(dir.join(super::super::sled_store::CLEAN_MARK)).unwrap();
}

#[test]
fn a_copy_reads_the_store_refuses_writes_and_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    unclean_store(dir.path());
    let before = contents(dir.path());

    let copy = SledStore::open_copy(dir.path()).unwrap();
    let scratch = copy.copy.as_ref().unwrap().path().to_path_buf();
    assert!(!scratch.starts_with(dir.path()));
    assert_eq!(copy.get("ns", "k").unwrap().unwrap(), b"saved");
    // The store's lock is held meanwhile.
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Locked { .. })
    ));
    for result in [
        copy.apply(vec![put("lost")]),
        copy.flush(),
        copy.remove(&Default::default()).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::ReadOnlyCopy { .. }), "{err}");
        assert!(err.to_string().contains("its disk is full"), "{err}");
    }
    drop(copy);

    assert!(!scratch.exists(), "the copy {} was kept", scratch.display());
    assert_eq!(contents(dir.path()), before);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.get("ns", "k").unwrap().unwrap(), b"saved");
}

#[test]
fn a_copy_of_a_store_that_lost_writes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    unclean_store(dir.path());
    // The high-water file says more batches were durable than the database holds.
    let held = high_water::read(dir.path()).unwrap().unwrap();
    HighWater::open(dir.path(), held + 5).unwrap();
    let before = contents(dir.path());

    match SledStore::open_copy(dir.path()) {
        Err(StoreError::RolledBack {
            found, expected, ..
        }) => {
            assert_eq!((found, expected), (held, held + 5));
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn a_missing_database_is_not_read_as_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    unclean_store(dir.path());
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    assert!(matches!(
        SledStore::open_copy(dir.path()),
        Err(StoreError::Missing { .. })
    ));
}
