//! Related documents next to each other (In-Context Pretraining, Shi et al. 2024): an order of a
//! document table in which neighbours follow each other, so that packing puts related
//! documents into one context.
//!
//! 1. Each document gets its vector under a k-means model, its two nearest centroids and a
//!    256-bit SimHash of its vector (random hyperplanes: the angle between two vectors is
//!    about `pi * hamming / 256`).
//! 2. Documents are sorted (an external sort) by their nearest and second-nearest centroid,
//!    then by distance: a cell holds the documents between the same two centroids, the
//!    candidates for each other's neighbours, with no search over the whole table.
//! 3. Each cell is cut into blocks of at most `block` documents; within a block a greedy
//!    path starts at the document nearest its centroid and goes on to the unvisited document
//!    with the most similar SimHash (ties: the earlier), visiting every document once. Blocks
//!    follow each other in cell order; documents without words come last, in input order.
//!
//! The result is each document's position in that order (by its row in the table), which the
//! curriculum sorts by. Deterministic (the sort and the paths follow rows, never threads).
//! Memory: 4 bytes per document for the positions (the one structure that grows with the
//! table), the sort's budget, and one block. Work: `block` SimHash comparisons per document.

use std::path::Path;

use crate::error::{Error, Result};
use crate::extsort::{Entry, ExternalSort};
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::source::{Extras, InputFile, LakeReader, ReadOptions};

use super::model::KMeansModel;
use super::vectors::Sparse;

/// 256 bits.
type Sketch = [u64; 4];

