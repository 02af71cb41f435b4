//! An external sort of fixed-size entries (dedup's band and exact joins, k-means' ranks within a
//! cluster): entries are buffered up to a memory budget, sorted (in parallel) and spilled as
//! sorted runs; a k-way merge then hands them on in order ([`ExternalSort::merged`]) or as
//! groups of equal keys, rows ascending ([`ExternalSort::groups`]). Memory: the buffer (the
//! budget) and one read buffer per run; disk: every entry once.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

use crate::error::{Error, Result};

/// The largest entry on disk, in bytes.
const MAX_ENTRY: usize = 128;

/// A sortable entry: a key and the row it belongs to, of a fixed size on disk (at most
/// [`MAX_ENTRY`] bytes).
pub trait Entry: Copy + Ord + Send + Sync {
    const SIZE: usize;
    fn write(&self, out: &mut [u8]);
    fn read(bytes: &[u8]) -> Self;
    fn same_key(&self, other: &Self) -> bool;
    fn row(&self) -> u64;
}

/// A band key: ordered by key, then row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BandEntry {
    pub key: u64,
    pub row: u64,
}

impl Entry for BandEntry {
    const SIZE: usize = 16;
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.key.to_le_bytes());
        out[8..16].copy_from_slice(&self.row.to_le_bytes());
    }
    fn read(b: &[u8]) -> Self {
        BandEntry {
            key: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            row: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.key == other.key
    }
    fn row(&self) -> u64 {
        self.row
    }
}

/// An exact key (128 bits, as two halves so the entry is 24 bytes): by key, then row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExactEntry {
    pub hi: u64,
    pub lo: u64,
    pub row: u64,
}

impl ExactEntry {
    pub fn new(key: u128, row: u64) -> Self {
        ExactEntry { hi: (key >> 64) as u64, lo: key as u64, row }
    }
}

impl Entry for ExactEntry {
    const SIZE: usize = 24;
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.hi.to_le_bytes());
        out[8..16].copy_from_slice(&self.lo.to_le_bytes());
        out[16..24].copy_from_slice(&self.row.to_le_bytes());
    }
    fn read(b: &[u8]) -> Self {
        let u = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        ExactEntry { hi: u(0), lo: u(1), row: u(2) }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.hi == other.hi && self.lo == other.lo
    }
    fn row(&self) -> u64 {
        self.row
    }
}

/// Entries sorted under a budget of `budget` bytes, spilling sorted runs to `dir`.
pub struct ExternalSort<E: Entry> {
    buf: Vec<E>,
    cap: usize,
    dir: PathBuf,
    name: &'static str,
    runs: Vec<PathBuf>,
    /// Entries pushed in all.
    pub total: u64,
}

impl<E: Entry> ExternalSort<E> {
    pub fn new(dir: &Path, name: &'static str, budget: usize) -> Self {
        const { assert!(E::SIZE <= MAX_ENTRY) };
        let cap = (budget / std::mem::size_of::<E>()).max(256);
        ExternalSort { buf: Vec::new(), cap, dir: dir.to_path_buf(), name, runs: Vec::new(), total: 0 }
    }

    pub fn push(&mut self, e: E) -> Result<()> {
        if self.buf.len() >= self.cap {
            self.spill()?;
        }
        if self.buf.len() == self.buf.capacity() {
            // Grow by doubling, but never past the budget.
            let add = self.buf.len().max(1024).min(self.cap - self.buf.len()).max(1);
            self.buf.reserve_exact(add);
        }
        self.buf.push(e);
        self.total += 1;
        Ok(())
    }

