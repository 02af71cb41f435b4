//! The length of zlib's raw deflate stream at levels 4-9, without making the stream.
//!
//! ZIP-FIT needs `C(x ++ t)` for every candidate `x` and target `t`, and only its length.
//! zlib spends part of each pair on what the length does not need: copying the candidate's
//! stream state (about 260 KB) and writing the compressed bits. This module runs the same
//! algorithm as zlib 1.2's `deflate_slow` (levels 4-9: lazy matching, hash chains of 3-byte
//! strings, the same limits per level) on the bytes, counts the literal, length and distance
//! symbols, builds the block's Huffman trees as zlib does (its heap order, its tie-breaks, its
//! repair of codes over the length limit) and sums the block's bits, choosing stored, static or
//! dynamic as zlib does. The length is therefore zlib's, byte for byte, which the tests check
//! against zlib itself on random and real texts at every supported level.
//!
//! Scope: one block (inputs shorter than [`MAX_INPUT`] bytes, so zlib's symbol buffer never
//! fills and its window never slides) at levels 4 to 9, window 15, memLevel 8 and the default
//! strategy (CPython's `gzip.compress`). Everything else goes through zlib.
//!
//! A candidate is parsed once up to where zlib itself stops without more input (the last
//! `MIN_LOOKAHEAD` bytes wait for the target); each target continues from that point, and what
//! it changes (hash heads) is undone afterwards from a log, so a pair costs the target's bytes.
//!
//! The bytes after the input read as zeros, as a fresh zlib stream's window does (zlib zeroes
//! `WIN_INIT` bytes past its data); a match never extends past the input.

const WSIZE: usize = 1 << 15;
const HASH_BITS: u32 = 15; // memLevel 8 + 7
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: u32 = HASH_SIZE as u32 - 1;
const HASH_SHIFT: u32 = HASH_BITS.div_ceil(3); // (15 + 3 - 1) / 3 = 5
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const MIN_LOOKAHEAD: usize = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST: usize = WSIZE - MIN_LOOKAHEAD;
const TOO_FAR: usize = 4096;
/// Symbols per block at memLevel 8 (`lit_bufsize - 1`): below this, one block.
const LIT_BUFSIZE: usize = 1 << 14;
/// The longest input this module measures: every byte at most one symbol, so the block never
/// fills; and far below the window, so it never slides.
pub const MAX_INPUT: usize = LIT_BUFSIZE - 2;

const LITERALS: usize = 256;
const L_CODES: usize = LITERALS + 1 + 29;
const D_CODES: usize = 30;
const BL_CODES: usize = 19;
const HEAP_SIZE: usize = 2 * L_CODES + 1;
const END_BLOCK: usize = 256;

const EXTRA_LBITS: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const BASE_LENGTH: [u16; 29] =
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const EXTRA_DBITS: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const BASE_DIST: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const EXTRA_BLBITS: [u8; BL_CODES] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
const BL_ORDER: [usize; BL_CODES] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const REP_3_6: usize = 16;
const REPZ_3_10: usize = 17;
const REPZ_11_138: usize = 18;

/// zlib's settings for a level of `deflate_slow`: good_length, max_lazy, nice_length, max_chain.
fn config(level: i32) -> Option<(usize, usize, usize, usize)> {
    Some(match level {
        4 => (4, 4, 16, 16),
        5 => (8, 16, 32, 32),
        6 => (8, 16, 128, 128),
        7 => (8, 32, 128, 256),
        8 => (32, 128, 258, 1024),
        9 => (32, 258, 258, 4096),
        _ => return None,
    })
}

/// Whether this module measures `level` (else zlib does).
#[cfg(test)]
fn supports(level: i32) -> bool {
    config(level).is_some()
}

/// The length code (0..29) of a match length 3..=258.
fn length_code(len: usize) -> usize {
    if len == MAX_MATCH {
        return 28;
    }
    BASE_LENGTH[..28].partition_point(|&b| b as usize <= len) - 1
}

