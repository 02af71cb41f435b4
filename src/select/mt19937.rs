//! numpy's legacy global generator (`np.random.seed(S)`; `np.random.gumbel`), bit for bit.
//!
//! MT19937 seeded with `init_genrand(S)`; a double is `((a >> 5) * 2^26 + (b >> 6)) / 2^53`
//! from two consecutive 32-bit outputs; a standard Gumbel draw is `-ln(-ln(U))` with
//! `U = 1 - double`, drawn again while `U == 1`, as numpy's `random_gumbel` does.
//!
//! [`Mt19937::jumped`] starts a generator `t` outputs ahead without drawing them, so a cluster
//! partition draws the noise of its rows' global positions: the state after `t` steps is
//! `g(T)` applied to the seeded state, with `g = x^t mod p` and `p` the recurrence's
//! characteristic polynomial (degree 19937; found once per process by Berlekamp-Massey on the
//! generator's own output), evaluated by Horner's rule (Haramoto et al., 2008). About 36 ms per
//! jump of 2e10 outputs (`cargo bench --bench stages -- select/mt19937`).

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937(pos {})", self.pos)
    }
}

impl Mt19937 {
    /// `init_genrand(seed)`, what `np.random.seed(seed)` does for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { mt, pos: N }
    }

    fn generate(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & UPPER_MASK) | (self.mt[(i + 1) % N] & LOWER_MASK);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.mt[i] = v;
        }
        self.pos = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.generate();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A double in [0, 1) with 53 random bits (numpy's `random_standard_uniform`).
    pub fn next_f64(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// A standard Gumbel draw (numpy's `random_gumbel` with loc 0, scale 1).
    pub fn gumbel(&mut self) -> f64 {
        loop {
            let u = 1.0 - self.next_f64();
            if u < 1.0 {
                return -(-u.ln()).ln();
            }
        }
    }
}

/// The state's linear recurrence as a sliding window of 624 words: the words at logical
/// positions `k..k + 624` of the sequence, `head` being position `k`.
#[derive(Clone)]
struct Window {
    w: [u32; N],
    head: usize,
}

impl Window {
    fn at(&self, i: usize) -> u32 {
        self.w[(self.head + i) % N]
    }

    /// One step: the next word of the sequence replaces the oldest.
    fn step(&mut self) {
        let (x0, x1, xm) = (self.at(0), self.at(1), self.at(M));
        let y = (x0 & UPPER_MASK) | (x1 & LOWER_MASK);
        let mut v = xm ^ (y >> 1);
        if y & 1 != 0 {
            v ^= MATRIX_A;
        }
        self.w[self.head] = v;
        self.head = (self.head + 1) % N;
    }

    /// `self ^= other`, position by position.
    fn add(&mut self, other: &Window) {
        for i in 0..N {
            self.w[(self.head + i) % N] ^= other.at(i);
        }
    }
}

/// Degree of the characteristic polynomial (the generator's period is 2^19937 - 1).
const DEGREE: usize = 19937;
const WORDS: usize = DEGREE / 64 + 1;

/// A polynomial over GF(2), bit i the coefficient of x^i.
type Poly = Vec<u64>;

fn bit(p: &[u64], i: usize) -> bool {
    p.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
}

/// `p ^= q * x^shift`.
fn add_shifted(p: &mut Poly, q: &[u64], shift: usize) {
    let (ws, bs) = (shift / 64, shift % 64);
    let need = q.len() + ws + 1;
    if p.len() < need {
        p.resize(need, 0);
    }
    for (i, &w) in q.iter().enumerate() {
        if w == 0 {
            continue;
        }
        p[i + ws] ^= w << bs;
        if bs != 0 {
            p[i + ws + 1] ^= w >> (64 - bs);
        }
    }
}

/// The characteristic polynomial of MT19937's recurrence, from 2 * 19937 output bits by
/// Berlekamp-Massey (the least linear recurrence of a sequence of the generator is it).
fn characteristic() -> &'static Poly {
    static P: std::sync::OnceLock<Poly> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let n = 2 * DEGREE + 64;
        let mut w = Window { w: Mt19937::new(5489).mt, head: 0 };
        // The sequence reversed: r[k] = s[n - 1 - k], so s[j - i] for i = 0, 1, ... is a run
        // of r from n - 1 - j upwards, read 64 bits at a time.
        let mut r = vec![0u64; n / 64 + 2];
        for i in 0..n {
            w.step();
            if w.at(N - 1) & 1 != 0 {
                let k = n - 1 - i;
                r[k / 64] |= 1 << (k % 64);
            }
        }
        let run = |from: usize| -> u64 {
            let (q, b) = (from / 64, from % 64);
            let lo = r.get(q).copied().unwrap_or(0) >> b;
            let hi = if b == 0 { 0 } else { r.get(q + 1).copied().unwrap_or(0) << (64 - b) };
            lo | hi
        };
        // c(x) = 1 + c1 x + ... + cL x^L with s[j] = sum_i ci s[j - i].
        let (mut c, mut b): (Poly, Poly) = (vec![1], vec![1]);
        let (mut l, mut m) = (0usize, 1usize);
        for j in 0..n {
            let d = c.iter().enumerate().fold(0u32, |acc, (q, &cw)| acc ^ (cw & run(n - 1 - j + 64 * q)).count_ones())
                & 1
                != 0;
            if !d {
                m += 1;
            } else if 2 * l <= j {
                let t = c.clone();
                add_shifted(&mut c, &b, m);
                l = j + 1 - l;
                b = t;
                m = 1;
            } else {
                add_shifted(&mut c, &b, m);
                m += 1;
            }
        }
        assert_eq!(l, DEGREE, "MT19937's recurrence has degree 19937");
        // The characteristic polynomial is c's reciprocal: x^L c(1/x).
        let mut p = vec![0u64; WORDS];
        for i in 0..=l {
            if bit(&c, i) {
                p[(l - i) / 64] |= 1 << ((l - i) % 64);
            }
        }
        p
    })
}