    /// Runs written to disk so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> Result<()> {
        self.buf.par_sort_unstable();
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(format!("{}-{:06}.run", self.name, self.runs.len()));
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut bytes = vec![0u8; E::SIZE];
        for e in &self.buf {
            e.write(&mut bytes);
            w.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
        }
        w.flush().map_err(|e| Error::io(&path, e))?;
        self.runs.push(path);
        self.buf.clear();
        Ok(())
    }

    /// Merge everything and call `group` with each run of equal keys (rows ascending) that has
    /// at least two rows. Spilled runs are removed afterwards.
    pub fn groups(self, mut group: impl FnMut(&[E]) -> Result<()>) -> Result<()> {
        let mut merged = self.merged()?;
        let mut current: Vec<E> = Vec::new();
        while let Some(e) = merged.next_entry()? {
            if current.last().is_some_and(|l| !l.same_key(&e)) {
                if current.len() > 1 {
                    group(&current)?;
                }
                current.clear();
            }
            current.push(e);
        }
        if current.len() > 1 {
            group(&current)?;
        }
        Ok(())
    }

    /// Every entry, in order: a k-way merge of the spilled runs and the buffer. The runs are
    /// removed when the merge is dropped.
    pub fn merged(mut self) -> Result<Merged<E>> {
        self.buf.par_sort_unstable();
        let mut sources: Vec<Source<E>> = Vec::with_capacity(self.runs.len() + 1);
        for p in &self.runs {
            let f = File::open(p).map_err(|e| Error::io(p, e))?;
            sources.push(Source::Run { r: BufReader::with_capacity(1 << 16, f), path: p.clone() });
        }
        sources.push(Source::Memory(std::mem::take(&mut self.buf).into_iter()));
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(e) = s.next()? {
                heap.push(std::cmp::Reverse((e, i)));
            }
        }
        Ok(Merged { sources, heap, runs: std::mem::take(&mut self.runs) })
    }
}

/// The merge of an [`ExternalSort`]: its entries in order.
pub struct Merged<E: Entry> {
    sources: Vec<Source<E>>,
    heap: BinaryHeap<std::cmp::Reverse<(E, usize)>>,
    runs: Vec<PathBuf>,
}

impl<E: Entry> Merged<E> {
    /// The next entry; None when all are done.
    pub fn next_entry(&mut self) -> Result<Option<E>> {
        let Some(std::cmp::Reverse((e, i))) = self.heap.pop() else { return Ok(None) };
        if let Some(n) = self.sources[i].next()? {
            self.heap.push(std::cmp::Reverse((n, i)));
        }
        Ok(Some(e))
    }
}

impl<E: Entry> Drop for Merged<E> {
    fn drop(&mut self) {
        self.sources.clear();
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
    }
}

enum Source<E: Entry> {
    Run { r: BufReader<File>, path: PathBuf },
    Memory(std::vec::IntoIter<E>),
}

impl<E: Entry> Source<E> {
    fn next(&mut self) -> Result<Option<E>> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::Run { r, path } => {
                let mut b = [0u8; MAX_ENTRY];
                let b = &mut b[..E::SIZE];
                match r.read_exact(b) {
                    Ok(()) => Ok(Some(E::read(b))),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(Error::io(&*path, e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups_of(entries: &[BandEntry], budget: usize) -> (Vec<Vec<u64>>, usize) {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(tmp.path(), "t", budget);
        for e in entries {
            s.push(*e).unwrap();
        }
        let runs = s.runs();
        let mut out = Vec::new();
        s.groups(|g| {
            out.push(g.iter().map(|e| e.row).collect());
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "runs are removed");
        (out, runs)
    }

    /// Spilling changes nothing: the groups of a tiny budget (many runs) are the in-memory ones.
    #[test]
    fn spilled_runs_merge_to_the_same_groups() {
        let entries: Vec<BandEntry> =
            (0..20_000u64).map(|row| BandEntry { key: (row * 7919) % 3001, row: 20_000 - row }).collect();
        let (mem, runs0) = groups_of(&entries, 1 << 30);
        let (disk, runs) = groups_of(&entries, 1024 * 16);
        assert_eq!(runs0, 0);
        assert!(runs >= 10, "{runs} runs");
        assert_eq!(mem, disk);
        assert_eq!(mem.len(), 3001);
        assert!(mem.iter().all(|g| g.windows(2).all(|w| w[0] < w[1])), "rows ascend within a group");
    }

    /// The merge hands on every entry once, in order, spilled or not, and removes the runs.
    #[test]
    fn merged_is_the_sorted_entries() {
        let entries: Vec<BandEntry> = (0..5_000u64).map(|row| BandEntry { key: (row * 31) % 97, row }).collect();
        let mut want = entries.clone();
        want.sort();
        for budget in [1 << 30, 1024] {
            let tmp = tempfile::tempdir().unwrap();
            let mut s = ExternalSort::new(tmp.path(), "m", budget);
            for e in &entries {
                s.push(*e).unwrap();
            }
            let mut merged = s.merged().unwrap();
            let mut got = Vec::new();
            while let Some(e) = merged.next_entry().unwrap() {
                got.push(e);
            }
            drop(merged);
            assert_eq!(got, want);
            assert_eq!(std::fs::read_dir(tmp.path()).map_or(0, |d| d.count()), 0, "runs are removed");
        }
    }
}
