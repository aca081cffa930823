//! The data that flows between nodes, and its durable encoding.
//!
//! Nodes exchange Arrow tables (one `RecordBatch`) or small JSON values. A decision's output is
//! partitioned by case. Outputs are checkpointed as a small JSON header followed by one Arrow IPC
//! stream (or JSON blob) per part, so a resumed run feeds downstream nodes exactly the bytes the
//! first run produced.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A value passed between nodes.
#[derive(Debug, Clone, Default)]
pub enum Data {
    /// Nothing (a trigger-less side effect, an untaken branch).
    #[default]
    Empty,
    /// A small JSON value: a shell command's text output, a trigger firing, a summary.
    Json(Json),
    /// A table.
    Table(RecordBatch),
}

impl Data {
    /// Rows for progress and records: a table's rows, a JSON array's length, 1 for any other
    /// non-null JSON value, 0 for nothing.
    pub fn rows(&self) -> u64 {
        match self {
            Data::Empty => 0,
            Data::Json(Json::Null) => 0,
            Data::Json(Json::Array(items)) => items.len() as u64,
            Data::Json(_) => 1,
            Data::Table(batch) => batch.num_rows() as u64,
        }
    }

    /// An empty partition is what makes a decision branch "not taken".
    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    pub fn as_table(&self) -> Option<&RecordBatch> {
        match self {
            Data::Table(batch) => Some(batch),
            _ => None,
        }
    }

    pub fn as_json(&self) -> Option<&Json> {
        match self {
            Data::Json(value) => Some(value),
            _ => None,
        }
    }

    fn kind(&self) -> PartKind {
        match self {
            Data::Empty => PartKind::Empty,
            Data::Json(_) => PartKind::Json,
            Data::Table(_) => PartKind::Table,
        }
    }
}

/// What a node produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub body: Body,
    /// Facts about the output worth showing in `flow runs show` (fitted parameters, counts).
    pub meta: serde_json::Map<String, Json>,
}

/// The payload of an output: plain data, or a decision's partitions.
#[derive(Debug, Clone)]
pub enum Body {
    Data(Data),
    /// One partition per case, in the order the decision declares its cases.
    Cases(Vec<(String, Data)>),
}

impl Default for Body {
    fn default() -> Self {
        Body::Data(Data::Empty)
    }
}

impl Output {
    pub fn data(data: Data) -> Self {
        Output {
            body: Body::Data(data),
            meta: Default::default(),
        }
    }

    pub fn table(batch: RecordBatch) -> Self {
        Self::data(Data::Table(batch))
    }

    pub fn json(value: Json) -> Self {
        Self::data(Data::Json(value))
    }

    pub fn cases(cases: Vec<(String, Data)>) -> Self {
        Output {
            body: Body::Cases(cases),
            meta: Default::default(),
        }
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.meta.insert(key.to_string(), value.into());
        self
    }

    /// Rows out: the data's rows, or the sum over all partitions.
    pub fn rows(&self) -> u64 {
        match &self.body {
            Body::Data(d) => d.rows(),
            Body::Cases(cases) => cases.iter().map(|(_, d)| d.rows()).sum(),
        }
    }

    /// Rows per case, for a decision.
    pub fn case_rows(&self) -> Option<BTreeMap<String, u64>> {
        match &self.body {
            Body::Data(_) => None,
            Body::Cases(cases) => Some(cases.iter().map(|(c, d)| (c.clone(), d.rows())).collect()),
        }
    }

    /// The data a subscriber receives: the whole output, or one case's partition
    /// (an undeclared or absent case is empty).
    pub fn select(&self, case: Option<&str>) -> Data {
        match (&self.body, case) {
            (Body::Data(d), _) => d.clone(),
            (Body::Cases(cases), Some(case)) => cases
                .iter()
                .find(|(c, _)| c == case)
                .map(|(_, d)| d.clone())
                .unwrap_or_default(),
            // A decision's whole output, when asked without a case (exports): the first
            // non-empty partition is not meaningful, so callers must name a case.
            (Body::Cases(_), None) => Data::Empty,
        }
    }
}

