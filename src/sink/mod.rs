//! Table writers: Parquet, jsonl, jsonl.zst or jsonl.gz, chosen by the output's extension.
//!
//! Writers own their files: they write `NAME.tmp`, fsync and rename on `finish`, so a crash
//! never leaves a partial file under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

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
    /// `.parquet`, `.jsonl`, `.jsonl.zst`, `.jsonl.gz`; anything else is Parquet.
    pub fn from_path(path: &Path) -> OutFormat {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        if name.ends_with(".jsonl") {
            OutFormat::Jsonl
        } else if name.ends_with(".jsonl.zst") {
            OutFormat::JsonlZst
        } else if name.ends_with(".jsonl.gz") {
            OutFormat::JsonlGz
        } else {
            OutFormat::Parquet
        }
    }
}

type JsonWriter<W> = arrow::json::LineDelimitedWriter<W>;

enum Inner {
    Parquet(ArrowWriter<File>),
    Jsonl(JsonWriter<BufWriter<File>>),
    JsonlZst(JsonWriter<zstd::stream::write::Encoder<'static, BufWriter<File>>>),
    JsonlGz(JsonWriter<flate2::write::GzEncoder<BufWriter<File>>>),
}

pub struct TableWriter {
    inner: Inner,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

impl TableWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        create_parent(path)?;
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let pq_err = |e| Error::Parquet { file: path.to_path_buf(), source: e };
        let inner = match OutFormat::from_path(path) {
            OutFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(pq_err)?))
                    .build();
                Inner::Parquet(ArrowWriter::try_new(file, schema, Some(props)).map_err(pq_err)?)
            }
            OutFormat::Jsonl => Inner::Jsonl(JsonWriter::new(BufWriter::new(file))),
            OutFormat::JsonlZst => {
                let enc = zstd::stream::write::Encoder::new(BufWriter::new(file), 3).map_err(|e| Error::io(&tmp, e))?;
                Inner::JsonlZst(JsonWriter::new(enc))
            }
            OutFormat::JsonlGz => {
                Inner::JsonlGz(JsonWriter::new(flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default())))
            }
        };
        Ok(TableWriter { inner, tmp, path: path.to_path_buf(), rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let ctx = |e| Error::arrow(format!("writing {}", self.path.display()), e);
        match &mut self.inner {
            Inner::Parquet(w) => w.write(batch).map_err(|e| Error::Parquet { file: self.path.clone(), source: e })?,
            Inner::Jsonl(w) => w.write(batch).map_err(ctx)?,
            Inner::JsonlZst(w) => w.write(batch).map_err(ctx)?,
            Inner::JsonlGz(w) => w.write(batch).map_err(ctx)?,
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flush, fsync and move the file to its final name. Returns the rows written.
    pub fn finish(self) -> Result<u64> {
        let io = |e| Error::io(&self.tmp, e);
        let ctx = |e| Error::arrow(format!("writing {}", self.path.display()), e);
        let file = match self.inner {
            Inner::Parquet(w) => w.into_inner().map_err(|e| Error::Parquet { file: self.path.clone(), source: e })?,
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

/// Write `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