/// The distance code (0..30) of a distance 1..=32768.
fn dist_code(dist: usize) -> usize {
    BASE_DIST.partition_point(|&b| b as usize <= dist) - 1
}

/// Symbol counts of a block.
#[derive(Clone)]
struct Freqs {
    lit: [u32; L_CODES],
    dist: [u32; D_CODES],
}

/// The parse state between two bytes: what zlib's `deflate_state` holds for `deflate_slow`.
#[derive(Clone, Copy)]
struct Parse {
    strstart: usize,
    ins_h: u32,
    match_length: usize,
    match_start: usize,
    prev_length: usize,
    prev_match: usize,
    match_available: bool,
}

impl Freqs {
    const ZERO: Freqs = Freqs { lit: [0; L_CODES], dist: [0; D_CODES] };
}

impl Parse {
    /// A new stream's state (zlib's lm_init).
    const START: Parse = Parse {
        strstart: 0,
        ins_h: 0,
        match_length: MIN_MATCH - 1,
        match_start: 0,
        prev_length: MIN_MATCH - 1,
        prev_match: 0,
        match_available: false,
    };
}

/// A candidate, parsed up to where it waits for the target, and the scratch of its pairs.
pub struct Prefix {
    level: (usize, usize, usize, usize),
    /// The candidate's bytes, then the target's, then zeros.
    window: Vec<u8>,
    x_len: usize,
    head: Vec<u16>,
    prev: Vec<u16>,
    /// Hash heads a pair changed, with their values before it.
    undo: Vec<(u16, u16)>,
    parse: Parse,
    freqs: Freqs,
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix {
            level: (0, 0, 0, 0),
            window: Vec::new(),
            x_len: 0,
            head: vec![0; HASH_SIZE],
            prev: vec![0; WSIZE],
            undo: Vec::new(),
            parse: Parse::START,
            freqs: Freqs::ZERO,
        }
    }
}

impl Prefix {
    /// Parse `x` at `level` up to where zlib would wait for more input. None: not measured
    /// here (another level, or `x` too long).
    #[cfg(test)]
    pub fn new(level: i32, x: &[u8]) -> Option<Prefix> {
        let mut p = Prefix::default();
        p.load(level, x).then_some(p)
    }

    /// [`Prefix::new`] into this one's buffers; false when not measured here.
    pub fn load(&mut self, level: i32, x: &[u8]) -> bool {
        let Some(level) = config(level) else { return false };
        if x.len() > MAX_INPUT {
            return false;
        }
        self.level = level;
        self.x_len = x.len();
        self.window.clear();
        self.window.extend_from_slice(x);
        self.window.resize(x.len() + MAX_MATCH + 16, 0);
        self.head.fill(0);
        self.parse = Parse::START;
        self.freqs = Freqs::ZERO;
        let mut ctx =
            RunCtx { level: self.level, window: &self.window, head: &mut self.head, prev: &mut self.prev, undo: None };
        run(&mut ctx, &mut self.parse, &mut self.freqs, x.len(), false);
        true
    }

    /// The raw deflate length of `x ++ t`, or None when it is too long to measure here.
    pub fn len_with(&mut self, t: &[u8]) -> Option<u64> {
        let n = self.x_len + t.len();
        if n > MAX_INPUT {
            return None;
        }
        self.window.truncate(self.x_len);
        self.window.extend_from_slice(t);
        self.window.resize(n + MAX_MATCH + 16, 0);
        let (mut parse, mut freqs) = (self.parse, self.freqs.clone());
        self.undo.clear();
        run(
            &mut RunCtx {
                level: self.level,
                window: &self.window,
                head: &mut self.head,
                prev: &mut self.prev,
                undo: Some(&mut self.undo),
            },
            &mut parse,
            &mut freqs,
            n,
            true,
        );
        for &(h, old) in self.undo.iter().rev() {
            self.head[h as usize] = old;
        }
        Some(block_bytes(&mut freqs, n))
    }
}

