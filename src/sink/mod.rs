//! Table writers: Parquet, jsonl, jsonl.zst or jsonl.gz, chosen by the output's extension.
//!
//! Writers own their files: they write `NAME.tmp`, fsync and rename on `finish`, so a crash
//! never leaves a partial file under the final name.
//!
//! Parquet is written by row groups of at most [`ROW_GROUP_BYTES`] of Arrow data, each encoded
//! and compressed as a task on the thread pool while the next one is gathered, and appended in
//! order ([`ParquetOut`]): where row groups end depends on the data only, so the file's bytes
//! do not depend on the thread count.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::batch::RecordBatch;
use crate::error::{Error, Result};

/// Output format, from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Parquet,
    Jsonl,
    JsonlZst,
    JsonlGz,
}

impl OutFormat {
    /// `.parquet` (or `.pq`), `.jsonl`, `.jsonl.zst`, `.jsonl.gz`; anything else is refused,
    /// so `--out a.csv` never silently holds Parquet.
    pub fn from_path(path: &Path) -> Result<OutFormat> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        if name.ends_with(".parquet") || name.ends_with(".pq") {
            Ok(OutFormat::Parquet)
        } else if name.ends_with(".jsonl") {
            Ok(OutFormat::Jsonl)
        } else if name.ends_with(".jsonl.zst") {
            Ok(OutFormat::JsonlZst)
        } else if name.ends_with(".jsonl.gz") {
            Ok(OutFormat::JsonlGz)
        } else {
            Err(Error::InvalidArgument(format!(
                "{}: unknown output type (expected .parquet, .jsonl, .jsonl.zst or .jsonl.gz)",
                path.display()
            )))
        }
    }
}

type JsonWriter<W> = arrow::json::LineDelimitedWriter<W>;

enum Inner {
    Parquet(ParquetOut),
    Jsonl(JsonWriter<BufWriter<File>>),
    JsonlZst(JsonWriter<zstd::stream::write::Encoder<'static, BufWriter<File>>>),
    JsonlGz(JsonWriter<flate2::write::GzEncoder<BufWriter<File>>>),
}

pub struct TableWriter {
    /// `None` once finished.
    inner: Option<Inner>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

/// Removes a temporary file unless it was renamed into place.
impl Drop for TableWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Where an output goes: `path` itself, or the regular file a symlink at `path` points to.
/// Outputs are written to `NAME.tmp` and renamed over `NAME`, so anything at `NAME` that is
/// not a regular file (a directory, a FIFO, a device, a socket, a dangling link) would be
/// replaced: that is refused, whoever runs it.
pub fn output_target(path: &Path) -> Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::io(path, e)),
        Ok(m) => m,
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(|e| {
            Error::InvalidArgument(format!("{}: a symbolic link whose target cannot be written: {e}", path.display()))
        })?;
        let m = std::fs::metadata(&target).map_err(|e| Error::io(&target, e))?;
        (target, m)
    } else {
        (path.to_path_buf(), meta)
    };
    if !meta.is_file() {
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Error::InvalidArgument(format!(
            "{}: is {what}; an output must be a regular file (syllabus writes NAME.tmp and renames it over NAME, and never replaces anything else)",
            target.display()
        )));
    }
    Ok(target)
}

/// Create an output directory (`run --out`, `eval --out`, `curriculum --out`), or use the
/// one there; anything else at that path is refused with what it is.
pub fn output_dir(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::InvalidArgument(format!(
            "{}: is a file; this output is a directory (give a new or an existing directory)",
            path.display()
        ))),
        Err(_) => std::fs::create_dir_all(path).map_err(|e| Error::io(path, e)),
    }
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// A Parquet row group is closed once the Arrow data written to it passes this (the writer
/// holds the groups being encoded in memory; by rows alone, 1M rows of long documents held
/// gigabytes). Compression is per page (1 MiB), so the size of a group does not change it;
/// groups of a few MiB let several be encoded at once (also while the rows are still being
/// read, and the last group, encoded after the last row, is small) and let readers read them
/// in parallel. The bound doubles after every [`GROUPS_PER_STEP`] groups, up to 64 times this
/// (128 MiB, after the first GiB), so that a file of terabytes stays under Parquet's 32,767
/// row groups.
pub const ROW_GROUP_BYTES: usize = 2 << 20;