/// Errors decoding a stored output.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored output is not in a format this flow understands ({0})")]
    Format(String),
    #[error("stored table could not be read: {0}")]
    Arrow(#[from] ArrowError),
    #[error("stored JSON could not be read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the output could not be written: {0}")]
    Io(#[from] std::io::Error),
}

/// Outputs written before the part lengths followed the parts: the header stated them.
const MAGIC_V1: &[u8; 8] = b"FLOWOUT1";
/// The header, the parts, then each part's length (8 bytes, little-endian): an output can be
/// written as it is encoded, straight to a file.
const MAGIC: &[u8; 8] = b"FLOWOUT2";

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum PartKind {
    Empty,
    Json,
    Table,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    meta: serde_json::Map<String, Json>,
    decision: bool,
    parts: Vec<PartHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PartHeader {
    case: Option<String>,
    kind: PartKind,
    /// The part's length, in outputs written before lengths followed the parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    len: Option<u64>,
}

/// Tables are written to the IPC stream in slices of this many rows: the IPC writer assembles
/// each message in memory before writing it, so whole-table messages would briefly hold a second
/// copy of a large table.
const IPC_CHUNK_ROWS: usize = 64 * 1024;

/// Encodes an output for the state store.
pub fn encode(output: &Output) -> Result<Vec<u8>, CodecError> {
    // Reserved up front: growing a buffer of a gigabyte or more by doubling copies it each time.
    let mut out = Vec::with_capacity(size_hint(output));
    encode_into(output, &mut out)?;
    Ok(out)
}

/// About how many bytes [`encode`] writes for `output`.
pub fn size_hint(output: &Output) -> usize {
    let parts: usize = match &output.body {
        Body::Data(d) => table_size_hint(d),
        Body::Cases(cases) => cases.iter().map(|(_, d)| table_size_hint(d)).sum(),
    };
    parts + 1024
}

/// Encodes an output into `out` as it goes: the header (metadata, and each part's case and
/// kind), each part (an Arrow IPC stream or JSON), then each part's length. Nothing is held
/// back, so a large table goes to a file without a copy of its encoding in memory.
pub fn encode_into<W: std::io::Write + ?Sized>(
    output: &Output,
    out: &mut W,
) -> Result<(), CodecError> {
    let parts: Vec<(Option<&str>, &Data)> = match &output.body {
        Body::Data(d) => vec![(None, d)],
        Body::Cases(cases) => cases.iter().map(|(c, d)| (Some(c.as_str()), d)).collect(),
    };
    let header = Header {
        meta: output.meta.clone(),
        decision: matches!(output.body, Body::Cases(_)),
        parts: parts
            .iter()
            .map(|(case, data)| PartHeader {
                case: case.map(str::to_string),
                kind: data.kind(),
                len: None,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&header)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)?;
    let mut lens = Vec::with_capacity(parts.len());
    for (_, data) in &parts {
        let mut counted = Counted {
            inner: &mut *out,
            written: 0,
        };
        encode_part(data, &mut counted)?;
        lens.push(counted.written);
    }
    for len in lens {
        out.write_all(&len.to_le_bytes())?;
    }
    Ok(())
}

/// A writer that counts what passes through it.
struct Counted<'a, W: ?Sized> {
    inner: &'a mut W,
    written: u64,
}

impl<W: std::io::Write + ?Sized> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// About the size of a table part's IPC stream: its buffers, plus room for each batch's
/// metadata and padding.
fn table_size_hint(data: &Data) -> usize {
    let Data::Table(batch) = data else { return 0 };
    let buffers: usize = batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum();
    let batches = batch.num_rows() / IPC_CHUNK_ROWS + 1;
    buffers + batches * (1024 + 256 * batch.num_columns())
}

fn encode_part<W: std::io::Write + ?Sized>(data: &Data, out: &mut W) -> Result<(), CodecError> {
    match data {
        Data::Empty => {}
        Data::Json(v) => serde_json::to_writer(&mut *out, v)?,
        Data::Table(batch) => encode_table(batch, out)?,
    }
    Ok(())
}

/// Threads that compress a large table's chunks at most, when the cores are free.
const MAX_ENCODERS: usize = 4;

/// A table as an Arrow IPC stream (LZ4-compressed buffers) in chunks of [`IPC_CHUNK_ROWS`].
/// The chunks after the first are encoded on the cores no other work holds, one thread each
/// (on this thread when there is at most one), and written in order: the bytes are the same
/// either way.
fn encode_table<W: std::io::Write + ?Sized>(
    batch: &RecordBatch,
    out: &mut W,
) -> Result<(), ArrowError> {
    let rows = batch.num_rows();
    let cores = (rows > 2 * IPC_CHUNK_ROWS).then(|| crate::cores::spare(MAX_ENCODERS + 1));
    // This thread only writes: the encoders are the cores taken.
    let threads = cores.as_ref().map_or(1, |c| c.threads() - 1);
    encode_table_on(batch, out, threads)
}

/// [`encode_table`] with `threads` encoding threads.
fn encode_table_on<W: std::io::Write + ?Sized>(
    batch: &RecordBatch,
    out: &mut W,
    threads: usize,
) -> Result<(), ArrowError> {
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))?;
    let schema = batch.schema();
    let rows = batch.num_rows();
    // An empty table is still written as one (empty) batch.
    let chunks: Vec<RecordBatch> = (0..rows.max(1))
        .step_by(IPC_CHUNK_ROWS)
        .map(|start| batch.slice(start, IPC_CHUNK_ROWS.min(rows - start)))
        .collect();
    let mut stream = stream_writer(&mut *out, &schema, &options)?;
    // The first chunk carries the dictionaries; the later chunks share them (they are slices
    // of one table), so a writer that has written the first writes no dictionary again.
    stream.write(&chunks[0])?;
    let rest = &chunks[1..];
    if threads < 2 || rest.len() < 2 {
        for chunk in rest {
            stream.write(chunk)?;
        }
        return stream.finish();
    }
    let threads = threads.min(rest.len());
    std::thread::scope(|scope| {
        let mut encoded = Vec::with_capacity(threads);
        for first in 0..threads {
            // Each thread encodes every `threads`-th chunk, a few ahead of the writer at most.
            let (send, receive) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, ArrowError>>(2);
            // Written chunks' buffers come back to be filled again, not allocated afresh.
            let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
            let (schema, options, chunks) = (&schema, &options, &chunks);
            scope.spawn(move || {
                let primed = stream_writer(Vec::new(), schema, options)
                    .and_then(|mut encoder| encoder.write(&chunks[0]).map(|()| encoder));
                let mut encoder = match primed {
                    Ok(encoder) => encoder,
                    Err(e) => {
                        let _ = send.send(Err(e));
                        return;
                    }
                };
                // The schema and the first chunk, written already.
                encoder.get_mut().clear();
                for chunk in rest.iter().skip(first).step_by(threads) {
                    if let Ok(mut buffer) = returned.try_recv() {
                        buffer.clear();
                        *encoder.get_mut() = buffer;
                    }
                    let bytes = encoder
                        .write(chunk)
                        .map(|()| std::mem::take(encoder.get_mut()));
                    let failed = bytes.is_err();
                    // Stops when the writer stopped reading (it failed to write).
                    if send.send(bytes).is_err() || failed {
                        return;
                    }
                }
            });
            encoded.push((receive, give_back));
        }
        for i in 0..rest.len() {
            let (receive, give_back) = &encoded[i % threads];
            let bytes = receive
                .recv()
                .map_err(|_| ArrowError::IpcError("a chunk's encoder stopped".into()))??;
            stream.get_mut().write_all(&bytes)?;
            let _ = give_back.send(bytes);
        }
        // Dropping the receivers stops any thread still encoding.
        drop(encoded);
        Ok::<_, ArrowError>(())
    })?;
    stream.finish()
}

