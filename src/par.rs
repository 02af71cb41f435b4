//! Parallelism you can turn off: batches are read in order, scored in parallel chunks, and
//! handed on in order, so results never depend on the thread count.
//!
//! While one chunk is scored on the rayon pool, the next one is read (`rayon::join`), so IO and
//! decoding overlap with scoring. At most two chunks of `4 * threads` batches are in memory.

use rayon::prelude::*;

use crate::error::Result;
use crate::source::{LakeReader, SourceBatch};

/// What the consumer wants next.
pub enum Flow {
    Continue,
    /// Stop reading this file (by index) and go on with the next one.
    SkipFile(usize),
}

/// Build the global rayon pool with `threads` threads (0: one per core). Call once, early.
pub fn init_threads(threads: usize) {
    let mut b = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        b = b.num_threads(threads);
    }
    // An already initialised pool (tests, a second call) is fine: keep it.
    let _ = b.build_global();
}

fn read_chunk(reader: &mut LakeReader<'_>, n: usize) -> Result<Vec<SourceBatch>> {
    let mut chunk = Vec::with_capacity(n);
    for b in reader.by_ref().take(n) {
        chunk.push(b?);
    }
    Ok(chunk)
}

/// [`for_each_ordered`] over batches already in memory (a [`crate::source::KeptLake`]'s): no
/// file is skipped.
pub fn for_each_kept<T, W, S>(batches: impl IntoIterator<Item = SourceBatch>, work: W, mut sink: S) -> Result<()>
where
    T: Send,
    W: Fn(&SourceBatch) -> Result<T> + Sync,
    S: FnMut(SourceBatch, T) -> Result<Flow>,
{
    let chunk_len = 4 * rayon::current_num_threads().max(1);
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        let chunk: Vec<SourceBatch> = batches.by_ref().take(chunk_len).collect();
        let results = chunk.par_iter().map(&work).collect::<Vec<Result<T>>>();
        for (batch, result) in chunk.into_iter().zip(results) {
            sink(batch, result?)?;
        }
    }
    Ok(())
}

/// Run `work` on every batch of `reader` in parallel and `sink` on the results in order.
pub fn for_each_ordered<T, W, S>(reader: &mut LakeReader<'_>, work: W, mut sink: S) -> Result<()>
where
    T: Send,
    W: Fn(&SourceBatch) -> Result<T> + Sync,
    S: FnMut(SourceBatch, T) -> Result<Flow>,
{
    let chunk_len = 4 * rayon::current_num_threads().max(1);
    let mut chunk = read_chunk(reader, chunk_len)?;
    let mut skipped: Vec<usize> = Vec::new();
    while !chunk.is_empty() {
        let (results, next) =
            rayon::join(|| chunk.par_iter().map(&work).collect::<Vec<Result<T>>>(), || read_chunk(reader, chunk_len));
        for (batch, result) in chunk.into_iter().zip(results) {
            if skipped.contains(&batch.file) {
                continue;
            }
            let file = batch.file;
            if let Flow::SkipFile(f) = sink(batch, result?)? {
                debug_assert_eq!(f, file);
                skipped.push(f);
            }
        }
        // Batches of a skipped file that were read ahead are dropped; stop the reader too.
        for &f in &skipped {
            reader.skip_rest_of_file(f);
        }
        chunk = next?.into_iter().filter(|b| !skipped.contains(&b.file)).collect();
        if chunk.is_empty() {
            chunk = read_chunk(reader, chunk_len)?;
        }
    }
    Ok(())
}
