//! Orderings within a domain, and the external sort behind them.
//!
//! ascending / descending by a score, random (seeded, a new shuffle each repeat pass), input
//! order, and folding (DELT, Dai et al. 2025): ascending, then L passes, pass l taking the
//! documents whose sorted index i has i mod L = l. Ties go to the earlier document.
//!
//! Records are fixed-size ([`Rec`]); a domain's records are sorted by an external merge sort:
//! runs of at most `memory` bytes are sorted and spilled, then merged with a heap. Memory is
//! the run buffer plus one read buffer per run, whatever the number of documents.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::curriculum::OrderMethod;
use crate::error::{Error, Result};

/// One document of the curriculum's input, as stored between stages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    /// The ordering score (NaN when the ordering has none).
    pub score: f64,
    /// The loss for reweighting (NaN when not reweighting).
    pub loss: f64,
    /// Position in the document table.
    pub doc: u64,
    /// Offset of its tokens in the token store (u32 units).
    pub tok_off: u64,
    /// Offset of its id in the id store (bytes).
    pub id_off: u64,
    pub id_len: u32,
    /// Tokens, without the end-of-document token.
    pub n_tokens: u32,
}

pub const REC_BYTES: usize = 48;

impl Rec {
    pub fn to_bytes(&self) -> [u8; REC_BYTES] {
        let mut b = [0u8; REC_BYTES];
        b[0..8].copy_from_slice(&self.score.to_le_bytes());
        b[8..16].copy_from_slice(&self.loss.to_le_bytes());
        b[16..24].copy_from_slice(&self.doc.to_le_bytes());
        b[24..32].copy_from_slice(&self.tok_off.to_le_bytes());
        b[32..40].copy_from_slice(&self.id_off.to_le_bytes());
        b[40..44].copy_from_slice(&self.id_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.n_tokens.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Rec {
        let f = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap());
        let g = |r: std::ops::Range<usize>| u32::from_le_bytes(b[r].try_into().unwrap());
        Rec {
            score: f64::from_bits(f(0..8)),
            loss: f64::from_bits(f(8..16)),
            doc: f(16..24),
            tok_off: f(24..32),
            id_off: f(32..40),
            id_len: g(40..44),
            n_tokens: g(44..48),
        }
    }

    /// Tokens emitted for this document: its tokens and the end-of-document token.
    pub fn emitted_len(&self) -> u64 {
        self.n_tokens as u64 + 1
    }
}

/// A float's bits mapped so that unsigned order is `total_cmp` order.
fn ordered_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// The sort key of a record for an ordering and (repeat) pass: smaller first.
pub fn sort_key(method: OrderMethod, seed: u32, pass: u32, r: &Rec) -> (u64, u64) {
    match method {
        OrderMethod::Input => (0, r.doc),
        OrderMethod::Ascending | OrderMethod::Folding | OrderMethod::Related => (ordered_bits(r.score), r.doc),
        OrderMethod::Descending => (ordered_bits(-r.score), r.doc),
        OrderMethod::Random => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&seed.to_le_bytes());
            b[4..8].copy_from_slice(&pass.to_le_bytes());
            b[8..].copy_from_slice(&r.doc.to_le_bytes());
            (xxhash_rust::xxh3::xxh3_64(&b), r.doc)
        }
    }
}

