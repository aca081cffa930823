//! [`History`]: the manifest of one history and the segments it names, in a [`Place`],
//! opened by one writer at a time; [`Commit`]: the changes of one sync, made visible atomically
//! with the new cursor.
//!
//! A commit writes its segments (durably) under names no manifest uses yet, then replaces the
//! manifest. Until then the old manifest, with the old cursor, is the history; after it, the
//! new one. Segments no manifest names (from a commit a crash cut short, or replaced by a
//! compaction) are deleted when the history is next opened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use chrono::Utc;
use serde_json::Value as Json;

use super::SyncError;
use super::manifest::{Manifest, Segment, SyncRecord, TableFiles};
use super::merge::{Part, distinct_keys, key_column, merge};
use super::place::{DirPlace, Place, PlaceLock};

/// Segments a table may have before a commit rewrites it as one.
const MAX_SEGMENTS: usize = 8;

/// A synced history, open for syncing (its place is locked until it is dropped).
#[derive(Debug)]
pub struct History {
    place: Box<dyn Place>,
    manifest: Manifest,
    /// The stored manifest's version, which the next write expects (`None`: none stored).
    version: Option<i64>,
    _lock: Box<dyn PlaceLock>,
}

impl History {
    /// Opens (or creates) the history in directory `dir`. Fails when another process is
    /// syncing it.
    pub fn open(dir: &Path) -> Result<History, SyncError> {
        History::open_at(Box::new(DirPlace::new(dir)))
    }

    /// Opens (or creates) the history in `place`. Fails when another process is syncing it.
    pub fn open_at(place: Box<dyn Place>) -> Result<History, SyncError> {
        let lock = place.lock()?;
        let (manifest, version) = match place.read_manifest()? {
            Some(stored) => (
                Manifest::decode(&stored.bytes, &place.describe())?,
                Some(stored.version),
            ),
            None => (Manifest::new(), None),
        };
        let history = History {
            place,
            manifest,
            version,
            _lock: lock,
        };
        history.remove_garbage()?;
        Ok(history)
    }

    /// Where the history is kept.
    pub fn location(&self) -> String {
        self.place.describe()
    }

    /// The cursor of the last sync; `None` before the first one and after a reset, when the
    /// next sync must load everything.
    pub fn cursor(&self) -> Option<&Json> {
        if self.manifest.reset_requested {
            None
        } else {
            self.manifest.cursor.as_ref()
        }
    }

    /// Whether the next sync must load everything (no cursor yet, or a reset was asked).
    pub fn needs_full_load(&self) -> bool {
        self.cursor().is_none()
    }

    /// The current rows of `table`; `None` for a table never written.
    pub fn table(&self, table: &str) -> Result<Option<RecordBatch>, SyncError> {
        let Some(files) = self.manifest.tables.get(table) else {
            return Ok(None);
        };
        let parts = self.read_parts(files, &BTreeMap::new())?;
        let schema = schema_of(table, files)?;
        merge(&schema, table, &files.key, &parts).map(Some)
    }

    /// What the history holds, for `flow sync status`.
    pub fn status(&self) -> super::Status {
        super::Status::of(&self.place.describe(), &self.manifest)
    }

    /// Replaces the stored manifest with `next`, provided no other process wrote it since.
    fn write_manifest(&mut self, next: Manifest) -> Result<(), SyncError> {
        let version = self.place.write_manifest(&next.encode(), self.version)?;
        self.version = Some(version);
        self.manifest = next;
        Ok(())
    }

    /// Starts the changes of one sync. With `full`, or when the history needs a full load
    /// (see [`History::needs_full_load`]), the commit replaces the whole history.
    pub fn begin(&mut self, full: bool) -> Commit<'_> {
        let full = full || self.needs_full_load();
        Commit {
            history: self,
            full,
            tables: BTreeMap::new(),
        }
    }

    /// The parts of a table, oldest first; segments in `fresh` (just written) are not read back.
    fn read_parts(
        &self,
        files: &TableFiles,
        fresh: &BTreeMap<String, RecordBatch>,
    ) -> Result<Vec<Part>, SyncError> {
        let mut parts = Vec::new();
        for segment in &files.segments {
            if let Some(file) = &segment.file {
                let rows = match fresh.get(file) {
                    Some(rows) => rows.clone(),
                    None => read_segment(&*self.place, file)?,
                };
                parts.push(Part::Rows(rows));
            }
            if !segment.deleted.is_empty() {
                parts.push(Part::Deleted(segment.deleted.clone()));
            }
        }
        Ok(parts)
    }

    /// Deletes the segments no manifest names: those of a commit that never completed, and
    /// those a compaction replaced.
    fn remove_garbage(&self) -> Result<(), SyncError> {
        let named: BTreeSet<&str> = self.manifest.files().collect();
        let garbage: Vec<String> = self
            .place
            .segments()?
            .into_iter()
            .filter(|name| !named.contains(name.as_str()))
            .collect();
        if garbage.is_empty() {
            return Ok(());
        }
        self.place.remove_segments(&garbage)
    }
}

