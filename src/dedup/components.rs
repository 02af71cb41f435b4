//! Connected components of the candidate pairs: union-find over the rows that are in a pair
//! (a hash map, so rows without duplicates take no memory), every component's root its
//! smallest row, the first in lake order.

use rustc_hash::FxHashMap;

#[derive(Debug, Default)]
pub struct UnionFind {
    parent: FxHashMap<u64, u64>,
}

impl UnionFind {
    /// The root of `x`'s component (`x` itself when it is in no pair), halving paths on the way.
    pub fn find(&mut self, x: u64) -> u64 {
        let mut x = x;
        loop {
            let Some(&p) = self.parent.get(&x) else { return x };
            if p == x {
                return x;
            }
            let gp = self.parent.get(&p).copied().unwrap_or(p);
            if gp != p {
                self.parent.insert(x, gp);
            }
            x = p;
        }
    }

    /// Join the components of `a` and `b`; the smaller root is the root of both.
    pub fn union(&mut self, a: u64, b: u64) {
        let (ra, rb) = (self.find(a), self.find(b));
        self.parent.entry(ra).or_insert(ra);
        self.parent.entry(rb).or_insert(rb);
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(hi, lo);
        }
    }

    /// Every row in a pair, with its root.
    pub fn roots(mut self) -> FxHashMap<u64, u64> {
        let rows: Vec<u64> = self.parent.keys().copied().collect();
        rows.into_iter().map(|r| (r, self.find(r))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_rooted_at_their_first_row() {
        let mut uf = UnionFind::default();
        // 9-5, 5-7, 3-8 and a chain 20-21-22 joined at its end to 2.
        for (a, b) in [(9, 5), (5, 7), (3, 8), (20, 21), (22, 21), (22, 2)] {
            uf.union(a, b);
        }
        assert_eq!([uf.find(9), uf.find(7), uf.find(5)], [5, 5, 5]);
        assert_eq!([uf.find(8), uf.find(3)], [3, 3]);
        assert_eq!([uf.find(20), uf.find(21), uf.find(22), uf.find(2)], [2, 2, 2, 2]);
        assert_eq!(uf.find(100), 100);
        let mut sizes: FxHashMap<u64, u64> = FxHashMap::default();
        for (_, root) in uf.roots() {
            *sizes.entry(root).or_insert(0) += 1;
        }
        assert_eq!(sizes.get(&5), Some(&3));
        assert_eq!(sizes.get(&3), Some(&2));
        assert_eq!(sizes.get(&2), Some(&4));
        assert_eq!(sizes.len(), 3);
    }
}