/// The SimHash of a weighted sparse vector: bit b is set when the weighted sum of the features'
/// random signs for b is positive (a feature's 256 signs are the bits of its xxh3-128 under
/// two seeds).
pub fn simhash(v: &Sparse) -> Sketch {
    let mut acc = [0f32; 256];
    for (&j, &w) in v.idx.iter().zip(&v.val) {
        let b = j.to_le_bytes();
        let lo = xxhash_rust::xxh3::xxh3_128_with_seed(&b, 0x5EED);
        let hi = xxhash_rust::xxh3::xxh3_128_with_seed(&b, 0x5EED + 1);
        let words = [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64];
        let w2 = 2.0 * w;
        for (i, &word) in words.iter().enumerate() {
            // +w where the bit is set, -w where not; branchless, so it vectorizes.
            for (bit, a) in acc[i * 64..(i + 1) * 64].iter_mut().enumerate() {
                *a += w2 * ((word >> bit) & 1) as f32 - w;
            }
        }
    }
    let mut out = [0u64; 4];
    for (i, a) in acc.iter().enumerate() {
        if *a > 0.0 {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

fn hamming(a: &Sketch, b: &Sketch) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The cosine two SimHashes estimate.
pub fn cos_estimate(a: &Sketch, b: &Sketch) -> f64 {
    (std::f64::consts::PI * f64::from(hamming(a, b)) / 256.0).cos()
}

/// A document in the sort: its cell (nearest and second-nearest centroid), distance, row, sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Placed {
    first: u32,
    second: u32,
    dist: u64,
    row: u64,
    sketch: Sketch,
}

impl Entry for Placed {
    const SIZE: usize = 56;
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.first.to_le_bytes());
        out[4..8].copy_from_slice(&self.second.to_le_bytes());
        out[8..16].copy_from_slice(&self.dist.to_le_bytes());
        out[16..24].copy_from_slice(&self.row.to_le_bytes());
        for (i, w) in self.sketch.iter().enumerate() {
            out[24 + 8 * i..32 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
    }
    fn read(b: &[u8]) -> Self {
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
        Placed {
            first: u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            second: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            dist: u(8..16),
            row: u(16..24),
            sketch: [u(24..32), u(32..40), u(40..48), u(48..56)],
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        (self.first, self.second) == (other.first, other.second)
    }
    fn row(&self) -> u64 {
        self.row
    }
}

/// What the order did, for the curriculum's summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RelatedReport {
    pub documents: u64,
    pub without_words: u64,
    /// Mean estimated cosine of each document and the next, in input order and in this order
    /// (documents with words only).
    pub mean_cos_input: f64,
    pub mean_cos_related: f64,
}

/// The nearest and second-nearest centroid of `v` and the distance to the nearest.
fn two_nearest(model: &KMeansModel, v: &Sparse, sims: &mut Vec<f64>) -> (u32, u32, f64) {
    let (c, d) = model.assign(v, sims).expect("a vector with words");
    let second =
        (0..sims.len()).filter(|&i| i != c as usize).max_by(|&a, &b| sims[a].total_cmp(&sims[b]).then(b.cmp(&a)));
    (c, second.map_or(c, |s| s as u32), d)
}

/// The position of every row of the table in the related order (by row), and the report.
#[allow(clippy::too_many_arguments)]
pub fn related_order(
    files: &[InputFile],
    read: &ReadOptions,
    model: &KMeansModel,
    block: usize,
    memory_limit: u64,
    spill: &Path,
    progress: &Progress,
) -> Result<(Vec<u32>, RelatedReport)> {
    if block == 0 {
        return Err(Error::InvalidArgument("the related order's block must hold at least 1 document".into()));
    }
    let mut sort: ExternalSort<Placed> = ExternalSort::new(spill, "related", memory_limit as usize);
    let mut report = RelatedReport::default();
    let mut wordless: Vec<u64> = Vec::new();
    let (mut prev, mut cos_sum, mut pairs) = (None::<Sketch>, 0.0, 0u64);
    let bar = progress.rows("order: related");
    let mut reader = LakeReader::new(files, read, Extras::none(), None);
    for_each_ordered(
        &mut reader,
        |b| {
            let text = crate::batch::text_column(&b.batch)?;
            let (mut scratch, mut sims) = (super::vectors::Counter::default(), Vec::new());
            Ok(text
                .iter()
                .map(|t| {
                    let v = model.vector(t.unwrap_or(""), &mut scratch);
                    (!v.is_empty()).then(|| {
                        let (first, second, d) = two_nearest(model, &v, &mut sims);
                        (first, second, d, simhash(&v))
                    })
                })
                .collect::<Vec<_>>())
        },
        |b, placed| {
            bar.inc(placed.len() as u64);
            for (i, p) in placed.into_iter().enumerate() {
                let row = b.first_row + i as u64;
                report.documents += 1;
                match p {
                    None => {
                        report.without_words += 1;
                        wordless.push(row);
                    }
                    Some((first, second, d, sketch)) => {
                        if let Some(q) = prev {
                            cos_sum += cos_estimate(&q, &sketch);
                            pairs += 1;
                        }
                        prev = Some(sketch);
                        sort.push(Placed { first, second, dist: d.to_bits(), row, sketch })?;
                    }
                }
            }
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    report.mean_cos_input = cos_sum / pairs.max(1) as f64;
    let n = usize::try_from(report.documents).ok().filter(|&n| n <= u32::MAX as usize).ok_or_else(|| {
        Error::InvalidArgument(format!("{} documents: the related order holds at most 2^32", report.documents))
    })?;
    let mut positions = vec![u32::MAX; n];
    let mut next = 0u32;
    let (mut prev, mut cos_sum, mut pairs) = (None::<Sketch>, 0.0, 0u64);
    let mut visit = |p: &Placed, positions: &mut Vec<u32>| {
        positions[p.row as usize] = next;
        next += 1;
        if let Some(q) = prev {
            cos_sum += cos_estimate(&q, &p.sketch);
            pairs += 1;
        }
        prev = Some(p.sketch);
    };
    let mut merged = sort.merged()?;
    let mut cell: Vec<Placed> = Vec::with_capacity(block);
    let mut flush = |cell: &mut Vec<Placed>, positions: &mut Vec<u32>| {
        for i in greedy_path(cell) {
            visit(&cell[i], positions);
        }
        cell.clear();
    };
    while let Some(p) = merged.next_entry()? {
        if cell.len() == block || cell.last().is_some_and(|l| !l.same_key(&p)) {
            flush(&mut cell, &mut positions);
        }
        cell.push(p);
    }
    flush(&mut cell, &mut positions);
    drop(merged);
    for row in wordless {
        positions[row as usize] = next;
        next += 1;
    }
    report.mean_cos_related = cos_sum / pairs.max(1) as f64;
    Ok((positions, report))
}

/// Documents per block of the greedy path.
pub const BLOCK: usize = 256;

/// The related order of a curriculum's table under the model at `model`: positions by row and
/// the report (printed). Spilled runs go under `work`.
pub fn positions_for(
    files: &[InputFile],
    read: &ReadOptions,
    model: &Path,
    sort_memory: u64,
    work: &Path,
    progress: &Progress,
) -> Result<(std::sync::Arc<Vec<u32>>, RelatedReport)> {
    let start = std::time::Instant::now();
    let model = KMeansModel::load(model)?;
    let spill = work.join("related-spill");
    let (positions, report) = related_order(files, read, &model, BLOCK, sort_memory, &spill, progress)?;
    let _ = std::fs::remove_dir_all(&spill);
    eprintln!(
        "  related order: {} documents ({} without words, last); mean cosine of neighbours {:.3}, in input order {:.3} (SimHash estimates); {:.1} s",
        report.documents,
        report.without_words,
        report.mean_cos_related,
        report.mean_cos_input,
        start.elapsed().as_secs_f64()
    );
    Ok((std::sync::Arc::new(positions), report))
}

/// A path through `docs` that starts at the first and goes on to the unvisited document with
/// the nearest SimHash (ties: the earlier): the indices in visiting order.
fn greedy_path(docs: &[Placed]) -> Vec<usize> {
    let n = docs.len();
    let mut visited = vec![false; n];
    let mut path = Vec::with_capacity(n);
    let mut cur = 0;
    for _ in 0..n {
        visited[cur] = true;
        path.push(cur);
        let mut best: Option<(u32, usize)> = None;
        for j in (0..n).filter(|&j| !visited[j]) {
            let h = hamming(&docs[cur].sketch, &docs[j].sketch);
            if best.is_none_or(|(bh, _)| h < bh) {
                best = Some((h, j));
            }
        }
        match best {
            Some((_, j)) => cur = j,
            None => break,
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(idx: &[u32], val: &[f32]) -> Sparse {
        let n = val.iter().map(|x| x * x).sum::<f32>().sqrt();
        Sparse { idx: idx.to_vec(), val: val.iter().map(|x| x / n).collect() }
    }

    /// A document-like vector: `n` features from `from`, weights varying.
    fn doc(from: u32, n: u32) -> Sparse {
        let idx: Vec<u32> = (from..from + n).collect();
        let val: Vec<f32> = idx.iter().map(|&i| 1.0 + (i % 7) as f32 * 0.3).collect();
        unit(&idx, &val)
    }

    fn exact_cos(a: &Sparse, b: &Sparse) -> f64 {
        let mut dense = vec![0f64; 4096];
        for (&i, &x) in b.idx.iter().zip(&b.val) {
            dense[i as usize] = f64::from(x);
        }
        a.dot(&dense)
    }

    #[test]
    fn simhash_estimates_the_cosine() {
        let a = doc(0, 300);
        assert_eq!(cos_estimate(&simhash(&a), &simhash(&a)), 1.0);
        // Half the features shared, and none: the estimate is within the noise of 256 bits.
        for (b, tol) in [(doc(150, 300), 0.15), (doc(1000, 300), 0.2), (doc(20, 300), 0.1)] {
            let (want, est) = (exact_cos(&a, &b), cos_estimate(&simhash(&a), &simhash(&b)));
            assert!((est - want).abs() < tol, "exact {want}, estimate {est}");
        }
    }

    #[test]
    fn greedy_path_visits_every_document_once_nearest_first() {
        let at = |row: u64, sketch: Sketch| Placed { first: 0, second: 1, dist: 0, row, sketch };
        // Sketches on a line: 0, 3 bits, 1 bit, 2 bits set: the path goes 0 -> 1 bit -> 2 -> 3.
        let docs = vec![at(0, [0; 4]), at(1, [0b111, 0, 0, 0]), at(2, [0b1, 0, 0, 0]), at(3, [0b11, 0, 0, 0])];
        assert_eq!(greedy_path(&docs), vec![0, 2, 3, 1]);
        assert_eq!(greedy_path(&[]), Vec::<usize>::new());
        let many: Vec<Placed> = (0..50).map(|i| at(i, [i * 2654435761 % 1024, i, 0, 0])).collect();
        let mut p = greedy_path(&many);
        p.sort();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