/// The changes of one sync, applied by [`Commit::commit`] all at once.
#[derive(Debug)]
pub struct Commit<'h> {
    history: &'h mut History,
    full: bool,
    tables: BTreeMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    key: String,
    schema: Option<SchemaRef>,
    /// Upserted batches and deleted keys, in the order given.
    ops: Vec<Op>,
    upserted: BTreeSet<String>,
    deleted: BTreeSet<String>,
}

#[derive(Debug)]
enum Op {
    Rows(RecordBatch),
    Deleted(Vec<String>),
}

/// The tables as they are after a commit.
pub type Merged = BTreeMap<String, RecordBatch>;

impl Commit<'_> {
    /// Whether this commit replaces the whole history.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Adds rows: each key in `batch`'s `key` column replaces every earlier row with that key
    /// (in the history, and in earlier upserts of this commit).
    pub fn upsert(&mut self, table: &str, key: &str, batch: RecordBatch) -> Result<(), SyncError> {
        check_table_name(table)?;
        let keys = key_column(&batch, table, key)?;
        let keys: Vec<String> = keys.iter().flatten().map(str::to_string).collect();
        let known = match self.history.manifest.tables.get(table) {
            Some(files) if !self.full => Some(schema_of(table, files)?),
            _ => None,
        };
        let pending = self.pending(table, key)?;
        let expected = pending.schema.clone().or(known);
        if let Some(expected) = expected {
            same_columns(table, &expected, &batch.schema())?;
        } else {
            pending.schema = Some(batch.schema());
        }
        for k in &keys {
            pending.deleted.remove(k);
        }
        pending.upserted.extend(keys);
        if batch.num_rows() > 0 {
            pending.ops.push(Op::Rows(batch));
        }
        Ok(())
    }

    /// Removes every row with one of `keys` (a deleted or cancelled order, say).
    pub fn delete(
        &mut self,
        table: &str,
        key: &str,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), SyncError> {
        check_table_name(table)?;
        let pending = self.pending(table, key)?;
        let keys: Vec<String> = keys.into_iter().collect();
        for k in &keys {
            pending.upserted.remove(k);
            pending.deleted.insert(k.clone());
        }
        pending.ops.push(Op::Deleted(keys));
        Ok(())
    }

    fn pending(&mut self, table: &str, key: &str) -> Result<&mut Pending, SyncError> {
        if let Some(files) = self.history.manifest.tables.get(table)
            && files.key != key
            && !self.full
        {
            return Err(SyncError::Schema {
                table: table.into(),
                reason: format!("it is keyed by `{}`, not `{key}`", files.key),
            });
        }
        let pending = self
            .tables
            .entry(table.to_string())
            .or_insert_with(|| Pending {
                key: key.to_string(),
                schema: None,
                ops: Vec::new(),
                upserted: BTreeSet::new(),
                deleted: BTreeSet::new(),
            });
        if pending.key != key {
            return Err(SyncError::Schema {
                table: table.into(),
                reason: format!(
                    "this sync keyed it by `{}` before, not `{key}`",
                    pending.key
                ),
            });
        }
        Ok(pending)
    }

    /// Makes the changes and `cursor` visible in one durable step, and returns every table as
    /// it is now. `summary` (what the source did: requests, pages) is kept with the sync.
    pub fn commit(self, cursor: Json, summary: Json) -> Result<Merged, SyncError> {
        let Commit {
            history,
            full,
            tables,
        } = self;
        let generation = history.manifest.generation + 1;
        let mut next = history.manifest.clone();
        next.generation = generation;
        if full {
            next.tables.clear();
        }
        let mut record = SyncRecord {
            at: Utc::now(),
            full,
            upserted: BTreeMap::new(),
            deleted: BTreeMap::new(),
            summary,
        };
        let mut merged = Merged::new();
        let mut fresh: BTreeMap<String, RecordBatch> = BTreeMap::new();

        // Each changed table: the commit's own parts merged (a later upsert wins), written as
        // one new segment after the existing ones.
        for (name, pending) in tables {
            record
                .upserted
                .insert(name.clone(), pending.upserted.len() as u64);
            record
                .deleted
                .insert(name.clone(), pending.deleted.len() as u64);
            let old = next.tables.remove(&name);
            let schema = match (&pending.schema, &old) {
                (Some(s), _) => Arc::clone(s),
                (None, Some(files)) => schema_of(&name, files)?,
                // Only deletions of a table never written: nothing to keep.
                (None, None) => continue,
            };
            let own: Vec<Part> = pending
                .ops
                .into_iter()
                .map(|op| match op {
                    Op::Rows(b) => Part::Rows(b),
                    Op::Deleted(k) => Part::Deleted(k),
                })
                .collect();
            let rows = merge(&schema, &name, &pending.key, &own)?;
            let mut files = old.unwrap_or_else(|| TableFiles {
                key: pending.key.clone(),
                ..TableFiles::default()
            });
            files.schema = Some(schema_json(&schema));
            let file = if rows.num_rows() > 0 {
                let file = format!("seg-{generation:08}-{name}.arrow");
                write_segment(&*history.place, &file, &rows)?;
                fresh.insert(file.clone(), rows.clone());
                Some(file)
            } else {
                None
            };
            let deleted: Vec<String> = if full {
                Vec::new()
            } else {
                pending.deleted.into_iter().collect()
            };
            if file.is_some() || !deleted.is_empty() {
                files.segments.push(Segment {
                    file,
                    rows: rows.num_rows() as u64,
                    deleted,
                });
            }
            next.tables.insert(name, files);
        }

        // The merged view of every table, and a compaction where the segments pile up.
        for (name, files) in next.tables.iter_mut() {
            let schema = schema_of(name, files)?;
            let parts = history.read_parts(files, &fresh)?;
            let table = merge(&schema, name, &files.key, &parts)?;
            let stored: u64 = files.segments.iter().map(|s| s.rows).sum();
            let dead = stored.saturating_sub(table.num_rows() as u64);
            if files.segments.len() > MAX_SEGMENTS || dead > (table.num_rows() as u64) / 4 {
                let file = format!("seg-{generation:08}-{name}-all.arrow");
                write_segment(&*history.place, &file, &table)?;
                files.segments = vec![Segment {
                    file: Some(file),
                    rows: table.num_rows() as u64,
                    deleted: Vec::new(),
                }];
            }
            files.rows = table.num_rows() as u64;
            files.keys = distinct_keys(&table, name, &files.key)?;
            merged.insert(name.clone(), table);
        }

        next.cursor = Some(cursor);
        next.reset_requested = false;
        next.record(record);
        history.write_manifest(next)?;
        history.remove_garbage()?;
        Ok(merged)
    }
}

