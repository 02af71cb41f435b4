//! Decompression chosen by file extension: a `BufRead` wrapper, not a separate source.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::error::{Error, Result};

const READ_BUF: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Plain,
    Gzip,
    Zstd,
}

impl Codec {
    /// Open `path` (a file or a store URL) and decompress it as a stream.
    pub fn open(self, path: &Path) -> Result<Box<dyn BufRead + Send>> {
        let raw = BufReader::with_capacity(READ_BUF, crate::store::open(path)?);
        Ok(match self {
            Codec::Plain => Box::new(raw),
            Codec::Gzip => Box::new(BufReader::with_capacity(READ_BUF, flate2::bufread::MultiGzDecoder::new(raw))),
            Codec::Zstd => {
                let dec = zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| Error::io(path, e))?;
                Box::new(BufReader::with_capacity(READ_BUF, dec))
            }
        })
    }

    /// Open `path` at `offset` bytes into its decompressed contents: a seek for a plain file;
    /// a compressed stream is decompressed from the start and the bytes before `offset`
    /// dropped (decompression is an order of magnitude faster than anything done with the
    /// lines). An offset past the end is an error.
    pub fn open_at(self, path: &Path, offset: u64) -> Result<Box<dyn BufRead + Send>> {
        if offset == 0 {
            return self.open(path);
        }
        let short = || {
            Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file is shorter than {offset} bytes: it changed"),
                ),
            )
        };
        if self == Codec::Plain {
            // A seek, or a ranged request to a store.
            return Ok(Box::new(BufReader::with_capacity(READ_BUF, crate::store::open_at(path, offset)?)));
        }
        let mut r = self.open(path)?;
        let skipped = std::io::copy(&mut std::io::Read::take(&mut r, offset), &mut std::io::sink())
            .map_err(|e| Error::io(path, e))?;
        if skipped < offset {
            return Err(short());
        }
        Ok(r)
    }

    pub fn is_compressed(self) -> bool {
        self != Codec::Plain
    }
}