struct RunCtx<'a> {
    level: (usize, usize, usize, usize),
    window: &'a [u8],
    head: &'a mut [u16],
    prev: &'a mut [u16],
    undo: Option<&'a mut Vec<(u16, u16)>>,
}

impl RunCtx<'_> {
    /// zlib's INSERT_STRING: the hash of the 3 bytes at `pos` (rolled in from `ins_h`), the
    /// chain's previous head recorded for `pos`; returns that head.
    #[inline]
    fn insert(&mut self, ins_h: &mut u32, pos: usize) -> usize {
        *ins_h = ((*ins_h << HASH_SHIFT) ^ self.window[pos + MIN_MATCH - 1] as u32) & HASH_MASK;
        let h = *ins_h as usize;
        let old = self.head[h];
        self.prev[pos] = old;
        if let Some(u) = self.undo.as_deref_mut() {
            u.push((h as u16, old));
        }
        self.head[h] = pos as u16;
        old as usize
    }

    /// zlib's longest_match: the longest match at `strstart` along the chain from `cur`.
    fn longest_match(&self, p: &mut Parse, mut cur: usize, lookahead: usize) -> usize {
        let (good, _, nice, chain) = self.level;
        let mut chain_length = chain;
        let w = self.window;
        let s = p.strstart;
        let mut best_len = p.prev_length;
        let nice_match = nice.min(lookahead);
        let limit = s.saturating_sub(MAX_DIST);
        if p.prev_length >= good {
            chain_length >>= 2;
        }
        // Every index below is under s + MAX_MATCH (cur < s, best_len <= MAX_MATCH), and the
        // window holds MAX_MATCH + 16 bytes past its data; `prev` has WSIZE entries and every
        // position is below MAX_INPUT < WSIZE.
        assert!(s + MAX_MATCH + 2 <= w.len() && s < self.prev.len());
        // zlib compares bytes best_len - 1 and best_len, then 0 and 1: two bytes at a time here.
        let pair = |i: usize| -> u16 {
            // SAFETY: i + 1 < s + MAX_MATCH + 2 <= w.len() (see above).
            unsafe { u16::from_le_bytes([*w.get_unchecked(i), *w.get_unchecked(i + 1)]) }
        };
        let scan_start = pair(s);
        let mut scan_end = pair(s + best_len - 1);
        loop {
            if pair(cur + best_len - 1) == scan_end && pair(cur) == scan_start {
                // Bytes 0 and 1 are equal, byte 2 is too (the same hash): count from 3, at
                // most MAX_MATCH.
                let len = common_prefix(&w[s..s + MAX_MATCH], &w[cur..cur + MAX_MATCH], 3);
                if len > best_len {
                    p.match_start = cur;
                    best_len = len;
                    if len >= nice_match {
                        break;
                    }
                    scan_end = pair(s + best_len - 1);
                }
            }
            // SAFETY: cur < s < prev.len() (chains only hold earlier positions).
            cur = unsafe { *self.prev.get_unchecked(cur) } as usize;
            chain_length -= 1;
            if cur <= limit || chain_length == 0 {
                break;
            }
        }
        best_len.min(lookahead)
    }
}