/// `p mod char`, for `p` of degree below 2 * 19937.
fn reduce(mut p: Poly, char: &[u64]) -> Poly {
    for i in (DEGREE..p.len() * 64).rev() {
        if bit(&p, i) {
            add_shifted(&mut p, char, i - DEGREE);
        }
    }
    p.truncate(WORDS);
    p
}

/// `x^t mod char`.
fn x_pow_mod(t: u64, char: &[u64]) -> Poly {
    let mut g: Poly = vec![1];
    for b in (0..64 - t.leading_zeros()).rev() {
        // Square: over GF(2) the bits spread to even positions.
        let mut sq = vec![0u64; 2 * g.len()];
        for (i, &w) in g.iter().enumerate() {
            for j in 0..64 {
                if w >> j & 1 != 0 {
                    let k = 2 * (64 * i + j);
                    sq[k / 64] |= 1 << (k % 64);
                }
            }
        }
        g = reduce(sq, char);
        if t >> b & 1 != 0 {
            let mut shifted = vec![0u64; g.len() + 1];
            add_shifted(&mut shifted, &g, 1);
            g = reduce(shifted, char);
        }
    }
    g
}

impl Mt19937 {
    /// The generator `Mt19937::new(seed)` after `t` calls of [`Mt19937::next_u32`], without
    /// making them (two per double, so the d-th draw of a stream without rejections starts at
    /// `t = 2d`).
    pub fn jumped(seed: u32, t: u64) -> Self {
        let start = Mt19937::new(seed);
        if t < N as u64 {
            let mut r = start;
            (0..t).for_each(|_| {
                r.next_u32();
            });
            return r;
        }
        let g = x_pow_mod(t, characteristic());
        let s = Window { w: start.mt, head: 0 };
        // Horner: r = sum g_i T^i s. Position 0's low 31 bits may differ from the true state's;
        // the recurrence never reads them.
        let mut r = Window { w: [0; N], head: 0 };
        for i in (0..DEGREE).rev() {
            r.step();
            if bit(&g, i) {
                r.add(&s);
            }
        }
        let mut mt = [0u32; N];
        for (i, m) in mt.iter_mut().enumerate() {
            *m = r.at(i);
        }
        Mt19937 { mt, pos: N }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_lands_where_drawing_does() {
        for seed in [0u32, 5489, 12345] {
            let mut r = Mt19937::new(seed);
            let mut at = 0u64;
            for t in [0u64, 1, 2, 623, 624, 625, 1247, 1248, 5000, 40_001, 123_457] {
                while at < t {
                    r.next_u32();
                    at += 1;
                }
                let mut j = Mt19937::jumped(seed, t);
                let mut copy = Mt19937 { mt: r.mt, pos: r.pos };
                let want: Vec<u32> = (0..1300).map(|_| copy.next_u32()).collect();
                let got: Vec<u32> = (0..1300).map(|_| j.next_u32()).collect();
                assert_eq!(got, want, "seed {seed}, t {t}");
            }
        }
    }

    #[test]
    fn the_jumped_gumbel_stream_continues_numpys() {
        // The third draw of np.random.seed(0); np.random.gumbel(size=3).
        let mut r = Mt19937::jumped(0, 4);
        assert_eq!(r.gumbel(), 0.07988431226434371);
    }

    #[test]
    fn matches_reference_mt19937() {
        // First outputs of init_genrand(5489), the reference implementation's default seed.
        let mut r = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
        // The 10000th output of the default-seeded generator is 4123659995 (C++ std::mt19937).
        let mut r = Mt19937::new(5489);
        let v = (0..10_000).map(|_| r.next_u32()).last().unwrap();
        assert_eq!(v, 4_123_659_995);
    }

    #[test]
    fn matches_numpy_legacy_doubles_and_gumbel() {
        // np.random.seed(0); np.random.random_sample(2) and np.random.seed(0); np.random.gumbel(size=2)
        let mut r = Mt19937::new(0);
        assert_eq!(r.next_f64().to_bits(), 0.5488135039273248f64.to_bits());
        assert_eq!(r.next_f64().to_bits(), 0.7151893663724195f64.to_bits());
        let mut r = Mt19937::new(0);
        let g: Vec<f64> = (0..3).map(|_| r.gumbel()).collect();
        assert_eq!(g, [0.2283137586277238, -0.2278769414993676, 0.07988431226434371]);
        // np.random.seed(12345); np.random.gumbel(size=3)
        let mut r = Mt19937::new(12345);
        let g: Vec<f64> = (0..3).map(|_| r.gumbel()).collect();
        assert_eq!(g, [-0.9759890454967225, 0.966672419395296, 1.5933606791737167]);
    }
}