/// An IPC stream writer to `out`; it writes the schema at once.
fn stream_writer<W: std::io::Write>(
    out: W,
    schema: &arrow_schema::Schema,
    options: &arrow_ipc::writer::IpcWriteOptions,
) -> Result<arrow_ipc::writer::StreamWriter<W>, ArrowError> {
    arrow_ipc::writer::StreamWriter::try_new_with_options(out, schema, options.clone())
}

/// Decodes an output written by [`encode`] (or by a flow that stated part lengths in the
/// header).
pub fn decode(bytes: &[u8]) -> Result<Output, CodecError> {
    decode_parts(bytes, None, None)
}

/// Decodes what a consumer of `case` (see [`Output::select`]) reads: that case's part of a
/// decision's output (the other parts come back empty) and, of its table, only the columns
/// named in `columns` that it has (see [`project`]). What is not read is skipped, not decoded,
/// so reading a few columns of a large checkpoint costs only those columns.
pub fn decode_for(
    bytes: &[u8],
    case: Option<&str>,
    columns: Option<&[String]>,
) -> Result<Output, CodecError> {
    decode_parts(bytes, Some(case), columns)
}

/// The table's columns named in `columns`, in the table's order (names it lacks are left for
/// the column checks to report); other data as it is. The columns are shared, not copied.
pub fn project(data: Data, columns: &[String]) -> Data {
    match data {
        Data::Table(batch) => {
            let keep = kept_columns(&batch.schema(), columns);
            if keep.len() == batch.num_columns() {
                return Data::Table(batch);
            }
            Data::Table(
                batch
                    .project(&keep)
                    .expect("indices of the table's own columns"),
            )
        }
        other => other,
    }
}