/// The zstd level of Parquet outputs: pyarrow's default for zstd. Against level 3 (zstd's own
/// default), compressing a selection's text takes about a quarter less CPU for a file about 7%
/// larger (the bench lake's 20 MB selection: 356 against 263 MB/s and 4.14 against 3.82 MB by
/// `zstd -b1 -e3`); a selection is written once and read a few times, so its size seldom
/// matters.
const PARQUET_ZSTD_LEVEL: i32 = 1;

/// Row groups written at each size before the size doubles (see [`ROW_GROUP_BYTES`]).
const GROUPS_PER_STEP: usize = 8;

/// The Arrow data of the groups being encoded at a time is kept under about this (and at most
/// one group per thread of the pool, plus the one being gathered).
const ENCODING_BYTES: usize = 256 << 20;

/// A Parquet file being written: batches are gathered into a row group, and each full group
/// is encoded by a task on the pool; at most one group per thread (and [`ENCODING_BYTES`]) is
/// encoded at a time besides the one being gathered, and they are appended in order.
struct ParquetOut {
    file: SerializedFileWriter<File>,
    factory: Arc<ArrowRowGroupWriterFactory>,
    schema: SchemaRef,
    /// The group being gathered, its Arrow bytes and rows.
    gathered: Vec<RecordBatch>,
    bytes: usize,
    rows: usize,
    /// Groups begun (encoded, being encoded, or gathered).
    groups: usize,
    encoding: VecDeque<Receiver<std::result::Result<Vec<ArrowColumnChunk>, ParquetError>>>,
    group_bytes: usize,
    group_rows: usize,
}

/// Bytes of Arrow data in `d`'s slice, from its contents, not its layout: the same for a slice
/// of a larger array and for a copy of it (a slice keeps its source's null bitmap and a list
/// slice its source's child values, which `get_slice_memory_size` counts), so that where a
/// row group closes depends on the rows alone. View-typed strings (DataFusion's) count their
/// values too. Types not listed (dictionaries, fixed-size lists) fall back on
/// `get_slice_memory_size`.
fn data_bytes(d: &arrow::array::ArrayData) -> usize {
    use arrow::datatypes::DataType as T;
    let len = d.len();
    let nulls = if d.null_count() > 0 { len.div_ceil(8) } else { 0 };
    let own = match d.data_type() {
        _ if len == 0 => 0,
        T::Utf8 | T::Binary => {
            let o = &d.buffer::<i32>(0)[..=len];
            4 * (len + 1) + (o[len] - o[0]) as usize
        }
        T::LargeUtf8 | T::LargeBinary => {
            let o = &d.buffer::<i64>(0)[..=len];
            8 * (len + 1) + (o[len] - o[0]) as usize
        }
        T::Utf8View | T::BinaryView => d.buffer::<u128>(0)[..len].iter().map(|&v| 16 + v as u32 as usize).sum(),
        T::List(_) | T::Map(..) => {
            let o = &d.buffer::<i32>(0)[..=len];
            let child = d.child_data()[0].slice(o[0] as usize, (o[len] - o[0]) as usize);
            4 * (len + 1) + data_bytes(&child)
        }
        T::LargeList(_) => {
            let o = &d.buffer::<i64>(0)[..=len];
            let child = d.child_data()[0].slice(o[0] as usize, (o[len] - o[0]) as usize);
            8 * (len + 1) + data_bytes(&child)
        }
        // A struct's children are sliced with it (`ArrayData::slice`).
        T::Struct(_) => d.child_data().iter().map(|c| data_bytes(&c.slice(0, len.min(c.len())))).sum(),
        T::Boolean => len.div_ceil(8),
        t => t.primitive_width().map_or_else(|| d.get_slice_memory_size().unwrap_or(0), |w| w * len),
    };
    own + nulls
}

