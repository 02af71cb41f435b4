//! SHA-256 of short keys (at most [`MAX_ONE_BLOCK`] bytes: one 64-byte block), four at a time.
//!
//! DSIR's reference buckets n-grams by SHA-256, and the n-grams missing from the featurizer's
//! caches each need one digest. With the CPU's SHA extensions one digest is a chain of 32
//! `sha256rnds2`, each waiting on the one before: the unit sits idle between them. Four
//! independent blocks interleaved keep it busy (19 ns a block against 27.5 for one at a time,
//! on the development machine's AMD EPYC). Without the extensions (or off x86-64) the blocks
//! go one by one through the `sha2` crate. Either way the digests are SHA-256's, checked
//! against `sha2` by the tests.

/// The longest key that fits one block with SHA-256's padding (0x80 and the 8-byte length).
pub const MAX_ONE_BLOCK: usize = 55;

/// SHA-256's initial state.
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The padded block of a key of at most [`MAX_ONE_BLOCK`] bytes, given as pieces: their
/// bytes, 0x80, zeros, and the length in bits (big-endian) in the last 8 bytes.
#[inline]
pub fn block_of(pieces: &[&[u8]]) -> [u8; 64] {
    let mut block = [0u8; 64];
    pad_into(&mut block, pieces);
    block
}

/// [`block_of`] written into `block`.
#[inline]
pub fn pad_into(block: &mut [u8; 64], pieces: &[&[u8]]) {
    *block = [0u8; 64];
    let mut at = 0;
    for p in pieces {
        copy_short(&mut block[at..at + p.len()], p);
        at += p.len();
    }
    debug_assert!(at <= MAX_ONE_BLOCK);
    block[at] = 0x80;
    block[56..].copy_from_slice(&(at as u64 * 8).to_be_bytes());
}

/// `dst.copy_from_slice(src)` for at most 64 bytes, as two fixed-size copies that may overlap
/// (a copy of a length known only at run time is a call into libc's `memcpy`: three calls a
/// bigram miss were 2% of `select dsir`).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert!(dst.len() == n && n <= 64);
    if n >= 16 {
        if n <= 32 {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        } else {
            dst[..32].copy_from_slice(&src[..32]);
            dst[n - 32..].copy_from_slice(&src[n - 32..]);
        }
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// The digest of one padded block, as its eight big-endian 32-bit words.
#[inline]
pub fn digest_one(block: &[u8; 64]) -> [u32; 8] {
    let mut state = H0;
    sha2::compress256(&mut state, std::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(block)));
    state
}

/// The digests of four padded blocks.
#[derive(Debug, Clone, Copy)]
pub struct Four {
    #[cfg(target_arch = "x86_64")]
    sha_ni: bool,
}

impl Default for Four {
    fn default() -> Self {
        Four::new()
    }
}