fn check_table_name(table: &str) -> Result<(), SyncError> {
    let ok = !table.is_empty()
        && table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SyncError::Schema {
            table: table.into(),
            reason: "table names are lowercase letters, digits and `_`".into(),
        })
    }
}

fn same_columns(table: &str, expected: &Schema, got: &Schema) -> Result<(), SyncError> {
    let names = |s: &Schema| -> Vec<(String, String)> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect()
    };
    if names(expected) == names(got) {
        Ok(())
    } else {
        Err(SyncError::Schema {
            table: table.into(),
            reason: format!(
                "the rows have columns {:?}, the history {:?}; a full sync replaces it",
                names(got),
                names(expected)
            ),
        })
    }
}

fn schema_json(schema: &Schema) -> Json {
    serde_json::to_value(schema).expect("schema serializes")
}

fn schema_of(table: &str, files: &TableFiles) -> Result<SchemaRef, SyncError> {
    let json = files.schema.as_ref().ok_or_else(|| SyncError::Schema {
        table: table.into(),
        reason: "the manifest has no schema for it".into(),
    })?;
    let schema: Schema = serde_json::from_value(json.clone()).map_err(|e| SyncError::Schema {
        table: table.into(),
        reason: format!("the manifest's schema cannot be read: {e}"),
    })?;
    Ok(Arc::new(schema))
}

fn write_segment(place: &dyn Place, name: &str, batch: &RecordBatch) -> Result<(), SyncError> {
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    place.write_segment(name, &writer.into_inner()?)
}

fn read_segment(place: &dyn Place, name: &str) -> Result<RecordBatch, SyncError> {
    let bytes = place.read_segment(name)?;
    let corrupt = |e: arrow_schema::ArrowError| SyncError::Corrupt {
        path: format!("{}/{name}", place.describe()),
        reason: e.to_string(),
    };
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(corrupt)?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(corrupt)?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

/// Copies the history in `from` into `to` as it is (its manifest and the segments it names),
/// replacing what `to` held; both are locked meanwhile. False when `from` holds none.
pub fn copy_history(from: Box<dyn Place>, to: Box<dyn Place>) -> Result<bool, SyncError> {
    if from.read_manifest()?.is_none() {
        return Ok(false);
    }
    let source = History::open_at(from)?;
    let mut target = History::open_at(to)?;
    for file in source.manifest.files() {
        let bytes = source.place.read_segment(file)?;
        target.place.write_segment(file, &bytes)?;
    }
    target.write_manifest(source.manifest.clone())?;
    target.remove_garbage()?;
    Ok(true)
}

/// Asks the history in `place` to load everything at its next sync: the cursor is dropped,
/// the rows stay until that sync replaces them. Fails when a sync is running; false when
/// nothing was synced there.
pub fn request_reset(place: Box<dyn Place>) -> Result<bool, SyncError> {
    if place.read_manifest()?.is_none() {
        return Ok(false);
    }
    let mut history = History::open_at(place)?;
    let mut next = history.manifest.clone();
    next.reset_requested = true;
    history.write_manifest(next)?;
    Ok(true)
}

#[cfg(test)]
#[path = "history_tests.rs"]
pub(crate) mod tests;