/// Ask the kernel to start writing `file`'s dirty pages to disk now (Linux; a hint, errors
/// ignored), so that the fsync before the rename waits for the last row groups only, not for
/// the whole file.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the call; SYNC_FILE_RANGE_WRITE only starts
        // writeback of pages already written.
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Encode one row group's batches into column chunks.
fn encode_group(
    factory: &ArrowRowGroupWriterFactory,
    index: usize,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> std::result::Result<Vec<ArrowColumnChunk>, ParquetError> {
    let mut writers = factory.create_column_writers(index)?;
    for b in batches {
        let mut leaf_writers = writers.iter_mut();
        for (field, column) in schema.fields().iter().zip(b.columns()) {
            for leaf in compute_leaves(field, column)? {
                let w = leaf_writers.next().ok_or_else(|| ParquetError::General("a leaf without a writer".into()))?;
                w.write(&leaf)?;
            }
        }
    }
    writers.into_iter().map(|w| w.close()).collect()
}

impl ParquetOut {
    fn new(file: File, schema: SchemaRef, props: WriterProperties, group_bytes: usize) -> Result<Self, ParquetError> {
        let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let (file, factory) = ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(ParquetOut {
            file,
            factory: Arc::new(factory),
            schema,
            gathered: Vec::new(),
            bytes: 0,
            rows: 0,
            groups: 0,
            encoding: VecDeque::new(),
            group_bytes: group_bytes.max(1),
            group_rows,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            // A group holds at most `group_rows` rows: the batch is cut where that is reached.
            let take = batch.num_rows().min(self.group_rows - self.rows);
            let head = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            self.bytes += head.columns().iter().map(|c| data_bytes(&c.to_data())).sum::<usize>();
            self.rows += take;
            self.gathered.push(head);
            if self.rows >= self.group_rows || self.bytes >= self.group_target() {
                self.close_group()?;
            }
        }
        Ok(())
    }

    /// Hand the gathered group to an encoding task (or encode it here, on a thread of the pool,
    /// where waiting for a task could starve the pool), and append the groups that are done.
    fn close_group(&mut self) -> Result<(), ParquetError> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.gathered);
        let index = self.groups;
        (self.groups, self.bytes, self.rows) = (self.groups + 1, 0, 0);
        let (tx, rx) = sync_channel(1);
        if rayon::current_thread_index().is_some() {
            let _ = tx.send(encode_group(&self.factory, index, &self.schema, &batches));
        } else {
            let (factory, schema) = (self.factory.clone(), self.schema.clone());
            rayon::spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    encode_group(&factory, index, &schema, &batches)
                }));
                let _ =
                    tx.send(r.unwrap_or_else(|p| Err(ParquetError::General(crate::error::panic_message(p.as_ref())))));
            });
        }
        self.encoding.push_back(rx);
        let at_once = rayon::current_num_threads().min(ENCODING_BYTES / self.group_target()).max(1);
        while self.encoding.len() > at_once {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// The size (Arrow bytes) at which the group being gathered is closed.
    fn group_target(&self) -> usize {
        self.group_bytes << (self.groups / GROUPS_PER_STEP).min(6)
    }

    /// Wait for the oldest group being encoded and append it to the file.
    fn append_oldest(&mut self) -> Result<(), ParquetError> {
        let Some(rx) = self.encoding.pop_front() else { return Ok(()) };
        let chunks = rx.recv().map_err(|_| ParquetError::General("a row group's encoding task was lost".into()))??;
        let mut group = self.file.next_row_group()?;
        for c in chunks {
            c.append_to_row_group(&mut group)?;
        }
        group.close()?;
        start_writeback(self.file.inner());
        Ok(())
    }

    fn finish(mut self) -> Result<File, ParquetError> {
        self.close_group()?;
        while !self.encoding.is_empty() {
            self.append_oldest()?;
        }
        self.file.into_inner()
    }
}