impl Four {
    /// With the SHA extensions where this CPU has them.
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let sha_ni = std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1");
            Four { sha_ni }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Four {}
    }

    /// Always one block at a time through `sha2` (for tests of both paths).
    pub fn portable() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Four { sha_ni: false }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Four {}
    }

    #[inline]
    pub fn digest(&self, blocks: &[[u8; 64]; 4]) -> [[u32; 8]; 4] {
        #[cfg(target_arch = "x86_64")]
        if self.sha_ni {
            // SAFETY: the CPU has SHA, SSSE3 and SSE4.1 (checked in `new`).
            return unsafe { x86::digest4(blocks) };
        }
        std::array::from_fn(|i| digest_one(&blocks[i]))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::H0;

    /// SHA-256's round constants.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Four blocks compressed from the initial state, their rounds interleaved. The state is
    /// kept as the extensions want it: one register holds words A, B, E, F (high to low
    /// lanes), the other C, D, G, H. Each step of four rounds takes the next four message
    /// words: the block's own for the first four steps, then the schedule's
    /// (`sha256msg1`, the words seven back, `sha256msg2`).
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub(super) unsafe fn digest4(blocks: &[[u8; 64]; 4]) -> [[u32; 8]; 4] {
        // Big-endian words from the block's bytes.
        let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let abef0 = _mm_set_epi32(H0[0] as i32, H0[1] as i32, H0[4] as i32, H0[5] as i32);
        let cdgh0 = _mm_set_epi32(H0[2] as i32, H0[3] as i32, H0[6] as i32, H0[7] as i32);
        let mut abef = [abef0; 4];
        let mut cdgh = [cdgh0; 4];
        let mut w = [[_mm_setzero_si128(); 4]; 4];
        for (wn, block) in w.iter_mut().zip(blocks) {
            for (j, wj) in wn.iter_mut().enumerate() {
                *wj = _mm_shuffle_epi8(_mm_loadu_si128(block.as_ptr().add(16 * j).cast()), swap);
            }
        }
        for step in 0..16 {
            let k = _mm_loadu_si128(K.as_ptr().add(4 * step).cast());
            for n in 0..4 {
                let words = if step < 4 {
                    w[n][step]
                } else {
                    // Words t-16.. (the oldest kept), t-12.., t-8.., t-4..: the next four.
                    let (a, b, c, d) =
                        (w[n][step % 4], w[n][(step + 1) % 4], w[n][(step + 2) % 4], w[n][(step + 3) % 4]);
                    let next =
                        _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)), d);
                    w[n][step % 4] = next;
                    next
                };
                let wk = _mm_add_epi32(words, k);
                cdgh[n] = _mm_sha256rnds2_epu32(cdgh[n], abef[n], wk);
                abef[n] = _mm_sha256rnds2_epu32(abef[n], cdgh[n], _mm_shuffle_epi32(wk, 0x0E));
            }
        }
        let mut out = [[0u32; 8]; 4];
        for n in 0..4 {
            let (mut x, mut y) = ([0u32; 4], [0u32; 4]);
            _mm_storeu_si128(x.as_mut_ptr().cast(), _mm_add_epi32(abef[n], abef0));
            _mm_storeu_si128(y.as_mut_ptr().cast(), _mm_add_epi32(cdgh[n], cdgh0));
            // Lanes low to high: F, E, B, A and H, G, D, C.
            out[n] = [x[3], x[2], y[3], y[2], x[1], x[0], y[1], y[0]];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn reference(key: &[u8]) -> [u32; 8] {
        let d = Sha256::digest(key);
        std::array::from_fn(|i| u32::from_be_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]))
    }

    #[test]
    fn known_digests() {
        // FIPS 180-2's "abc", and the empty message.
        let abc = [0xba7816bf, 0x8f01cfea, 0x414140de, 0x5dae2223, 0xb00361a3, 0x96177a9c, 0xb410ff61, 0xf20015ad];
        let empty = [0xe3b0c442, 0x98fc1c14, 0x9afbf4c8, 0x996fb924, 0x27ae41e4, 0x649b934c, 0xa495991b, 0x7852b855];
        for four in [Four::new(), Four::portable()] {
            let b = [block_of(&[b"abc"]), block_of(&[]), block_of(&[b"a", b"bc"]), block_of(&[b"", b""])];
            assert_eq!(four.digest(&b), [abc, empty, abc, empty]);
        }
    }

    proptest! {
        #[test]
        fn short_copies_copy_every_byte_and_no_other(src in proptest::collection::vec(any::<u8>(), 0..=64), at in 0usize..64) {
            let at = at.min(64 - src.len());
            let mut got = [0xAAu8; 64];
            copy_short(&mut got[at..at + src.len()], &src);
            let mut want = [0xAAu8; 64];
            want[at..at + src.len()].copy_from_slice(&src);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn four_at_a_time_are_sha256(keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=MAX_ONE_BLOCK), 4)) {
            let blocks: [[u8; 64]; 4] = std::array::from_fn(|i| block_of(&[&keys[i]]));
            let want: [[u32; 8]; 4] = std::array::from_fn(|i| reference(&keys[i]));
            prop_assert_eq!(Four::new().digest(&blocks), want);
            prop_assert_eq!(Four::portable().digest(&blocks), want);
            prop_assert_eq!(digest_one(&blocks[0]), want[0]);
        }
    }
}
