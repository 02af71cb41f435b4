//! The rejects file: one JSON line per bad record, with file, line or row, reason and the raw
//! bytes (lossily decoded as UTF-8).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};

/// At most this many bytes of a rejected record's raw text are kept.
const MAX_RAW_BYTES: usize = 1 << 20;

pub struct RejectWriter {
    path: PathBuf,
    out: BufWriter<File>,
    count: u64,
    /// Bytes written (and flushed) so far.
    bytes: u64,
}

#[derive(serde::Serialize)]
struct RejectLine<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_offset: Option<u64>,
    reason: &'a str,
    raw: &'a str,
}

impl RejectWriter {
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(RejectWriter { path: path.to_path_buf(), out: BufWriter::new(file), count: 0, bytes: 0 })
    }

    /// Go on with a rejects file an interrupted run wrote: its first `len` bytes (`count`
    /// records) are kept, anything after them is cut off.
    pub fn resume(path: &Path, len: u64, count: u64) -> Result<Self> {
        let file = crate::sink::append_at(path, len)?;
        Ok(RejectWriter { path: path.to_path_buf(), out: BufWriter::new(file), count, bytes: len })
    }

    /// The rejects file of a run that may be resuming: created when nothing was kept
    /// (`kept` is None), else the kept `(bytes, records)` of an interrupted run's file, which
    /// must still be there unless it was empty.
    pub fn reopen(path: &Path, kept: Option<(u64, u64)>) -> Result<Self> {
        match kept {
            Some((bytes, records)) if path.exists() => Self::resume(path, bytes, records),
            Some((bytes, _)) if bytes > 0 => Err(Error::InvalidArgument(format!(
                "{} is gone, but the interrupted run wrote {bytes} bytes to it: remove its work directory to start over",
                path.display()
            ))),
            _ => Self::create(path),
        }
    }

    /// Bytes written so far; each record is flushed as it is written (rejects are rare), so
    /// the file holds at least this many.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn record(
        &mut self,
        file: &str,
        location: Location,
        offset: Option<u64>,
        reason: &str,
        raw: &[u8],
    ) -> Result<()> {
        let raw = String::from_utf8_lossy(&raw[..raw.len().min(MAX_RAW_BYTES)]);
        let (line, row) = match location {
            Location::Line(n) => (Some(n), None),
            Location::Row(n) => (None, Some(n)),
        };
        let rec = RejectLine { file, line, row, byte_offset: offset, reason, raw: raw.trim_end_matches(['\n', '\r']) };
        let mut line = serde_json::to_vec(&rec).map_err(|e| Error::io(&self.path, e.into()))?;
        line.push(b'\n');
        self.out.write_all(&line).map_err(|e| Error::io(&self.path, e))?;
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.count += 1;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Append a record another writer wrote (one JSON line, without its newline): a cluster's
    /// executors record rejects and the client gathers them here, in lake order.
    pub fn append_line(&mut self, line: &str) -> Result<()> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(&self.path, e))?;
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.count += 1;
        self.bytes += line.len() as u64 + 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.count)
    }
}