/// The length of the common prefix of `a` and `b` (equal lengths), knowing the first `from`
/// bytes are equal.
#[inline]
fn common_prefix(a: &[u8], b: &[u8], from: usize) -> usize {
    let n = a.len();
    let mut i = from;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// zlib's deflate_slow over `window[strstart..end]`. Without `finish`, stops where zlib stops
/// for want of input (fewer than MIN_LOOKAHEAD bytes left); with it, runs to the end and
/// tallies the pending literal.
fn run(c: &mut RunCtx, p: &mut Parse, f: &mut Freqs, end: usize, finish: bool) {
    let max_lazy = c.level.1;
    if p.strstart == 0 && end - p.strstart >= if finish { MIN_MATCH } else { MIN_LOOKAHEAD } {
        // zlib's fill_window, once it has input: the hash of the first two bytes.
        p.ins_h = (((c.window[0] as u32) << HASH_SHIFT) ^ c.window[1] as u32) & HASH_MASK;
    }
    loop {
        let lookahead = end - p.strstart;
        if lookahead < MIN_LOOKAHEAD && !finish {
            return;
        }
        if lookahead == 0 {
            break;
        }
        let mut hash_head = 0;
        if lookahead >= MIN_MATCH {
            hash_head = c.insert(&mut p.ins_h, p.strstart);
        }
        p.prev_length = p.match_length;
        p.prev_match = p.match_start;
        p.match_length = MIN_MATCH - 1;
        if hash_head != 0 && p.prev_length < max_lazy && p.strstart - hash_head <= MAX_DIST {
            p.match_length = c.longest_match(p, hash_head, lookahead);
            if p.match_length <= 5 && p.match_length == MIN_MATCH && p.strstart - p.match_start > TOO_FAR {
                p.match_length = MIN_MATCH - 1;
            }
        }
        if p.prev_length >= MIN_MATCH && p.match_length <= p.prev_length {
            let max_insert = p.strstart + lookahead - MIN_MATCH;
            let dist = p.strstart - 1 - p.prev_match;
            f.lit[LITERALS + 1 + length_code(p.prev_length)] += 1;
            f.dist[dist_code(dist)] += 1;
            // Insert every string of the match (the first two are in already).
            let mut left = p.prev_length - 2;
            let mut s = p.strstart;
            loop {
                s += 1;
                if s <= max_insert {
                    c.insert(&mut p.ins_h, s);
                }
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            p.strstart = s + 1;
            p.match_available = false;
            p.match_length = MIN_MATCH - 1;
        } else if p.match_available {
            f.lit[c.window[p.strstart - 1] as usize] += 1;
            p.strstart += 1;
        } else {
            p.match_available = true;
            p.strstart += 1;
        }
    }
    if p.match_available {
        f.lit[c.window[p.strstart - 1] as usize] += 1;
        p.match_available = false;
    }
}

/// One Huffman tree's working arrays (zlib's ct_data: freq, and dad that becomes len).
struct Tree {
    freq: [u32; HEAP_SIZE],
    dad: [u16; HEAP_SIZE],
    len: [u16; HEAP_SIZE],
    max_code: usize,
}

impl Tree {
    fn new(freqs: &[u32]) -> Tree {
        let mut t = Tree { freq: [0; HEAP_SIZE], dad: [0; HEAP_SIZE], len: [0; HEAP_SIZE], max_code: 0 };
        t.freq[..freqs.len()].copy_from_slice(freqs);
        t
    }
}

/// Block-wide bit counts (zlib's opt_len and static_len) and the heap.
struct Block {
    opt_len: u64,
    static_len: u64,
    heap: [usize; HEAP_SIZE],
    heap_len: usize,
    heap_max: usize,
    depth: [u8; HEAP_SIZE],
    bl_count: [u16; 16],
}

fn static_lit_len(n: usize) -> u64 {
    match n {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}

impl Block {
    /// zlib's `smaller`: by frequency, then by depth; as one key, (freq, depth).
    #[inline]
    fn key(t: &Tree, depth: &[u8; HEAP_SIZE], n: usize) -> u64 {
        // SAFETY: nodes are below HEAP_SIZE, the length of both arrays.
        unsafe { ((*t.freq.get_unchecked(n) as u64) << 8) | *depth.get_unchecked(n) as u64 }
    }

    fn pqdownheap(&mut self, t: &Tree, mut k: usize) {
        let heap = &mut self.heap;
        let v = heap[k];
        let kv = Self::key(t, &self.depth, v);
        let mut j = k << 1;
        while j <= self.heap_len {
            // SAFETY: j + 1 <= heap_len < HEAP_SIZE where it is read.
            let (mut hj, mut kj) =
                unsafe { (*heap.get_unchecked(j), Self::key(t, &self.depth, *heap.get_unchecked(j))) };
            if j < self.heap_len {
                let h1 = unsafe { *heap.get_unchecked(j + 1) };
                let k1 = Self::key(t, &self.depth, h1);
                if k1 <= kj {
                    (hj, kj) = (h1, k1);
                    j += 1;
                }
            }
            if kv <= kj {
                break;
            }
            heap[k] = hj;
            k = j;
            j <<= 1;
        }
        heap[k] = v;
    }

    /// zlib's build_tree and gen_bitlen: code lengths (in `t.len`), and the bits added to
    /// opt_len (and static_len, with `stat`: the static code lengths of a tree that has one).
    fn build_tree(
        &mut self,
        t: &mut Tree,
        elems: usize,
        stat: Option<&dyn Fn(usize) -> u64>,
        extra: &[u8],
        base: usize,
        max_length: usize,
    ) {
        let mut max_code: isize = -1;
        self.heap_len = 0;
        self.heap_max = HEAP_SIZE;
        for n in 0..elems {
            if t.freq[n] != 0 {
                self.heap_len += 1;
                self.heap[self.heap_len] = n;
                max_code = n as isize;
                self.depth[n] = 0;
            } else {
                t.len[n] = 0;
            }
        }
        // At least two codes of non-zero frequency.
        while self.heap_len < 2 {
            let node = if max_code < 2 {
                max_code += 1;
                max_code as usize
            } else {
                0
            };
            self.heap_len += 1;
            self.heap[self.heap_len] = node;
            t.freq[node] = 1;
            self.depth[node] = 0;
            self.opt_len = self.opt_len.wrapping_sub(1);
            if let Some(s) = stat {
                self.static_len = self.static_len.wrapping_sub(s(node));
            }
        }
        t.max_code = max_code as usize;
        for n in (1..=self.heap_len / 2).rev() {
            self.pqdownheap(t, n);
        }
        let mut node = elems;
        loop {
            let n = self.heap[1];
            self.heap[1] = self.heap[self.heap_len];
            self.heap_len -= 1;
            self.pqdownheap(t, 1);
            let m = self.heap[1];
            self.heap_max -= 1;
            self.heap[self.heap_max] = n;
            self.heap_max -= 1;
            self.heap[self.heap_max] = m;
            t.freq[node] = t.freq[n] + t.freq[m];
            self.depth[node] = self.depth[n].max(self.depth[m]) + 1;
            t.dad[n] = node as u16;
            t.dad[m] = node as u16;
            self.heap[1] = node;
            node += 1;
            self.pqdownheap(t, 1);
            if self.heap_len < 2 {
                break;
            }
        }
        self.heap_max -= 1;
        self.heap[self.heap_max] = self.heap[1];
        self.gen_bitlen(t, stat, extra, base, max_length);
    }

    fn gen_bitlen(
        &mut self,
        t: &mut Tree,
        stat: Option<&dyn Fn(usize) -> u64>,
        extra: &[u8],
        base: usize,
        max_length: usize,
    ) {
        self.bl_count = [0; 16];
        t.len[self.heap[self.heap_max]] = 0;
        let mut overflow = 0i32;
        let mut h = self.heap_max + 1;
        while h < HEAP_SIZE {
            let n = self.heap[h];
            let mut bits = t.len[t.dad[n] as usize] as usize + 1;
            if bits > max_length {
                bits = max_length;
                overflow += 1;
            }
            t.len[n] = bits as u16;
            h += 1;
            if n > t.max_code {
                continue;
            }
            self.bl_count[bits] += 1;
            let xbits = if n >= base { extra[n - base] as u64 } else { 0 };
            let f = t.freq[n] as u64;
            self.opt_len = self.opt_len.wrapping_add(f * (bits as u64 + xbits));
            if let Some(s) = stat {
                self.static_len = self.static_len.wrapping_add(f * (s(n) + xbits));
            }
        }
        if overflow == 0 {
            return;
        }
        loop {
            let mut bits = max_length - 1;
            while self.bl_count[bits] == 0 {
                bits -= 1;
            }
            self.bl_count[bits] -= 1;
            self.bl_count[bits + 1] += 2;
            self.bl_count[max_length] -= 1;
            overflow -= 2;
            if overflow <= 0 {
                break;
            }
        }
        let mut h = HEAP_SIZE;
        for bits in (1..=max_length).rev() {
            let mut n = self.bl_count[bits];
            while n != 0 {
                h -= 1;
                let m = self.heap[h];
                if m > t.max_code {
                    continue;
                }
                if t.len[m] as usize != bits {
                    self.opt_len =
                        self.opt_len.wrapping_add(((bits as i64 - t.len[m] as i64) * t.freq[m] as i64) as u64);
                    t.len[m] = bits as u16;
                }
                n -= 1;
            }
        }
    }
}

/// zlib's scan_tree: the code-length codes' frequencies for sending `t`'s lengths.
fn scan_tree(t: &mut Tree, bl: &mut [u32]) {
    let max_code = t.max_code;
    let mut prevlen: i32 = -1;
    let mut nextlen = t.len[0] as i32;
    let mut count = 0;
    let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };
    t.len[max_code + 1] = 0xffff;
    for n in 0..=max_code {
        let curlen = nextlen;
        nextlen = t.len[n + 1] as i32;
        count += 1;
        if count < max_count && curlen == nextlen {
            continue;
        } else if count < min_count {
            bl[curlen as usize] += count;
        } else if curlen != 0 {
            if curlen != prevlen {
                bl[curlen as usize] += 1;
            }
            bl[REP_3_6] += 1;
        } else if count <= 10 {
            bl[REPZ_3_10] += 1;
        } else {
            bl[REPZ_11_138] += 1;
        }
        count = 0;
        prevlen = curlen;
        (max_count, min_count) = if nextlen == 0 {
            (138, 3)
        } else if curlen == nextlen {
            (6, 3)
        } else {
            (7, 4)
        };
    }
}

/// zlib's _tr_flush_block for the last (and only) block of `stored_len` input bytes with these
/// symbols, then bi_windup: the raw deflate stream's length in bytes.
fn block_bytes(f: &mut Freqs, stored_len: usize) -> u64 {
    f.lit[END_BLOCK] += 1;
    let mut b = Block {
        opt_len: 0,
        static_len: 0,
        heap: [0; HEAP_SIZE],
        heap_len: 0,
        heap_max: 0,
        depth: [0; HEAP_SIZE],
        bl_count: [0; 16],
    };
    let mut lt = Tree::new(&f.lit);
    let mut dt = Tree::new(&f.dist);
    b.build_tree(&mut lt, L_CODES, Some(&static_lit_len), &EXTRA_LBITS, LITERALS + 1, 15);
    b.build_tree(&mut dt, D_CODES, Some(&|_| 5), &EXTRA_DBITS, 0, 15);
    let mut bl_freq = [0u32; BL_CODES];
    scan_tree(&mut lt, &mut bl_freq);
    scan_tree(&mut dt, &mut bl_freq);
    let mut blt = Tree::new(&bl_freq);
    b.build_tree(&mut blt, BL_CODES, None, &EXTRA_BLBITS, 0, 7);
    let mut max_blindex = BL_CODES - 1;
    while max_blindex >= 3 && blt.len[BL_ORDER[max_blindex]] == 0 {
        max_blindex -= 1;
    }
    b.opt_len = b.opt_len.wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);
    let opt_lenb = (b.opt_len.wrapping_add(3 + 7)) >> 3;
    let static_lenb = (b.static_len.wrapping_add(3 + 7)) >> 3;
    let best = opt_lenb.min(static_lenb);
    if stored_len as u64 + 4 <= best {
        // 3 header bits, padded to a byte, LEN and NLEN, the bytes.
        1 + 4 + stored_len as u64
    } else if static_lenb <= opt_lenb {
        (3 + b.static_len).div_ceil(8)
    } else {
        (3 + b.opt_len).div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zlib's own raw deflate length at `level` (window 15, memLevel 8): the system zlib.
    fn zlib_len(level: i32, data: &[u8]) -> u64 {
        crate::score::zipfit::zlib_raw_len(level, data)
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Text-like bytes with repeats (words from a small vocabulary), or noise, or runs.
    fn sample(seed: u64, n: usize, kind: u64) -> Vec<u8> {
        let mut r = rng(seed);
        let words = [
            "the", "of", "deflate", "zlib", "match", "window", "lazy", "hash", "chain", "a", "x", "(", ")", "=", "\n",
            "    ",
        ];
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            match kind % 4 {
                0 => {
                    v.extend_from_slice(words[(r() % words.len() as u64) as usize].as_bytes());
                    v.push(b' ');
                }
                1 => v.push((r() % 256) as u8),
                2 => v.extend(std::iter::repeat_n(b"ab"[(r() % 2) as usize], (r() % 300) as usize)),
                _ => v.push(b"acgt"[(r() % 4) as usize]),
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn the_length_is_zlibs_at_every_level_on_many_inputs() {
        let mut checked = 0;
        for level in 4..=9 {
            for seed in 0..40u64 {
                let kind = seed % 4;
                let x = sample(seed, (seed as usize * 97) % 3000, kind);
                let mut p = Prefix::new(level, &x).unwrap();
                for j in 0..4u64 {
                    let t = sample(seed * 31 + j, ((j as usize + 1) * 611 + seed as usize * 13) % 4000, kind + j);
                    let mut cat = x.clone();
                    cat.extend_from_slice(&t);
                    assert_eq!(
                        p.len_with(&t),
                        Some(zlib_len(level, &cat)),
                        "level {level} seed {seed} target {j}: {} + {} bytes",
                        x.len(),
                        t.len()
                    );
                    checked += 1;
                }
                // Pairs do not disturb each other: the first again gives the same length.
                let t = sample(seed * 31, 611, kind);
                let mut cat = x.clone();
                cat.extend_from_slice(&t);
                assert_eq!(p.len_with(&t), Some(zlib_len(level, &cat)));
            }
        }
        assert!(checked > 900);
    }

    #[test]
    fn edges_empty_tiny_and_the_longest() {
        for level in [4, 6, 9] {
            for (x, t) in [
                (&b""[..], &b""[..]),
                (b"a", b""),
                (b"", b"ab"),
                (b"abc", b"abcabcabc"),
                (b"aaaa", b"aaaaaaaaaaaaaaaa"),
            ] {
                let mut cat = x.to_vec();
                cat.extend_from_slice(t);
                assert_eq!(Prefix::new(level, x).unwrap().len_with(t), Some(zlib_len(level, &cat)), "{x:?} {t:?}");
            }
            let x = sample(7, MAX_INPUT - 100, 0);
            let t = sample(8, 100, 0);
            let mut cat = x.clone();
            cat.extend_from_slice(&t);
            assert_eq!(Prefix::new(level, &x).unwrap().len_with(&t), Some(zlib_len(level, &cat)));
            assert_eq!(
                Prefix::new(level, &x).unwrap().len_with(&t[..99].iter().chain(&[0u8, 1]).copied().collect::<Vec<_>>()),
                None
            );
        }
        assert!(Prefix::new(6, &vec![0; MAX_INPUT + 1]).is_none());
        assert!(Prefix::new(1, b"x").is_none() && !supports(3) && supports(6));
    }

    #[test]
    fn code_tables_are_rfc_1951s() {
        assert_eq!(
            (length_code(3), length_code(10), length_code(11), length_code(12), length_code(257), length_code(258)),
            (0, 7, 8, 8, 27, 28)
        );
        assert_eq!(
            (dist_code(1), dist_code(4), dist_code(5), dist_code(6), dist_code(7), dist_code(32768)),
            (0, 3, 4, 4, 5, 29)
        );
    }
}