/// Folding's order of sorted positions 0..n with L passes.
pub fn folding_positions(n: u64, passes: u64) -> impl Iterator<Item = u64> {
    let passes = passes.max(1);
    (0..passes.min(n.max(1))).flat_map(move |l| (l..n).step_by(passes as usize))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Read records from a file in order.
pub struct RecReader {
    path: PathBuf,
    inner: BufReader<File>,
}

impl RecReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(io(path))?;
        Ok(RecReader { path: path.to_path_buf(), inner: BufReader::with_capacity(1 << 16, f) })
    }

    pub fn next_rec(&mut self) -> Result<Option<Rec>> {
        let mut b = [0u8; REC_BYTES];
        match self.inner.read_exact(&mut b) {
            Ok(()) => Ok(Some(Rec::from_bytes(&b))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// Append records to a file.
pub struct RecWriter {
    path: PathBuf,
    inner: BufWriter<File>,
    pub count: u64,
}

impl RecWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(io(path))?;
        Ok(RecWriter { path: path.to_path_buf(), inner: BufWriter::with_capacity(1 << 16, f), count: 0 })
    }

    /// Go on with a record file after its first `count` records (a checkpoint's).
    pub fn resume(path: &Path, count: u64) -> Result<Self> {
        let f = crate::sink::append_at(path, count * REC_BYTES as u64)?;
        Ok(RecWriter { path: path.to_path_buf(), inner: BufWriter::with_capacity(1 << 16, f), count })
    }

    /// Flush and make durable what was pushed so far.
    pub fn sync(&mut self) -> Result<()> {
        self.inner.flush().map_err(io(&self.path))?;
        self.inner.get_ref().sync_data().map_err(io(&self.path))
    }

    pub fn push(&mut self, r: &Rec) -> Result<()> {
        self.count += 1;
        self.inner.write_all(&r.to_bytes()).map_err(io(&self.path))
    }

    /// Flush and fsync.
    pub fn finish(self) -> Result<u64> {
        let f = self.inner.into_inner().map_err(|e| Error::io(&self.path, e.into_error()))?;
        f.sync_all().map_err(io(&self.path))?;
        Ok(self.count)
    }
}

/// Sort the records of `input` by `key` into `output` (written as `output.tmp`, then renamed),
/// spilling runs of at most `memory` bytes to `scratch`.
pub fn sort_file(
    input: &Path,
    output: &Path,
    scratch: &Path,
    memory: usize,
    key: impl Fn(&Rec) -> (u64, u64),
) -> Result<u64> {
    let run_len = (memory / (REC_BYTES + 16)).max(1024);
    let mut reader = RecReader::open(input)?;
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut buf: Vec<((u64, u64), Rec)> = Vec::new();
    let tmp = output.with_extension("tmp");
    loop {
        let r = reader.next_rec()?;
        if let Some(r) = r {
            buf.push((key(&r), r));
        }
        if buf.len() >= run_len || (r.is_none() && !runs.is_empty() && !buf.is_empty()) {
            buf.sort_unstable_by_key(|(k, _)| *k);
            let path = scratch.join(format!("run-{}.rec", runs.len()));
            let mut w = RecWriter::create(&path)?;
            for (_, r) in buf.drain(..) {
                w.push(&r)?;
            }
            w.finish()?;
            runs.push(path);
        }
        if r.is_none() {
            break;
        }
    }
    let mut out = RecWriter::create(&tmp)?;
    if runs.is_empty() {
        buf.sort_unstable_by_key(|(k, _)| *k);
        for (_, r) in &buf {
            out.push(r)?;
        }
    } else {
        let mut heap = BinaryHeap::new();
        let mut heads: Vec<Option<Rec>> = vec![None; runs.len()];
        let mut readers = runs.iter().map(|p| RecReader::open(p)).collect::<Result<Vec<_>>>()?;
        for (i, rd) in readers.iter_mut().enumerate() {
            if let Some(r) = rd.next_rec()? {
                heap.push(Reverse((key(&r), i, r.doc)));
                heads[i] = Some(r);
            }
        }
        while let Some(Reverse((_, i, _))) = heap.pop() {
            let r = heads[i].take().expect("a head for every heap entry");
            out.push(&r)?;
            if let Some(n) = readers[i].next_rec()? {
                heap.push(Reverse((key(&n), i, n.doc)));
                heads[i] = Some(n);
            }
        }
        for p in &runs {
            std::fs::remove_file(p).map_err(io(p))?;
        }
    }
    let n = out.finish()?;
    std::fs::rename(&tmp, output).map_err(io(output))?;
    Ok(n)
}

/// Reads a sorted record file at arbitrary positions, a block at a time.
pub struct RecFile {
    path: PathBuf,
    file: File,
    pub len: u64,
    block_start: u64,
    block: Vec<u8>,
}

const BLOCK_RECS: u64 = 4096;

impl RecFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io(path))?;
        let bytes = file.metadata().map_err(io(path))?.len();
        if bytes % REC_BYTES as u64 != 0 {
            return Err(Error::InvalidArgument(format!("{}: truncated record file", path.display())));
        }
        Ok(RecFile { path: path.to_path_buf(), file, len: bytes / REC_BYTES as u64, block_start: 0, block: Vec::new() })
    }

    pub fn get(&mut self, i: u64) -> Result<Rec> {
        let in_block = i >= self.block_start && i < self.block_start + (self.block.len() / REC_BYTES) as u64;
        if !in_block {
            let n = BLOCK_RECS.min(self.len - i);
            self.block.resize(n as usize * REC_BYTES, 0);
            self.file.read_exact_at(&mut self.block, i * REC_BYTES as u64).map_err(io(&self.path))?;
            self.block_start = i;
        }
        let at = (i - self.block_start) as usize * REC_BYTES;
        Ok(Rec::from_bytes(&self.block[at..at + REC_BYTES]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(doc: u64, score: f64) -> Rec {
        Rec { score, loss: f64::NAN, doc, tok_off: doc * 3, id_off: doc, id_len: 1, n_tokens: 2 }
    }

    #[test]
    fn folding_oracle() {
        // Scores 1..6 sorted ascending, L = 3: [1, 4, 2, 5, 3, 6].
        let order: Vec<u64> = folding_positions(6, 3).map(|i| i + 1).collect();
        assert_eq!(order, vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(folding_positions(5, 1).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(folding_positions(2, 5).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(folding_positions(0, 3).count(), 0);
    }

    #[test]
    fn keys_order_as_said() {
        let a = rec(0, -1.5);
        let b = rec(1, 2.0);
        let k = |m, r: &Rec| sort_key(m, 0, 0, r);
        assert!(k(OrderMethod::Ascending, &a) < k(OrderMethod::Ascending, &b));
        assert!(k(OrderMethod::Descending, &a) > k(OrderMethod::Descending, &b));
        assert_ne!(sort_key(OrderMethod::Random, 0, 0, &a), sort_key(OrderMethod::Random, 0, 1, &a));
        assert_eq!(Rec::from_bytes(&a.to_bytes()).doc, 0);
    }

    proptest! {
        /// Every ordering is a permutation, and the external sort (tiny runs, many spills)
        /// gives the in-memory order.
        #[test]
        fn external_sort_is_a_sorted_permutation(scores in proptest::collection::vec(-5i32..5, 0..3000), m in 0usize..4) {
            let method = [OrderMethod::Ascending, OrderMethod::Descending, OrderMethod::Random, OrderMethod::Input][m];
            let dir = tempfile::tempdir().unwrap();
            let input = dir.path().join("in.rec");
            let mut w = RecWriter::create(&input).unwrap();
            let recs: Vec<Rec> = scores.iter().enumerate().map(|(i, &s)| rec(i as u64, s as f64)).collect();
            for r in &recs { w.push(r).unwrap(); }
            w.finish().unwrap();
            let out = dir.path().join("out.rec");
            // 1 byte of memory: runs of the minimum size, so inputs over 1024 records spill.
            let n = sort_file(&input, &out, dir.path(), 1, |r| sort_key(method, 7, 0, r)).unwrap();
            prop_assert_eq!(n as usize, recs.len());
            let mut f = RecFile::open(&out).unwrap();
            let got: Vec<Rec> = (0..f.len).map(|i| f.get(i).unwrap()).collect();
            let mut expect = recs.clone();
            expect.sort_by_key(|r| sort_key(method, 7, 0, r));
            let bytes = |v: &[Rec]| v.iter().map(|r| r.to_bytes().to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(bytes(&got), bytes(&expect));
        }
    }
}