impl TableWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        Self::create_with(path, schema, ROW_GROUP_BYTES)
    }

    /// [`TableWriter::create`] with Parquet row groups closed at `row_group_bytes`.
    fn create_with(path: &Path, schema: SchemaRef, row_group_bytes: usize) -> Result<Self> {
        let format = OutFormat::from_path(path)?;
        let dups = crate::batch::duplicate_names(&schema);
        if !dups.is_empty() {
            return Err(Error::InvalidArgument(format!("{}: two columns named {}", path.display(), dups.join(", "))));
        }
        let path = &output_target(path)?;
        create_parent(path)?;
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let cleanup = |e: Error| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        let pq_err = |e| Error::Parquet { file: path.to_path_buf(), source: e };
        let inner = match format {
            OutFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(PARQUET_ZSTD_LEVEL).map_err(pq_err)?))
                    .build();
                Inner::Parquet(ParquetOut::new(file, schema, props, row_group_bytes).map_err(pq_err).map_err(cleanup)?)
            }
            OutFormat::Jsonl => Inner::Jsonl(JsonWriter::new(BufWriter::new(file))),
            OutFormat::JsonlZst => {
                let enc = zstd::stream::write::Encoder::new(BufWriter::new(file), 3)
                    .map_err(|e| Error::io(&tmp, e))
                    .map_err(cleanup)?;
                Inner::JsonlZst(JsonWriter::new(enc))
            }
            OutFormat::JsonlGz => Inner::JsonlGz(JsonWriter::new(flate2::write::GzEncoder::new(
                BufWriter::new(file),
                flate2::Compression::default(),
            ))),
        };
        Ok(TableWriter { inner: Some(inner), tmp, path: path.to_path_buf(), rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let ctx = |e| Error::arrow(format!("writing {}", self.path.display()), e);
        match self.inner.as_mut().expect("open until finish, which takes the writer") {
            Inner::Parquet(w) => w.write(batch).map_err(|e| Error::Parquet { file: self.path.clone(), source: e })?,
            Inner::Jsonl(w) => w.write(batch).map_err(ctx)?,
            Inner::JsonlZst(w) => w.write(batch).map_err(ctx)?,
            Inner::JsonlGz(w) => w.write(batch).map_err(ctx)?,
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Flush, fsync and move the file to its final name. Returns the rows written. On an
    /// error the temporary file is removed.
    pub fn finish(mut self) -> Result<u64> {
        let inner = self.inner.take().expect("a writer is finished once");
        let r = self.finish_inner(inner);
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        r
    }

    fn finish_inner(&self, inner: Inner) -> Result<u64> {
        let io = |e| Error::io(&self.tmp, e);
        let ctx = |e| Error::arrow(format!("writing {}", self.path.display()), e);
        let file = match inner {
            Inner::Parquet(w) => w.finish().map_err(|e| Error::Parquet { file: self.path.clone(), source: e })?,
            Inner::Jsonl(mut w) => {
                w.finish().map_err(ctx)?;
                w.into_inner().into_inner().map_err(|e| io(e.into_error()))?
            }
            Inner::JsonlZst(mut w) => {
                w.finish().map_err(ctx)?;
                w.into_inner().finish().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?
            }
            Inner::JsonlGz(mut w) => {
                w.finish().map_err(ctx)?;
                w.into_inner().finish().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?
            }
        };
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Open a file an interrupted run was appending to, keep its first `len` bytes (what its last
/// checkpoint recorded) and position at their end. A file shorter than `len` is an error: the
/// checkpoint cannot be trusted.
pub fn append_at(path: &Path, len: u64) -> Result<File> {
    use std::io::Seek;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
    let have = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if have < len {
        return Err(Error::InvalidArgument(format!(
            "{}: {have} bytes, fewer than the {len} its checkpoint recorded",
            path.display()
        )));
    }
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.seek(std::io::SeekFrom::Start(len)).map_err(|e| Error::io(path, e))?;
    Ok(f)
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename).
/// Like a table, only a regular file (or a link to one) is replaced, and a failed write leaves
/// no `NAME.tmp` behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes to the file (a file too large to hold in memory).
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let path = &output_target(path)?;
    create_parent(path)?;
    let tmp = tmp_path(path);
    let r = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        write(&mut f).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// A file written in steps (some of them positioned) and put in place at once: it is
/// `NAME.tmp` until [`AtomicFile::commit`] syncs it and renames it over `NAME`; dropped
/// without a commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let path = output_target(path)?;
        create_parent(&path)?;
        let tmp = tmp_path(&path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile { path, tmp, file: Some(file) })
    }

    pub fn file(&self) -> &File {
        self.file.as_ref().expect("open until committed")
    }

    /// The temporary file's path, for errors.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Sync and rename into place; on an error the temporary file is removed (by drop).
    pub fn commit(mut self) -> Result<()> {
        self.file().sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        // In place: nothing for drop to remove.
        self.file = None;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]))
    }

    #[test]
    fn parquet_row_groups_are_closed_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut w = TableWriter::create_with(&path, schema(), 16 << 10).unwrap();
        let mut all = Vec::new();
        for b in digit_batches(40) {
            let ids = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            all.extend(ids.iter().map(|s| s.unwrap().to_string()));
            w.write(&b).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 4000);
        let f = std::fs::File::open(&path).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let groups = r.metadata().num_row_groups();
        // 80 KB of digits: groups closed at about 16 KB of them.
        assert!(groups >= 2, "{groups} row groups");
        let mut read = Vec::new();
        for b in r.build().unwrap() {
            let b = b.unwrap();
            let ids = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            read.extend(ids.iter().map(|s| s.unwrap().to_string()));
        }
        assert_eq!(read, all);
    }

    /// Rows of random digits (zstd cannot shrink them much), 20 bytes each, in batches of 100.
    fn digit_batches(n: usize) -> Vec<RecordBatch> {
        let mut x = 7u64;
        (0..n)
            .map(|_| {
                let ids: Vec<String> = (0..100)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        format!("{x:020}")
                    })
                    .collect();
                RecordBatch::try_new(schema(), vec![Arc::new(arrow::array::StringArray::from(ids))]).unwrap()
            })
            .collect()
    }

    #[test]
    fn parquet_bytes_do_not_depend_on_where_groups_are_encoded() {
        // Row groups encoded by tasks on the pool (written from outside it), and encoded on the
        // writing thread (written from inside a pool of one thread): the same file.
        let dir = tempfile::tempdir().unwrap();
        let batches = digit_batches(30);
        let write = |path: &Path| {
            let mut w = TableWriter::create_with(path, schema(), 8 << 10).unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap()
        };
        let (tasks, here) = (dir.path().join("tasks.parquet"), dir.path().join("here.parquet"));
        assert_eq!(write(&tasks), 3000);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| write(&here)), 3000);
        let bytes = std::fs::read(&tasks).unwrap();
        assert_eq!(bytes, std::fs::read(&here).unwrap());
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&tasks).unwrap(),
        )
        .unwrap();
        assert!(r.metadata().num_row_groups() >= 5, "{} groups", r.metadata().num_row_groups());
        let read: Vec<RecordBatch> = r.build().unwrap().map(|b| b.unwrap()).collect();
        let all = |bs: &[RecordBatch]| arrow::compute::concat_batches(&schema(), bs).unwrap();
        assert_eq!(all(&read), all(&batches));
    }

    #[test]
    fn a_slice_counts_what_a_copy_of_it_counts() {
        use arrow::array::{Array, ArrayRef, Int64Array, ListArray, StringArray, StructArray};
        use arrow::datatypes::{DataType, Field, Int32Type};
        let strings: ArrayRef =
            Arc::new(StringArray::from(vec![Some("ab"), None, Some("cdef"), Some("g"), Some("hij")]));
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![Some(3)]),
            Some(vec![Some(4), Some(5), Some(6)]),
            Some(vec![]),
        ]));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
        let structs: ArrayRef = Arc::new(StructArray::from(vec![
            (Arc::new(Field::new("s", DataType::Utf8, true)), strings.clone()),
            (Arc::new(Field::new("i", DataType::Int64, false)), ints.clone()),
        ]));
        for a in [strings, lists, ints, structs] {
            for (off, len) in [(2, 3), (3, 2), (0, 5), (1, 0)] {
                let slice = a.slice(off, len);
                let copy = arrow::compute::concat(&[&slice, &a.slice(0, 0)]).unwrap();
                // A copy of a slice without nulls has no null bitmap; the slice keeps its source's.
                assert_eq!(
                    data_bytes(&slice.to_data()),
                    data_bytes(&copy.to_data()),
                    "{:?} {off} {len}",
                    a.data_type()
                );
            }
        }
    }

    #[test]
    fn view_strings_count_their_values() {
        // 100 rows of 1,000 bytes: the views alone are 1,600 bytes.
        let long = "x".repeat(1000);
        let views = arrow::array::StringViewArray::from_iter_values(std::iter::repeat_n(long.as_str(), 100));
        let n = data_bytes(&arrow::array::Array::to_data(&views));
        assert!(n >= 100_000, "{n}");
        let plain = arrow::array::StringArray::from_iter_values(std::iter::repeat_n(long.as_str(), 100));
        assert!(data_bytes(&arrow::array::Array::to_data(&plain)) >= 100_000);
    }

    #[test]
    fn row_groups_grow_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::create_with(&dir.path().join("t.parquet"), schema(), 1000).unwrap();
        let Some(Inner::Parquet(mut p)) = w.inner.take() else { panic!("a parquet writer") };
        let mut sizes = Vec::new();
        for g in [0, GROUPS_PER_STEP - 1, GROUPS_PER_STEP, 4 * GROUPS_PER_STEP, 100 * GROUPS_PER_STEP] {
            p.groups = g;
            sizes.push(p.group_target());
        }
        assert_eq!(sizes, [1000, 1000, 2000, 16000, 64000]);
        // At the default size, the groups stop growing at 128 MiB: Parquet's 32,767 groups hold
        // terabytes.
        p.group_bytes = ROW_GROUP_BYTES;
        p.groups = 32_767;
        assert_eq!(p.group_target(), 128 << 20);
    }

    #[test]
    fn unknown_output_extensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = TableWriter::create(&dir.path().join("a.csv"), schema()).err().unwrap().to_string();
        assert!(err.contains("a.csv: unknown output type"), "{err}");
        assert!(!dir.path().join("a.csv.tmp").exists());
    }

    #[test]
    fn out_to_a_fifo_or_a_directory_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.parquet");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = TableWriter::create(&fifo, schema()).err().unwrap().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&std::fs::symlink_metadata(&fifo).unwrap().file_type()));
        let sub = dir.path().join("d.parquet");
        std::fs::create_dir(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").unwrap_err().to_string().contains("is a directory"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no .tmp left: {names:?}");
    }

    #[test]
    fn out_through_a_symlink_writes_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.jsonl");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let dangling = dir.path().join("dangling.jsonl");
        std::os::unix::fs::symlink(dir.path().join("nowhere/x"), &dangling).unwrap();
        assert!(write_atomic(&dangling, b"x").is_err());
    }

    #[test]
    fn a_dropped_writer_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let w = TableWriter::create(&p, schema()).unwrap();
        assert!(dir.path().join("t.parquet.tmp").exists());
        drop(w);
        assert!(!dir.path().join("t.parquet.tmp").exists());
        assert!(!p.exists());
    }
}
