//! Decompression chosen by file extension: a `BufRead` wrapper, not a separate source.

use std::fs::File;
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
    /// Open `path` and decompress it as a stream.
    pub fn open(self, path: &Path) -> Result<Box<dyn BufRead + Send>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let raw = BufReader::with_capacity(READ_BUF, file);
        Ok(match self {
            Codec::Plain => Box::new(raw),
            Codec::Gzip => Box::new(BufReader::with_capacity(READ_BUF, flate2::bufread::MultiGzDecoder::new(raw))),
            Codec::Zstd => {
                let dec = zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| Error::io(path, e))?;
                Box::new(BufReader::with_capacity(READ_BUF, dec))
            }
        })
    }

    pub fn is_compressed(self) -> bool {
        self != Codec::Plain
    }
}
