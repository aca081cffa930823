//! The `messages/` folder: one `.eml` per message or one CSV per segment, replaced as a whole.

use std::io::{BufWriter, Write as _};

use flow_engine::spreadsheet::SpreadsheetCsv;

use super::*;

/// Writes the messages of the customers with `send` into a fresh folder that replaces
/// `out/messages` as a whole. Returns the number of files.
pub(super) fn write_messages(
    out: &Path,
    format: Messages,
    ctx: &NodeContext,
    camp: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    now: &DateTime<FixedOffset>,
    unsubscribe: &Unsubscribe,
) -> Result<u64, NodeError> {
    let staging = tempfile::Builder::new()
        .prefix(staging::PREFIX)
        .tempdir_in(out)
        .map_err(|e| NodeError::io(format!("cannot create a folder in {}", out.display()), e))?;
    let root = staging.path();
    private_files::set_dir_mode(root)?;
    let io =
        |p: &Path, e: std::io::Error| NodeError::io(format!("cannot write {}", p.display()), e);
    let ids = text(camp, "customer_id");
    let segs = text(camp, "segment");
    let emails = text(camp, "email");
    let names = text(camp, "customer_name");
    let subjects = text(camp, "subject");
    let bodies = text(camp, "body_html");
    let senders = text(camp, "sender");
    let offers = text(camp, "offer");
    let mut composer = outgoing::Composer::new(ctx, camp, now, unsubscribe);
    let mut files = 0u64;
    let mut used: HashSet<PathBuf> = HashSet::new();
    let mut made_dirs: HashSet<PathBuf> = HashSet::new();
    // For csv: per segment, its file and the rows waiting to be written to it, in order.
    let mut per_segment: BTreeMap<String, SegmentCsv> = BTreeMap::new();
    for (i, p) in profiles {
        if !p.sent {
            continue;
        }
        let i = *i;
        let id = ids.value(i);
        let segment = opt_str(segs, i).unwrap_or("");
        match format {
            Messages::Eml => {
                let dir = root.join(file_stem(segment));
                if made_dirs.insert(dir.clone()) {
                    private_files::create_dirs(&dir)?;
                }
                let stem = file_stem(id);
                let mut path = dir.join(format!("{stem}.eml"));
                let mut n = 2;
                while !used.insert(path.clone()) {
                    path = dir.join(format!("{stem}-{n}.eml"));
                    n += 1;
                }
                let message = composer.compose(i)?;
                private_files::write_new(&path, &message.bytes)?;
                files += 1;
            }
            Messages::Csv => {
                let from = composer.sender(i)?;
                let message_id = composer.message_id(i, &from);
                let csv = match per_segment.get_mut(segment) {
                    Some(csv) => csv,
                    None => {
                        let path = root.join(format!("{}.csv", file_stem(segment)));
                        let csv = SegmentCsv::create(path)?;
                        per_segment.entry(segment.to_string()).or_insert(csv)
                    }
                };
                csv.push([
                    id.to_string(),
                    opt_str(emails, i).unwrap_or("").to_string(),
                    opt_str(names, i).unwrap_or("").to_string(),
                    opt_str(senders, i)
                        .unwrap_or("shop@example.com")
                        .to_string(),
                    opt_str(subjects, i).unwrap_or("").to_string(),
                    opt_str(bodies, i).unwrap_or("").to_string(),
                    opt_str(offers, i).unwrap_or("").to_string(),
                    message_id,
                ])?;
            }
            Messages::None => {}
        }
    }
    for (_, csv) in per_segment {
        csv.finish()?;
        files += 1;
    }
    // Swap the folder in: the old one is removed only once the new one is complete.
    let target = out.join("messages");
    let staged = staging.keep();
    if target.exists() {
        let old = out.join(format!("{}old-{}", staging::PREFIX, std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&target, &old).map_err(|e| io(&target, e))?;
        std::fs::rename(&staged, &target).map_err(|e| io(&target, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, &target).map_err(|e| io(&target, e))?;
    }
    Ok(files)
}

/// Rows written to a segment's message file at a time.
const MESSAGE_ROWS_PER_WRITE: usize = 4096;

/// A segment's message file being written: rows are gathered and written a batch at a time.
struct SegmentCsv {
    path: PathBuf,
    out: SpreadsheetCsv<BufWriter<std::fs::File>>,
    rows: Vec<[String; 8]>,
}

impl SegmentCsv {
    fn create(path: PathBuf) -> Result<Self, NodeError> {
        let file = private_files::new_file(&path)?;
        Ok(SegmentCsv {
            out: SpreadsheetCsv::new(BufWriter::with_capacity(1 << 20, file)),
            rows: Vec::with_capacity(MESSAGE_ROWS_PER_WRITE),
            path,
        })
    }

    fn push(&mut self, row: [String; 8]) -> Result<(), NodeError> {
        self.rows.push(row);
        if self.rows.len() == MESSAGE_ROWS_PER_WRITE {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), NodeError> {
        let columns: Vec<ArrayRef> = (0..MESSAGE_CSV_COLUMNS.len())
            .map(|c| {
                Arc::new(StringArray::from_iter_values(
                    self.rows.iter().map(|r| r[c].as_str()),
                )) as ArrayRef
            })
            .collect();
        let schema = Schema::new(
            MESSAGE_CSV_COLUMNS
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        let table = RecordBatch::try_new(Arc::new(schema), columns)?;
        self.rows.clear();
        self.out
            .write(&table)
            .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", self.path.display())))
    }

    fn finish(mut self) -> Result<(), NodeError> {
        if !self.rows.is_empty() {
            self.write()?;
        }
        self.out
            .into_inner()
            .flush()
            .map_err(|e| NodeError::io(format!("cannot write {}", self.path.display()), e))
    }
}

/// The idempotency key as the local part of a Message-ID (RFC 5322 `dot-atom-text`): characters
/// outside `atext` are %-escaped, so the key stays readable and distinct keys stay distinct.
pub(super) fn message_id_local(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "!#$&'*+-/=?^_`{|}~".contains(c) {
            out.push(c);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(super) fn domain_of(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("flow.localhost")
}