fn kept_columns(schema: &arrow_schema::Schema, columns: &[String]) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|&i| columns.iter().any(|c| c == schema.field(i).name()))
        .collect()
}

/// `case`: `None` decodes every part; `Some(case)` only the part a consumer of `case` reads.
fn decode_parts(
    bytes: &[u8],
    case: Option<Option<&str>>,
    columns: Option<&[String]>,
) -> Result<Output, CodecError> {
    let bad = |why: &str| CodecError::Format(why.to_string());
    let magic = bytes
        .get(..MAGIC.len())
        .ok_or_else(|| bad("missing header"))?;
    let v1 = magic == MAGIC_V1;
    if !v1 && magic != MAGIC {
        return Err(bad("missing header"));
    }
    let mut at = MAGIC.len();
    let header_len = bytes.get(at..at + 4).ok_or_else(|| bad("missing header"))?;
    let header_len = u32::from_le_bytes(header_len.try_into().expect("4 bytes")) as usize;
    at += 4;
    let header_bytes = bytes
        .get(at..at + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header: Header = serde_json::from_slice(header_bytes)?;
    at += header_len;
    // Where each part's bytes are.
    let lens: Vec<u64> = if v1 {
        header
            .parts
            .iter()
            .map(|p| p.len.ok_or_else(|| bad("a part without a length")))
            .collect::<Result<_, _>>()?
    } else {
        let trailer = header.parts.len() * 8;
        let end = bytes
            .len()
            .checked_sub(trailer)
            .filter(|&end| end >= at)
            .ok_or_else(|| bad("truncated data"))?;
        let lens: Vec<u64> = bytes[end..]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        if lens.iter().try_fold(0u64, |sum, &l| sum.checked_add(l)) != Some((end - at) as u64) {
            return Err(bad("truncated data"));
        }
        lens
    };
    let mut parts = Vec::with_capacity(header.parts.len());
    for (part, len) in header.parts.into_iter().zip(lens) {
        let blob = usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(at..at.checked_add(len)?))
            .ok_or_else(|| bad("truncated data"))?;
        at += blob.len();
        let wanted = match case {
            None => true,
            Some(case) => !header.decision || (case.is_some() && part.case.as_deref() == case),
        };
        let data = match part.kind {
            _ if !wanted => Data::Empty,
            PartKind::Empty => Data::Empty,
            PartKind::Json => Data::Json(serde_json::from_slice(blob)?),
            PartKind::Table => Data::Table(decode_table(blob, columns)?),
        };
        parts.push((part.case, data));
    }
    let body = if header.decision {
        Body::Cases(
            parts
                .into_iter()
                .map(|(c, d)| (c.unwrap_or_default(), d))
                .collect(),
        )
    } else {
        Body::Data(parts.into_iter().next().map(|(_, d)| d).unwrap_or_default())
    };
    Ok(Output {
        body,
        meta: header.meta,
    })
}

fn decode_table(blob: &[u8], columns: Option<&[String]>) -> Result<RecordBatch, CodecError> {
    let mut reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(blob), None)?;
    if let Some(columns) = columns {
        let keep = kept_columns(&reader.schema(), columns);
        if keep.len() < reader.schema().fields().len() {
            // The stream starts again: its schema message is all that was read.
            reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(blob), Some(keep))?;
        }
    }
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(join_by_column(schema, batches)?)
}

