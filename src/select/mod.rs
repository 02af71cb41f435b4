//! Selection: keep the k best rows of a stream by a key, in O(k) memory.
//!
//! Gumbel top-k: adding one standard Gumbel draw to each log weight and keeping the k largest
//! samples k rows without replacement with probability proportional to the weights. With a
//! seed, the draws are numpy's legacy generator's (see [`mt19937`]), one per eligible row in
//! row order, so the same rows as the DSIR reference are chosen. Ties between equal keys go to
//! the earlier row, so the result is deterministic.

pub mod mt19937;
pub mod rule;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

pub use mt19937::Mt19937;

/// A row and the key it is ranked by; greater is better, ties prefer the earlier row.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    pub key: f64,
    /// Position in the stream (ties go to the smaller).
    pub row: u64,
    /// The row's score before any noise (written to the output).
    pub score: f64,
    /// Where the row is, to read it again: file index and line or row in that file.
    pub file: u32,
    pub loc: u64,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key).then_with(|| other.row.cmp(&self.row))
    }
}

/// The k greatest rows seen so far.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
    offered: u64,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.min(1 << 20)), offered: 0 }
    }

    pub fn offer(&mut self, r: Ranked) {
        self.offered += 1;
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Reverse(r));
        } else if self.heap.peek().is_some_and(|Reverse(min)| r > *min) {
            self.heap.pop();
            self.heap.push(Reverse(r));
        }
    }

    /// How many rows were offered.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// The kept rows in row order.
    pub fn into_rows(self) -> Vec<Ranked> {
        let mut v: Vec<Ranked> = self.heap.into_iter().map(|Reverse(r)| r).collect();
        v.sort_by_key(|r| r.row);
        v
    }
}

/// How the key of a row is formed from its score.
pub enum Noise {
    /// Plain top-k on the score.
    None,
    /// Score plus a standard Gumbel draw from numpy's legacy generator with this seed.
    Gumbel(Box<Mt19937>),
}

impl Noise {
    pub fn gumbel(seed: u32) -> Self {
        Noise::Gumbel(Box::new(Mt19937::new(seed)))
    }

    pub fn key(&mut self, score: f64) -> f64 {
        match self {
            Noise::None => score,
            Noise::Gumbel(rng) => score + rng.gumbel(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn top(scores: &[f64], k: usize) -> Vec<u64> {
        let mut t = TopK::new(k);
        for (i, &s) in scores.iter().enumerate() {
            t.offer(Ranked { key: s, row: i as u64, score: s, file: 0, loc: i as u64 });
        }
        t.into_rows().iter().map(|r| r.row).collect()
    }

    #[test]
    fn keeps_the_k_largest_ties_to_earlier_rows() {
        assert_eq!(top(&[1.0, 5.0, 3.0, 5.0, 4.0], 2), [1, 3]);
        assert_eq!(top(&[2.0, 2.0, 2.0], 2), [0, 1]);
        assert_eq!(top(&[1.0], 0), Vec::<u64>::new());
    }

    proptest! {
        #[test]
        fn top_k_equals_sorting(scores in proptest::collection::vec(-1e3f64..1e3, 0..200), k in 0usize..50) {
            let mut idx: Vec<usize> = (0..scores.len()).collect();
            idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let mut want: Vec<u64> = idx.into_iter().take(k).map(|i| i as u64).collect();
            want.sort();
            prop_assert_eq!(top(&scores, k), want);
        }
    }
}