/// The batches as one table, joined a column at a time: each column's pieces go as soon as
/// the column is joined, so a table read back costs itself and one joined column, not itself
/// twice (the pieces of a compressed checkpoint have buffers of their own).
fn join_by_column(
    schema: arrow_schema::SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<RecordBatch, ArrowError> {
    match batches.len() {
        0 => return Ok(RecordBatch::new_empty(schema)),
        1 => return Ok(batches.into_iter().next().expect("one batch")),
        _ => {}
    }
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut pieces: Vec<Vec<arrow_array::ArrayRef>> =
        vec![Vec::with_capacity(batches.len()); schema.fields().len()];
    for batch in batches {
        for (column, array) in pieces.iter_mut().zip(batch.columns()) {
            column.push(array.clone());
        }
    }
    let mut columns = Vec::with_capacity(pieces.len());
    for column in pieces {
        let arrays: Vec<&dyn arrow_array::Array> = column.iter().map(|a| a.as_ref()).collect();
        columns.push(arrow_select::concat::concat(&arrays)?);
    }
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// Shared, immutable output handed to several downstream nodes.
pub type SharedOutput = Arc<Output>;

/// Writes a table as CSV with a header row.
pub fn write_csv(batch: &RecordBatch, out: impl std::io::Write) -> Result<(), ArrowError> {
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    writer.write(batch)
}

/// Writes a table as JSON Lines.
pub fn write_jsonl(batch: &RecordBatch, out: impl std::io::Write) -> Result<(), ArrowError> {
    let mut writer = arrow_json::LineDelimitedWriter::new(out);
    writer.write(batch)?;
    writer.finish()
}

/// Reads CSV text with a header row into a table, inferring column types.
pub fn read_csv(bytes: &[u8], delimiter: u8) -> Result<RecordBatch, ArrowError> {
    let format = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let (schema, _) = format.infer_schema(Cursor::new(bytes), Some(10_000))?;
    let schema = Arc::new(schema);
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(64 * 1024)
        .build(Cursor::new(bytes))?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow_select::concat::concat_batches(&schema, &batches)
}

/// Reads JSON Lines into a table, inferring column types.
pub fn read_jsonl(bytes: &[u8]) -> Result<RecordBatch, ArrowError> {
    let (schema, _) = arrow_json::reader::infer_json_schema(Cursor::new(bytes), Some(10_000))?;
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(64 * 1024)
        .build(Cursor::new(bytes))?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow_select::concat::concat_batches(&schema, &batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn table() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trips_tables_json_and_cases() {
        let out = Output::cases(vec![
            ("vip".into(), Data::Table(table())),
            ("other".into(), Data::Empty),
            ("note".into(), Data::Json(serde_json::json!({"a": 1}))),
        ])
        .with_meta("fitted", 2.5);
        let back = decode(&encode(&out).unwrap()).unwrap();
        assert_eq!(back.meta["fitted"], 2.5);
        assert_eq!(back.case_rows().unwrap()["vip"], 3);
        assert_eq!(back.select(Some("vip")).as_table().unwrap(), &table());
        assert!(back.select(Some("other")).is_empty());
        assert!(back.select(Some("missing")).is_empty());
        assert_eq!(back.select(Some("note")).as_json().unwrap()["a"], 1);
    }

    #[test]
    fn a_consumer_decodes_only_its_case_and_the_columns_it_reads() {
        let out = Output::cases(vec![
            ("vip".into(), Data::Table(table())),
            ("rest".into(), Data::Table(table())),
        ])
        .with_meta("fitted", 2.5);
        let bytes = encode(&out).unwrap();
        let names = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let column_names = |data: &Data| -> Vec<String> {
            let schema = data.as_table().unwrap().schema();
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };

        // One case, one column; a column the table lacks is not an error here.
        let back = decode_for(&bytes, Some("vip"), Some(&names(&["name", "absent"]))).unwrap();
        assert_eq!(back.meta["fitted"], 2.5);
        let vip = back.select(Some("vip"));
        assert_eq!(column_names(&vip), ["name"]);
        assert_eq!(vip.as_table().unwrap().column(0), table().column(1));
        assert!(back.select(Some("rest")).is_empty());

        // The columns come in the table's order, whatever order they are asked in.
        let both = decode_for(&bytes, Some("rest"), Some(&names(&["name", "id"]))).unwrap();
        assert_eq!(both.select(Some("rest")).as_table().unwrap(), &table());

        // No columns: the rows are still counted; no columns named: all of them.
        let none = decode_for(&bytes, Some("vip"), Some(&[])).unwrap();
        assert_eq!(none.select(Some("vip")).rows(), 3);
        assert_eq!(
            column_names(&none.select(Some("vip"))),
            Vec::<String>::new()
        );
        let all = decode_for(&bytes, Some("vip"), None).unwrap();
        assert_eq!(all.select(Some("vip")).as_table().unwrap(), &table());

        // Projecting a table in memory gives what decoding gives.
        let projected = project(Data::Table(table()), &names(&["name"]));
        assert_eq!(projected.as_table(), vip.as_table());

        // A plain output ignores the case.
        let plain = encode(&Output::table(table())).unwrap();
        let back = decode_for(&plain, None, Some(&names(&["id"]))).unwrap();
        assert_eq!(column_names(&back.select(None)), ["id"]);
    }

    #[test]
    fn large_tables_round_trip_across_chunks() {
        // Several IPC chunks, a chunk boundary inside a run of nulls, and a ragged last chunk.
        let rows = 2 * IPC_CHUNK_ROWS + 123;
        let ids: Vec<i64> = (0..rows as i64).collect();
        let names: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 7 != 0).then(|| format!("name {i}")))
            .collect();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let back = decode(&encode(&Output::table(batch.clone())).unwrap()).unwrap();
        assert_eq!(back.select(None).as_table().unwrap(), &batch);
        let empty = batch.slice(0, 0);
        let back = decode(&encode(&Output::table(empty.clone())).unwrap()).unwrap();
        assert_eq!(back.select(None).as_table().unwrap(), &empty);
    }

    /// A table of `rows` rows with a dictionary column, nulls and floats.
    fn mixed_table(rows: usize) -> RecordBatch {
        use arrow_array::DictionaryArray;
        use arrow_array::types::Int32Type;
        let category: DictionaryArray<Int32Type> = (0..rows)
            .map(|i| (i % 5 != 0).then(|| ["tea", "cake", "jam"][i % 3]))
            .collect();
        let amount: arrow_array::Float64Array = (0..rows)
            .map(|i| (i % 11 != 0).then(|| i as f64 / 7.0))
            .collect();
        let ids: Vec<i64> = (0..rows as i64).collect();
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(ids)) as arrow_array::ArrayRef,
            ),
            ("category", Arc::new(category)),
            ("amount", Arc::new(amount)),
        ])
        .unwrap()
    }

    #[test]
    fn a_table_encoded_on_several_threads_is_the_same_bytes_as_on_one() {
        for rows in [0, 1, 3 * IPC_CHUNK_ROWS, 5 * IPC_CHUNK_ROWS + 17] {
            let batch = mixed_table(rows);
            let mut one = Vec::new();
            encode_table_on(&batch, &mut one, 1).unwrap();
            for threads in [2, 3, 8] {
                let mut several = Vec::new();
                encode_table_on(&batch, &mut several, threads).unwrap();
                assert!(one == several, "{rows} rows on {threads} threads");
            }
            let mut part = Vec::new();
            encode_part(&Data::Table(batch.clone()), &mut part).unwrap();
            assert!(part == one, "{rows} rows on the cores free");
            let back = decode(&encode(&Output::table(batch.clone())).unwrap()).unwrap();
            assert_eq!(back.select(None).as_table().unwrap(), &batch);
        }
    }

    #[test]
    fn a_table_whose_writer_fails_midway_returns_the_error_on_any_number_of_threads() {
        /// Takes `room` bytes, then fails.
        struct Full {
            room: usize,
        }
        impl std::io::Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if buf.len() > self.room {
                    return Err(std::io::Error::other("disk full"));
                }
                self.room -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let batch = mixed_table(9 * IPC_CHUNK_ROWS);
        let mut whole = Vec::new();
        encode_table_on(&batch, &mut whole, 1).unwrap();
        // Past the schema and the first chunk, so the failure comes among the later chunks.
        let room = whole.len() / 2;
        for threads in [1, 2, 3] {
            let err = encode_table_on(&batch, &mut Full { room }, threads).unwrap_err();
            assert!(err.to_string().contains("disk full"), "{err}");
        }
    }

    #[test]
    fn dictionary_encoded_tables_round_trip_with_their_values_written_once() {
        use arrow_array::DictionaryArray;
        use arrow_array::types::Int32Type;
        let rows = 2 * IPC_CHUNK_ROWS + 5;
        let long = |i: usize| format!("a product with a long name, number {}", i % 10);
        let names: Vec<Option<String>> = (0..rows).map(|i| (i % 3 != 0).then(|| long(i))).collect();
        let plain: StringArray = names.iter().map(|n| n.as_deref()).collect();
        let dict: DictionaryArray<Int32Type> = names.iter().map(|n| n.as_deref()).collect();
        let table =
            |column: arrow_array::ArrayRef| RecordBatch::try_from_iter([("name", column)]).unwrap();
        let encoded = table(Arc::new(dict));
        let bytes = encode(&Output::table(encoded.clone())).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.select(None).as_table().unwrap(), &encoded);
        // The ten values are written once, not once per chunk: a few bytes per row in all.
        let plain_bytes = encode(&Output::table(table(Arc::new(plain)))).unwrap();
        assert!(
            bytes.len() * 5 < plain_bytes.len(),
            "{} vs {}",
            bytes.len(),
            plain_bytes.len()
        );
        assert!(
            bytes.len() < rows * 6,
            "{} bytes for {rows} rows",
            bytes.len()
        );
    }

    #[test]
    fn outputs_with_part_lengths_in_the_header_still_decode() {
        // The layout flow wrote before lengths followed the parts: a header stating each part's
        // length (padded with spaces), then the parts.
        let mut ipc = Vec::new();
        encode_part(&Data::Table(table()), &mut ipc).unwrap();
        let note = br#"{"a":1}"#;
        let header = format!(
            r#"{{"meta":{{"k":"v"}},"decision":true,"parts":[{{"case":"t","kind":"table","len":{}}},{{"case":"n","kind":"json","len":{}}}]}}   "#,
            ipc.len(),
            note.len()
        );
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&ipc);
        bytes.extend_from_slice(note);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.meta["k"], "v");
        assert_eq!(back.select(Some("t")).as_table().unwrap(), &table());
        assert_eq!(back.select(Some("n")).as_json().unwrap()["a"], 1);
        bytes.truncate(bytes.len() - 1);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn numbers_in_the_metadata_come_back_exactly() {
        // A resumed run reads its inputs' metadata back from their checkpoints; a figure one
        // bit off there would show in its report.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let values: Vec<f64> = (0..20_000)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                match i % 3 {
                    0 => (seed >> 11) as f64 / (1u64 << 53) as f64,
                    1 => f64::from_bits(seed >> 2),
                    _ => (seed % 1_000_000) as f64 / 81.0,
                }
            })
            .filter(|v| v.is_finite())
            .collect();
        let out = Output::data(Data::Empty).with_meta("values", values.clone());
        let back = decode(&encode(&out).unwrap()).unwrap();
        let got: Vec<f64> = serde_json::from_value(back.meta["values"].clone()).unwrap();
        let wrong = values
            .iter()
            .zip(&got)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(wrong, 0, "of {}", values.len());
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(b"nonsense").is_err());
        assert!(decode(b"FLOWOUT2").is_err());
        let bytes = encode(&Output::table(table())).unwrap();
        // Cut anywhere, or a byte dropped from the middle: an error, never a panic.
        for cut in [
            1,
            8,
            10,
            20,
            bytes.len() / 2,
            bytes.len() - 9,
            bytes.len() - 1,
        ] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut shifted = bytes.clone();
        shifted.remove(bytes.len() / 2);
        assert!(decode(&shifted).is_err());
    }

    #[test]
    fn csv_round_trip() {
        let mut buf = Vec::new();
        write_csv(&table(), &mut buf).unwrap();
        let back = read_csv(&buf, b',').unwrap();
        assert_eq!(back.num_rows(), 3);
        assert_eq!(back.schema().field(0).data_type(), &DataType::Int64);
    }
}
