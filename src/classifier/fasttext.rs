//! fastText 0.9 supervised models: the `.bin` / `.ftz` file format, the dictionary (how a line
//! of text becomes rows of the input matrix) and prediction, giving the numbers fastText's own
//! `predict(text, k=-1, threshold=0.0)` gives.
//!
//! Written from fastText's sources (read, not copied), and checked against the Python bindings'
//! output on models of every kind (`fixtures/classifier/`, `tests/classifier.rs`). What has to
//! be exact for that:
//!
//! - the string hash is FNV-1a over bytes sign-extended to 32 bits, and word n-grams chain the
//!   sign-extended word hashes with 116049371, modulo the bucket count;
//! - a line ends with the `</s>` token (fastText reads the newline as it), whose row takes part in
//!   every prediction; a literal `</s>` in the text ends the line there;
//! - the hidden vector is the f32 sum of the rows in order, times `1/n` rounded to f32;
//! - softmax uses double-precision `exp`; one-vs-all and negative sampling the 513-entry sigmoid
//!   table; hierarchical softmax a depth-first search over the Huffman tree of the label counts
//!   with exact `expf`, pruned below probability 1e-5;
//! - a score is `ln(p + 1e-5)` rounded to f32, a probability `exp(score)`;
//! - labels of equal score come out in the order libstdc++'s heap algorithms leave them.
//!
//! Reading checks every size a header claims against the bytes the file has before allocating
//! it, and every index the model can produce against its matrices, so a damaged, truncated or
//! foreign file is an error naming the file, never a panic or a huge allocation.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const MAGIC: i32 = 793_712_314;
pub const VERSION: i32 = 12;
/// The token a line's end becomes.
pub const EOS: &[u8] = b"</s>";
/// The prefix that marks a label (fastText's default, and the one a loaded model uses).
pub const LABEL_PREFIX: &str = "__label__";

/// fastText's supervised losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Hierarchical softmax over a Huffman tree of the labels.
    Hs,
    /// Negative sampling.
    Ns,
    Softmax,
    /// One-vs-all: an independent sigmoid per label.
    Ova,
}

impl Loss {
    fn code(self) -> i32 {
        match self {
            Loss::Hs => 1,
            Loss::Ns => 2,
            Loss::Softmax => 3,
            Loss::Ova => 4,
        }
    }

    fn from_code(c: i32) -> Option<Loss> {
        Some(match c {
            1 => Loss::Hs,
            2 => Loss::Ns,
            3 => Loss::Softmax,
            4 => Loss::Ova,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Loss::Hs => "hs",
            Loss::Ns => "ns",
            Loss::Softmax => "softmax",
            Loss::Ova => "ova",
        }
    }
}

/// fastText's supervised model kind in the file's `model` field.
const MODEL_SUP: i32 = 3;

/// The hyperparameters a model file keeps (fastText's `Args`, as saved).
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub dim: i32,
    pub ws: i32,
    pub epoch: i32,
    pub min_count: i32,
    pub neg: i32,
    pub word_ngrams: i32,
    pub loss: Loss,
    pub bucket: i32,
    pub minn: i32,
    pub maxn: i32,
    pub lr_update_rate: i32,
    pub t: f64,
}

/// fastText's string hash: FNV-1a over bytes sign-extended to 32 bits.
pub fn hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// fastText's whitespace: what separates tokens (reading and training alike).
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

/// What a newline in a document becomes. fastText reads one line: the Python bindings refuse a
/// newline and DCLM replaces them by spaces before classifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Newlines {
    /// A space: the document is one line (DCLM's way).
    #[default]
    Space,
    /// fastText's end-of-line token `</s>`, the whole document still one prediction.
    Eos,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub word: Box<[u8]>,
    pub count: i64,
    pub label: bool,
}

/// The vocabulary and how a line becomes input rows.
#[derive(Debug, Clone)]
pub struct Dictionary {
    pub entries: Vec<Entry>,
    pub nwords: usize,
    pub nlabels: usize,
    pub ntokens: i64,
    /// A quantized model's kept n-gram buckets: bucket -> compact index (None: not pruned).
    pub prune: Option<HashMap<i32, i32>>,
    /// Open addressing over [`hash`]: entry index or -1.
    slots: Vec<i32>,
    bucket: u32,
    minn: usize,
    maxn: usize,
    word_ngrams: usize,
}

impl Dictionary {
    pub fn new(entries: Vec<Entry>, ntokens: i64, prune: Option<HashMap<i32, i32>>, args: &Args) -> Dictionary {
        let nwords = entries.iter().filter(|e| !e.label).count();
        let nlabels = entries.len() - nwords;
        let size = (entries.len() * 2).next_power_of_two().max(16);
        let mut d = Dictionary {
            entries,
            nwords,
            nlabels,
            ntokens,
            prune,
            slots: vec![-1; size],
            bucket: args.bucket.max(0) as u32,
            minn: args.minn.max(0) as usize,
            maxn: args.maxn.max(0) as usize,
            word_ngrams: args.word_ngrams.max(1) as usize,
        };
        // A word twice (only in a damaged file) finds its later entry, as in fastText.
        for i in 0..d.entries.len() {
            let h = hash(&d.entries[i].word);
            let mut s = h as usize & (size - 1);
            while d.slots[s] >= 0 && d.entries[d.slots[s] as usize].word != d.entries[i].word {
                s = (s + 1) & (size - 1);
            }
            d.slots[s] = i as i32;
        }
        d
    }

    /// The entry of `word` (whose [`hash`] is `h`), if any.
    pub fn find(&self, word: &[u8], h: u32) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut s = h as usize & mask;
        loop {
            let id = self.slots[s];
            if id < 0 {
                return None;
            }
            if &*self.entries[id as usize].word == word {
                return Some(id as usize);
            }
            s = (s + 1) & mask;
        }
    }

    /// The label `i` (0-based among labels) as the file has it.
    pub fn label(&self, i: usize) -> &[u8] {
        &self.entries[self.nwords + i].word
    }

    /// Push an n-gram bucket's row (through the pruning map of a quantized model).
    fn push_bucket(&self, id: i32, out: &mut Vec<i32>) {
        let id = match &self.prune {
            None => id,
            Some(map) => match map.get(&id) {
                Some(&j) => j,
                None => return,
            },
        };
        out.push(self.nwords as i32 + id);
    }

    /// The character n-grams of `<word>` (minn..=maxn characters, never a lone `<` or `>`).
    fn subwords(&self, word: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<i32>) {
        if self.maxn == 0 {
            return;
        }
        scratch.clear();
        scratch.push(b'<');
        scratch.extend_from_slice(word);
        scratch.push(b'>');
        let w = &scratch[..];
        for i in 0..w.len() {
            if w[i] & 0xC0 == 0x80 {
                continue;
            }
            let (mut j, mut n) = (i, 1usize);
            while j < w.len() && n <= self.maxn {
                j += 1;
                while j < w.len() && w[j] & 0xC0 == 0x80 {
                    j += 1;
                }
                if n >= self.minn && !(n == 1 && (i == 0 || j == w.len())) {
                    self.push_bucket((hash(&w[i..j]) % self.bucket) as i32, out);
                }
                n += 1;
            }
        }
    }

    /// The input rows of one document, as fastText's `getLine` gives them for the line `text`
    /// followed by its newline; labels in the text are left out. `hashes` and `scratch` are
    /// reused buffers.
    pub fn line(
        &self,
        text: &[u8],
        newlines: Newlines,
        rows: &mut Vec<i32>,
        hashes: &mut Vec<i32>,
        scratch: &mut Vec<u8>,
    ) {
        rows.clear();
        hashes.clear();
        let mut i = 0;
        loop {
            // The next token: a word, or `</s>` for a newline (eos mode) or the end.
            while i < text.len() && is_space(text[i]) && !(text[i] == b'\n' && newlines == Newlines::Eos) {
                i += 1;
            }
            let (token, end_of_text) = if i >= text.len() {
                (EOS, true)
            } else if text[i] == b'\n' {
                i += 1;
                (EOS, false)
            } else {
                let start = i;
                while i < text.len() && !is_space(text[i]) {
                    i += 1;
                }
                (&text[start..i], false)
            };
            if self.add_token(token, rows, hashes, scratch) && newlines == Newlines::Space || end_of_text {
                break;
            }
        }
        self.word_ngrams(hashes, rows);
    }

    /// Add one token's rows; true if it is `</s>` (which ends a line).
    fn add_token(&self, token: &[u8], rows: &mut Vec<i32>, hashes: &mut Vec<i32>, scratch: &mut Vec<u8>) -> bool {
        let h = hash(token);
        let id = self.find(token, h);
        let label = match id {
            Some(id) => self.entries[id].label,
            None => token.starts_with(LABEL_PREFIX.as_bytes()),
        };
        let eos = token == EOS;
        if !label {
            match id {
                None if !eos => self.subwords(token, scratch, rows),
                None => {}
                Some(id) => {
                    rows.push(id as i32);
                    if !eos {
                        self.subwords(token, scratch, rows);
                    }
                }
            }
            hashes.push(h as i32);
        }
        eos
    }

    /// Word n-grams of 2..=word_ngrams words, after the words.
    fn word_ngrams(&self, hashes: &[i32], rows: &mut Vec<i32>) {
        if self.word_ngrams < 2 {
            return;
        }
        for i in 0..hashes.len() {
            let mut h = hashes[i] as i64 as u64;
            for &next in hashes.iter().take((i + self.word_ngrams).min(hashes.len())).skip(i + 1) {
                h = h.wrapping_mul(116_049_371).wrapping_add(next as i64 as u64);
                self.push_bucket((h % self.bucket as u64) as i32, rows);
            }
        }
    }
}

/// A product quantizer (fastText's `ProductQuantizer`): 256 centroids per sub-vector.
#[derive(Debug, Clone)]
pub struct Pq {
    dim: usize,
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

impl Pq {
    /// Centroid `c` of sub-quantizer `s`.
    fn centroid(&self, s: usize, c: u8) -> &[f32] {
        let c = c as usize;
        if s == self.nsubq - 1 {
            let at = s * 256 * self.dsub + c * self.lastdsub;
            &self.centroids[at..at + self.lastdsub]
        } else {
            let at = (s * 256 + c) * self.dsub;
            &self.centroids[at..at + self.dsub]
        }
    }
}

/// A quantized matrix (`.ftz`): per row one code per sub-quantizer and, with `qnorm`, a
/// quantized norm.
#[derive(Debug, Clone)]
pub struct Quantized {
    m: usize,
    n: usize,
    codes: Vec<u8>,
    pq: Pq,
    norms: Option<(Vec<u8>, Pq)>,
}

impl Quantized {
    fn norm(&self, t: usize) -> f32 {
        match &self.norms {
            Some((codes, npq)) => npq.centroid(0, codes[t])[0],
            None => 1.0,
        }
    }
}

/// An input or output matrix.
#[derive(Debug, Clone)]
pub enum Matrix {
    Dense { m: usize, n: usize, data: Vec<f32> },
    Quantized(Quantized),
}

impl Matrix {
    pub fn rows(&self) -> usize {
        match self {
            Matrix::Dense { m, .. } => *m,
            Matrix::Quantized(q) => q.m,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Matrix::Dense { n, .. } => *n,
            Matrix::Quantized(q) => q.n,
        }
    }

    /// `x += row t` (fastText's `addRowToVector`).
    fn add_row(&self, x: &mut [f32], t: usize) {
        match self {
            Matrix::Dense { n, data, .. } => {
                for (a, b) in x.iter_mut().zip(&data[t * n..(t + 1) * n]) {
                    *a += *b;
                }
            }
            Matrix::Quantized(q) => {
                let alpha = q.norm(t);
                let pq = &q.pq;
                for s in 0..pq.nsubq {
                    let c = pq.centroid(s, q.codes[t * pq.nsubq + s]);
                    for (a, b) in x[s * pq.dsub..].iter_mut().zip(c) {
                        *a += alpha * *b;
                    }
                }
            }
        }
    }

    /// `x += row r` for every r of `rows`, in order. The rows of a large model are scattered
    /// over hundreds of megabytes: a dense matrix fetches each row a few rows ahead, so that
    /// the sums wait on memory less.
    fn add_rows(&self, x: &mut [f32], rows: &[i32]) {
        const AHEAD: usize = 6;
        match self {
            Matrix::Dense { n, data, .. } => {
                for (i, &r) in rows.iter().enumerate() {
                    if let Some(&next) = rows.get(i + AHEAD) {
                        prefetch(data[next as usize * n..].as_ptr(), *n);
                    }
                    let row = &data[r as usize * n..(r as usize + 1) * n];
                    for (a, b) in x.iter_mut().zip(row) {
                        *a += *b;
                    }
                }
            }
            Matrix::Quantized(_) => {
                for &r in rows {
                    self.add_row(x, r as usize);
                }
            }
        }
    }

    /// `row t . v`, summed in order in f32 (fastText's `dotRow`).
    fn dot_row(&self, v: &[f32], t: usize) -> f32 {
        match self {
            Matrix::Dense { n, data, .. } => {
                let mut d = 0f32;
                for (a, b) in data[t * n..(t + 1) * n].iter().zip(v) {
                    d += a * b;
                }
                d
            }
            Matrix::Quantized(q) => {
                let pq = &q.pq;
                let mut d = 0f32;
                for s in 0..pq.nsubq {
                    let c = pq.centroid(s, q.codes[t * pq.nsubq + s]);
                    for (a, b) in c.iter().zip(&v[s * pq.dsub..]) {
                        d += a * b;
                    }
                }
                d * q.norm(t)
            }
        }
    }
}

/// Ask the cache for the `n` floats at `p` (a hint: no effect on results; prediction's and
/// training's row sums).
#[inline]
pub(crate) fn prefetch(p: *const f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    for k in (0..n).step_by(16) {
        // SAFETY: a prefetch reads nothing and never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(k).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, n);
}

/// A node of the hierarchical softmax's Huffman tree.
#[derive(Debug, Clone, Copy)]
struct Node {
    left: i32,
    right: i32,
}

/// fastText's sigmoid table: 513 values over [-8, 8].
pub struct SigmoidTable([f32; 513]);

impl SigmoidTable {
    pub(crate) fn new() -> SigmoidTable {
        let mut t = [0f32; 513];
        for (i, v) in t.iter_mut().enumerate() {
            let x = (i as i32 * 16) as f32 / 512f32 - 8f32;
            *v = (1.0f64 / (1.0f64 + (-x).exp() as f64)) as f32;
        }
        SigmoidTable(t)
    }

    pub(crate) fn get(&self, x: f32) -> f32 {
        if x < -8f32 {
            0.0
        } else if x > 8f32 {
            1.0
        } else {
            self.0[((x + 8f32) * 512f32 / 8f32 / 2f32) as i64 as usize]
        }
    }
}

/// `ln(x + 1e-5)`: the scores fastText ranks.
pub(crate) fn std_log(x: f32) -> f32 {
    ((x as f64) + 1e-5).ln() as f32
}

/// A fastText supervised model.
pub struct Model {
    pub args: Args,
    pub dict: Dictionary,
    pub input: Matrix,
    pub output: Matrix,
    sigmoid: SigmoidTable,
    /// Hierarchical softmax's tree (leaves are labels; internal node i uses output row i - nlabels).
    tree: Vec<Node>,
}

/// Per-thread buffers of prediction.
#[derive(Default)]
pub struct Scratch {
    pub rows: Vec<i32>,
    hashes: Vec<i32>,
    bytes: Vec<u8>,
    hidden: Vec<f32>,
    output: Vec<f32>,
    /// (score, label) pairs, as fastText's heap leaves them: best first.
    pub heap: Vec<(f32, i32)>,
}

/// libstdc++'s heap with fastText's `comparePairs` (a min-heap on the score): the exact moves,
/// since they decide the order of equal scores.
mod heap {
    fn comp(a: (f32, i32), b: (f32, i32)) -> bool {
        a.0 > b.0
    }

    fn push_up(v: &mut [(f32, i32)], mut hole: usize, top: usize, val: (f32, i32)) {
        while hole > top {
            let parent = (hole - 1) / 2;
            if !comp(v[parent], val) {
                break;
            }
            v[hole] = v[parent];
            hole = parent;
        }
        v[hole] = val;
    }

    pub fn push(v: &mut [(f32, i32)]) {
        let hole = v.len() - 1;
        let val = v[hole];
        push_up(v, hole, 0, val);
    }

    fn adjust(v: &mut [(f32, i32)], mut hole: usize, len: usize, val: (f32, i32)) {
        let top = hole;
        let mut second = hole;
        while second < len.saturating_sub(1) / 2 {
            second = 2 * (second + 1);
            if comp(v[second], v[second - 1]) {
                second -= 1;
            }
            v[hole] = v[second];
            hole = second;
        }
        if len.is_multiple_of(2) && len >= 2 && second == (len - 2) / 2 {
            second = 2 * (second + 1);
            v[hole] = v[second - 1];
            hole = second - 1;
        }
        push_up(v, hole, top, val);
    }

    /// Move the smallest to the end of `v`.
    pub fn pop(v: &mut [(f32, i32)]) {
        let last = v.len() - 1;
        if last == 0 {
            return;
        }
        let val = v[last];
        v[last] = v[0];
        adjust(v, 0, last, val);
    }

    pub fn sort(v: &mut [(f32, i32)]) {
        let mut len = v.len();
        while len > 1 {
            pop(&mut v[..len]);
            len -= 1;
        }
    }

    /// fastText's step for one candidate: push it, and drop the smallest past k.
    pub fn offer(v: &mut Vec<(f32, i32)>, k: usize, item: (f32, i32)) {
        v.push(item);
        push(v);
        if v.len() > k {
            pop(v);
            v.pop();
        }
    }
}

impl Model {
    pub fn nlabels(&self) -> usize {
        self.dict.nlabels
    }

    /// fastText's `predict(text, k=-1, threshold=0.0)`: every label's score (`ln(p + 1e-5)`,
    /// f32), best first, in `s.heap` (hierarchical softmax leaves out labels under 1e-5).
    pub fn predict(&self, text: &[u8], newlines: Newlines, s: &mut Scratch) -> Result<()> {
        self.dict.line(text, newlines, &mut s.rows, &mut s.hashes, &mut s.bytes);
        self.predict_rows(s)
    }

    /// [`Model::predict`] of the input rows already in `s.rows`.
    pub fn predict_rows(&self, s: &mut Scratch) -> Result<()> {
        s.heap.clear();
        if s.rows.is_empty() {
            return Ok(());
        }
        let dim = self.args.dim as usize;
        s.hidden.clear();
        s.hidden.resize(dim, 0.0);
        self.input.add_rows(&mut s.hidden, &s.rows);
        let inv = (1.0f64 / s.rows.len() as f64) as f32;
        for h in &mut s.hidden {
            *h *= inv;
        }
        let k = self.output.rows();
        if self.args.loss == Loss::Hs {
            let root = self.tree.len() - 1;
            self.dfs(k, root, 0.0, s);
        } else {
            s.output.clear();
            for i in 0..k {
                let d = self.output.dot_row(&s.hidden, i);
                if d.is_nan() {
                    return Err(Error::InvalidArgument("the classifier's output is NaN (a damaged model?)".into()));
                }
                s.output.push(d);
            }
            match self.args.loss {
                Loss::Softmax => {
                    let max = s.output.iter().fold(s.output[0], |m, &o| if o > m { o } else { m });
                    let mut z = 0f32;
                    for o in &mut s.output {
                        *o = ((*o - max) as f64).exp() as f32;
                        z += *o;
                    }
                    for o in &mut s.output {
                        *o /= z;
                    }
                }
                _ => {
                    for o in &mut s.output {
                        *o = self.sigmoid.get(*o);
                    }
                }
            }
            for i in 0..k {
                let o = s.output[i];
                if o < 0.0 {
                    continue;
                }
                let score = std_log(o);
                if s.heap.len() == k && score < s.heap[0].0 {
                    continue;
                }
                heap::offer(&mut s.heap, k, (score, i as i32));
            }
        }
        heap::sort(&mut s.heap);
        Ok(())
    }

    fn dfs(&self, k: usize, node: usize, score: f32, s: &mut Scratch) {
        if score < std_log(0.0) {
            return;
        }
        if s.heap.len() == k && score < s.heap[0].0 {
            return;
        }
        let n = self.tree[node];
        if n.left < 0 && n.right < 0 {
            heap::offer(&mut s.heap, k, (score, node as i32));
            return;
        }
        let f = self.output.dot_row(&s.hidden, node - self.dict.nlabels);
        if f.is_nan() {
            // fastText stops here; a NaN would rank nowhere sensible (a damaged model).
            return;
        }
        let f = (1.0f64 / (1f32 + (-f).exp()) as f64) as f32;
        self.dfs(k, n.left as usize, score + std_log((1.0f64 - f as f64) as f32), s);
        self.dfs(k, n.right as usize, score + std_log(f), s);
    }

    /// Read a `.bin` or `.ftz` model.
    pub fn load(path: &Path) -> Result<Model> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut r = Reader { inner: BufReader::with_capacity(1 << 20, file), left: len, path: path.to_path_buf() };
        Model::read(&mut r)
    }

    /// A model from the bytes of its file (`name` names it in errors).
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Model> {
        let mut r = Reader { inner: bytes, left: bytes.len() as u64, path: name.to_path_buf() };
        Model::read(&mut r)
    }

    fn read<R: Read>(r: &mut Reader<R>) -> Result<Model> {
        let bad = |r: &Reader<R>, m: String| Error::Model { path: r.path.clone(), message: m };
        if r.left < 8 {
            return Err(bad(r, "not a fastText model (too short)".into()));
        }
        let magic = r.i32()?;
        if magic != MAGIC {
            return Err(bad(r, "not a fastText model (wrong magic number)".into()));
        }
        let version = r.i32()?;
        if !(1..=VERSION).contains(&version) {
            return Err(bad(
                r,
                format!("fastText model format version {version}; syllabus reads versions up to {VERSION}"),
            ));
        }
        let (dim, ws, epoch, min_count, neg, word_ngrams, loss) =
            (r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?);
        let (model, bucket, minn, mut maxn, lr_update_rate, t) =
            (r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.f64()?);
        let loss = Loss::from_code(loss).ok_or_else(|| bad(r, format!("unknown loss {loss}")))?;
        if model != MODEL_SUP {
            return Err(bad(r, "a fastText word-vector model, not a supervised classifier".into()));
        }
        if version == 11 {
            maxn = 0;
        }
        if dim <= 0 || dim > 1 << 16 {
            return Err(bad(r, format!("dimension {dim} out of range")));
        }
        if bucket < 0 || ((word_ngrams > 1 || maxn > 0) && bucket == 0) || minn < 0 || !(0..=1 << 10).contains(&maxn) {
            return Err(bad(r, format!("bad n-gram settings: bucket {bucket}, minn {minn}, maxn {maxn}")));
        }
        let args = Args { dim, ws, epoch, min_count, neg, word_ngrams, loss, bucket, minn, maxn, lr_update_rate, t };

        let (size, nwords, nlabels) = (r.i32()?, r.i32()?, r.i32()?);
        let (ntokens, prune_size) = (r.i64()?, r.i64()?);
        if size < 0 || nwords < 0 || nlabels <= 0 || nwords as i64 + nlabels as i64 != size as i64 {
            return Err(bad(r, format!("bad dictionary sizes: {size} entries, {nwords} words, {nlabels} labels")));
        }
        // Each entry takes at least 10 bytes (a terminator, a count, a type).
        r.fits(size as u64, 10, "dictionary")?;
        let mut entries = Vec::with_capacity(size as usize);
        let mut word = Vec::new();
        for _ in 0..size {
            word.clear();
            loop {
                let b = r.u8()?;
                if b == 0 {
                    break;
                }
                word.push(b);
            }
            let count = r.i64()?;
            let label = match r.u8()? {
                0 => false,
                1 => true,
                t => return Err(bad(r, format!("bad dictionary entry type {t}"))),
            };
            entries.push(Entry { word: word.clone().into_boxed_slice(), count, label });
        }
        if let Some(e) = entries.iter().find(|e| !(0..HUGE_COUNT).contains(&e.count)) {
            return Err(bad(r, format!("bad count {} of {:?}", e.count, String::from_utf8_lossy(&e.word))));
        }
        if entries[..nwords as usize].iter().any(|e| e.label) || entries[nwords as usize..].iter().any(|e| !e.label) {
            return Err(bad(r, "dictionary entries out of order (words, then labels)".into()));
        }
        let prune = if prune_size >= 0 {
            r.fits(prune_size as u64, 8, "pruned n-gram table")?;
            let mut map = HashMap::with_capacity(prune_size as usize);
            for _ in 0..prune_size {
                let (k, v) = (r.i32()?, r.i32()?);
                if k < 0 || v < 0 {
                    return Err(bad(r, format!("bad pruned n-gram entry {k} -> {v}")));
                }
                map.insert(k, v);
            }
            Some(map)
        } else {
            None
        };
        let dict = Dictionary::new(entries, ntokens, prune, &args);

        let quant_input = r.u8()? != 0;
        if !quant_input && dict.prune.is_some() {
            return Err(bad(r, "a pruned dictionary with a dense input matrix".into()));
        }
        let input = if quant_input { r.quantized()? } else { r.dense()? };
        let qout = r.u8()? != 0;
        let output = if quant_input && qout { r.quantized()? } else { r.dense()? };
        if r.left != 0 {
            return Err(bad(r, format!("{} bytes after the output matrix", r.left)));
        }

        // Every row a line can ask for must exist.
        let buckets = match &dict.prune {
            None => bucket as usize,
            Some(map) => map.values().map(|&v| v as usize + 1).max().unwrap_or(0),
        };
        if input.cols() != dim as usize || input.rows() < dict.nwords + buckets {
            return Err(bad(
                r,
                format!(
                    "input matrix is {}x{}; the dictionary needs {}x{dim}",
                    input.rows(),
                    input.cols(),
                    dict.nwords + buckets
                ),
            ));
        }
        if output.cols() != dim as usize || output.rows() != dict.nlabels {
            return Err(bad(
                r,
                format!(
                    "output matrix is {}x{}; the model has {} labels of dimension {dim}",
                    output.rows(),
                    output.cols(),
                    dict.nlabels
                ),
            ));
        }
        Ok(Model::from_parts(args, dict, input, output))
    }

    /// Write the model as fastText writes a `.bin` (dense matrices only).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.check_dense()?;
        crate::sink::write_atomic_with(path, |f| {
            let mut w = BufWriter::with_capacity(1 << 20, f);
            self.write(&mut w)?;
            w.flush()
        })
    }

    /// The `.bin` file's bytes (dense matrices only).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check_dense()?;
        let mut out = Vec::new();
        self.write(&mut out).map_err(|e| Error::io("a classifier in memory", e))?;
        Ok(out)
    }

    /// What [`Model::write`] can write: dense matrices (a quantized model is read, not written).
    fn check_dense(&self) -> Result<()> {
        match (&self.input, &self.output) {
            (Matrix::Dense { .. }, Matrix::Dense { .. }) => Ok(()),
            _ => Err(Error::InvalidArgument("syllabus writes dense (.bin) models only".into())),
        }
    }

    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        write_head(w, &self.args, &self.dict)?;
        for m in [&self.input, &self.output] {
            if let Matrix::Dense { m, n, data } = m {
                write_matrix_head(w, *m, *n)?;
                write_floats(w, data)?;
            }
        }
        Ok(())
    }

    /// A model from its parts (training, and a file once read and checked).
    pub fn from_parts(args: Args, dict: Dictionary, input: Matrix, output: Matrix) -> Model {
        Model { tree: build_tree(&label_counts(&dict)), args, dict, input, output, sigmoid: SigmoidTable::new() }
    }
}

/// A `.bin` file's header and dictionary: everything before the two matrices.
pub(crate) fn write_head(w: &mut impl Write, a: &Args, d: &Dictionary) -> std::io::Result<()> {
    for v in [MAGIC, VERSION, a.dim, a.ws, a.epoch, a.min_count, a.neg, a.word_ngrams, a.loss.code(), MODEL_SUP] {
        w.write_all(&v.to_le_bytes())?;
    }
    for v in [a.bucket, a.minn, a.maxn, a.lr_update_rate] {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&a.t.to_le_bytes())?;
    for v in [d.entries.len() as i32, d.nwords as i32, d.nlabels as i32] {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&d.ntokens.to_le_bytes())?;
    w.write_all(&(-1i64).to_le_bytes())?;
    for e in &d.entries {
        w.write_all(&e.word)?;
        w.write_all(&[0])?;
        w.write_all(&e.count.to_le_bytes())?;
        w.write_all(&[e.label as u8])?;
    }
    Ok(())
}

/// A dense matrix's head (not quantized, m rows, n columns): [`MATRIX_HEAD`] bytes.
pub(crate) fn write_matrix_head(w: &mut impl Write, m: usize, n: usize) -> std::io::Result<()> {
    w.write_all(&[0])?;
    w.write_all(&(m as i64).to_le_bytes())?;
    w.write_all(&(n as i64).to_le_bytes())
}

/// Bytes of a dense matrix's head: the quantized flag, m and n.
pub(crate) const MATRIX_HEAD: u64 = 17;

/// The labels' counts, in the dictionary's order (what the Huffman tree is built from).
pub(crate) fn label_counts(dict: &Dictionary) -> Vec<i64> {
    dict.entries[dict.nwords..].iter().map(|e| e.count).collect()
}

/// Hierarchical softmax's path of every label: (output row, branch) from leaf to root, over
/// the Huffman tree of `counts` that prediction uses.
pub(crate) fn hs_paths(counts: &[i64]) -> Vec<Vec<(usize, bool)>> {
    let tree = build_tree(counts);
    let osz = counts.len();
    // Each node's parent and whether it is its parent's right child.
    let mut parent = vec![(-1i32, false); tree.len()];
    for (i, n) in tree.iter().enumerate() {
        if n.left >= 0 {
            parent[n.left as usize] = (i as i32, false);
            parent[n.right as usize] = (i as i32, true);
        }
    }
    (0..osz)
        .map(|l| {
            let (mut out, mut n) = (Vec::new(), l);
            while parent[n].0 >= 0 {
                out.push((parent[n].0 as usize - osz, parent[n].1));
                n = parent[n].0 as usize;
            }
            out
        })
        .collect()
}

/// `data` as little-endian f32s.
pub(crate) fn write_floats(w: &mut impl Write, data: &[f32]) -> std::io::Result<()> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: f32 has no padding and any byte is a valid u8; the slice covers `data` exactly.
        let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) };
        w.write_all(bytes)
    }
    #[cfg(not(target_endian = "little"))]
    {
        for v in data {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }
}

/// fastText's count of a tree node not built yet; every real count is below it.
const HUGE_COUNT: i64 = 1_000_000_000_000_000;

/// The Huffman tree of the label counts (each below [`HUGE_COUNT`]), as fastText builds it
/// (equal counts prefer the internal node); for one label, the label alone.
fn build_tree(counts: &[i64]) -> Vec<Node> {
    let osz = counts.len();
    let mut nodes = vec![Node { left: -1, right: -1 }; 2 * osz - 1];
    let mut count: Vec<i64> = vec![HUGE_COUNT; 2 * osz - 1];
    count[..osz].copy_from_slice(counts);
    let (mut leaf, mut node) = (osz as i64 - 1, osz);
    for i in osz..2 * osz - 1 {
        let mut mini = [0usize; 2];
        for m in &mut mini {
            if leaf >= 0 && count[leaf as usize] < count[node] {
                *m = leaf as usize;
                leaf -= 1;
            } else {
                *m = node;
                node += 1;
            }
        }
        nodes[i] = Node { left: mini[0] as i32, right: mini[1] as i32 };
        count[i] = count[mini[0]].saturating_add(count[mini[1]]);
    }
    nodes
}

/// A model file being read: every read is checked against the bytes left.
struct Reader<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if self.left < N as u64 {
            return Err(self.truncated());
        }
        self.inner.read_exact(&mut b).map_err(|e| Error::io(&self.path, e))?;
        self.left -= N as u64;
        Ok(b)
    }

    fn truncated(&self) -> Error {
        Error::Model { path: self.path.clone(), message: "truncated fastText model".into() }
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.bytes()?))
    }

    /// Check that `n` items of at least `each` bytes can be in what is left.
    fn fits(&self, n: u64, each: u64, what: &str) -> Result<()> {
        match n.checked_mul(each) {
            Some(b) if b <= self.left => Ok(()),
            _ => Err(Error::Model {
                path: self.path.clone(),
                message: format!("truncated fastText model: its {what} claims {n} items, more than the file holds"),
            }),
        }
    }

    fn raw(&mut self, n: usize) -> Result<Vec<u8>> {
        self.fits(n as u64, 1, "matrix")?;
        let mut v = vec![0u8; n];
        self.inner.read_exact(&mut v).map_err(|e| Error::io(&self.path, e))?;
        self.left -= n as u64;
        Ok(v)
    }

    fn floats(&mut self, n: u64) -> Result<Vec<f32>> {
        self.fits(n, 4, "matrix")?;
        let mut out = Vec::with_capacity(n as usize);
        let mut buf = vec![0u8; 4 << 16];
        let mut left = n as usize;
        while left > 0 {
            let take = left.min(1 << 16);
            self.inner.read_exact(&mut buf[..take * 4]).map_err(|e| Error::io(&self.path, e))?;
            out.extend(buf[..take * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            left -= take;
        }
        self.left -= n * 4;
        Ok(out)
    }

    fn shape(&mut self) -> Result<(usize, usize)> {
        let (m, n) = (self.i64()?, self.i64()?);
        if m < 0 || n < 0 {
            return Err(Error::Model { path: self.path.clone(), message: format!("bad matrix shape {m}x{n}") });
        }
        Ok((m as usize, n as usize))
    }

    fn dense(&mut self) -> Result<Matrix> {
        let (m, n) = self.shape()?;
        let cells = (m as u64).checked_mul(n as u64).ok_or_else(|| self.truncated())?;
        Ok(Matrix::Dense { m, n, data: self.floats(cells)? })
    }

    fn pq(&mut self) -> Result<Pq> {
        let (dim, nsubq, dsub, lastdsub) = (self.i32()?, self.i32()?, self.i32()?, self.i32()?);
        let ok = dim > 0
            && nsubq > 0
            && dsub > 0
            && lastdsub > 0
            && lastdsub <= dsub
            && (nsubq - 1) as i64 * dsub as i64 + lastdsub as i64 == dim as i64;
        if !ok {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!(
                    "bad product quantizer: dim {dim}, {nsubq} sub-quantizers of {dsub} (last {lastdsub})"
                ),
            });
        }
        let centroids = self.floats(dim as u64 * 256)?;
        Ok(Pq { dim: dim as usize, nsubq: nsubq as usize, dsub: dsub as usize, lastdsub: lastdsub as usize, centroids })
    }

    fn quantized(&mut self) -> Result<Matrix> {
        let qnorm = self.u8()? != 0;
        let (m, n) = self.shape()?;
        let codesize = self.i32()?;
        let pq_err = |r: &Reader<R>, what: String| Error::Model { path: r.path.clone(), message: what };
        if codesize < 0 {
            return Err(pq_err(self, format!("bad code size {codesize}")));
        }
        let codes = self.raw(codesize as usize)?;
        let pq = self.pq()?;
        if pq.dim != n || (m as u64).checked_mul(pq.nsubq as u64) != Some(codesize as u64) {
            return Err(pq_err(
                self,
                format!("quantized matrix {m}x{n} with {codesize} codes of a {}-dimensional quantizer", pq.dim),
            ));
        }
        let norms = if qnorm {
            let codes = self.raw(m)?;
            let npq = self.pq()?;
            if npq.dim != 1 || npq.nsubq != 1 {
                return Err(pq_err(self, "bad norm quantizer".into()));
            }
            Some((codes, npq))
        } else {
            None
        };
        Ok(Matrix::Quantized(Quantized { m, n, codes, pq, norms }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_sign_extends_bytes() {
        // FNV-1a of "a": (2166136261 ^ 0x61) * 16777619 mod 2^32.
        assert_eq!(hash(b"a"), (2_166_136_261u32 ^ 0x61).wrapping_mul(16_777_619));
        // A byte >= 0x80 is XORed as 0xFFFFFFxx, not 0x000000xx.
        assert_eq!(hash(&[0xC3]), (2_166_136_261u32 ^ 0xFFFF_FFC3).wrapping_mul(16_777_619));
    }

    #[test]
    fn heap_sorts_best_first() {
        let mut v = Vec::new();
        for (i, s) in [-3.0f32, -1.0, -2.0, -0.5, -4.0].iter().enumerate() {
            heap::offer(&mut v, 5, (*s, i as i32));
        }
        heap::sort(&mut v);
        let order: Vec<i32> = v.iter().map(|p| p.1).collect();
        assert_eq!(order, vec![3, 1, 2, 0, 4]);
        // k = 2 keeps the two best.
        let mut v = Vec::new();
        for (i, s) in [-3.0f32, -1.0, -2.0, -0.5, -4.0].iter().enumerate() {
            heap::offer(&mut v, 2, (*s, i as i32));
        }
        heap::sort(&mut v);
        assert_eq!(v.iter().map(|p| p.1).collect::<Vec<_>>(), vec![3, 1]);
    }

    #[test]
    fn huffman_tree_pairs_the_rarest_first() {
        // Counts in dictionary order (descending): the two rarest (2, 1) meet first.
        let t = build_tree(&[5, 3, 2, 1]);
        assert_eq!((t[4].left, t[4].right), (3, 2));
        assert_eq!(t.len(), 7);
        assert_eq!(build_tree(&[7]).len(), 1);
    }

    #[test]
    fn sigmoid_table_matches_its_ends() {
        let s = SigmoidTable::new();
        assert_eq!(s.get(-9.0), 0.0);
        assert_eq!(s.get(9.0), 1.0);
        assert!((s.get(0.0) - 0.5).abs() < 1e-6);
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/classifier").join(name)).unwrap()
    }

    #[test]
    fn every_truncation_is_an_error_naming_the_file() {
        for name in ["hs.bin", "quantized.ftz", "quantized_out.ftz"] {
            let bytes = fixture(name);
            assert!(Model::from_bytes(&bytes, Path::new(name)).is_ok(), "{name}");
            // Every cut in the header and dictionary, then every 997th byte.
            let cuts = (0..bytes.len().min(5000)).chain((5000..bytes.len()).step_by(997));
            for cut in cuts {
                let e = Model::from_bytes(&bytes[..cut], Path::new(name))
                    .err()
                    .unwrap_or_else(|| panic!("{name} cut at {cut}"));
                assert!(e.to_string().starts_with(name), "{e}");
            }
            // Trailing bytes are an error too.
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Model::from_bytes(&longer, Path::new(name)).is_err());
        }
    }

    #[test]
    fn headers_that_claim_too_much_are_refused_before_allocating() {
        let bytes = fixture("softmax.bin");
        let with = |at: usize, v: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + v.len()].copy_from_slice(v);
            Model::from_bytes(&b, Path::new("m.bin")).err().map(|e| e.to_string()).unwrap_or_default()
        };
        // Magic, version, loss, model kind, dimension.
        assert!(with(0, &[0; 4]).contains("not a fastText model"));
        assert!(with(4, &13i32.to_le_bytes()).contains("version 13"));
        assert!(with(32, &9i32.to_le_bytes()).contains("unknown loss 9"));
        assert!(with(36, &2i32.to_le_bytes()).contains("word-vector model"));
        assert!(with(8, &i32::MAX.to_le_bytes()).contains("dimension"));
        // A label count at fastText's "no node yet" (1e15) would break the Huffman tree.
        let m = Model::from_bytes(&bytes, Path::new("m.bin")).unwrap();
        let label = m.dict.label(0).to_vec();
        let at =
            bytes.windows(label.len() + 1).position(|w| w[..label.len()] == label[..] && w[label.len()] == 0).unwrap();
        let e = with(at + label.len() + 1, &1_000_000_000_000_000i64.to_le_bytes());
        assert!(e.contains("bad count"), "{e}");
        // A dictionary of two billion entries, in a file of 144 kB.
        let e = with(64, &i32::MAX.to_le_bytes());
        assert!(e.contains("dictionary sizes") || e.contains("claims"), "{e}");
        let mut b = bytes.clone();
        for at in [64, 68] {
            b[at..at + 4].copy_from_slice(&(1i32 << 30).to_le_bytes());
        }
        let e = Model::from_bytes(&b, Path::new("m.bin")).err().unwrap().to_string();
        assert!(e.contains("claims") || e.contains("sizes"), "{e}");
    }

    #[test]
    fn random_damage_never_panics() {
        let bytes = fixture("quantized.ftz");
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % b.len() as u64) as usize;
                b[at] ^= (x >> 32) as u8 | 1;
            }
            if let Ok(m) = Model::from_bytes(&b, Path::new("m.ftz")) {
                let mut s = Scratch::default();
                let _ = m.predict("the proof of a lemma by induction".as_bytes(), Newlines::Space, &mut s);
            }
        }
    }

    #[test]
    fn a_written_model_reads_back_identically() {
        let m = Model::from_bytes(&fixture("bigrams.bin"), Path::new("bigrams.bin")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("again.bin");
        m.save(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), fixture("bigrams.bin"), "fastText's file, byte for byte");
    }

    #[test]
    fn newlines_are_spaces_or_end_of_line_tokens() {
        let m = Model::from_bytes(&fixture("softmax.bin"), Path::new("softmax.bin")).unwrap();
        let mut s = Scratch::default();
        let text = b"let x = 1\nin x + 1";
        m.dict.line(text, Newlines::Space, &mut s.rows, &mut s.hashes, &mut s.bytes);
        let spaced = s.rows.clone();
        m.dict.line(b"let x = 1 in x + 1", Newlines::Space, &mut s.rows, &mut s.hashes, &mut s.bytes);
        assert_eq!(spaced, s.rows);
        m.dict.line(text, Newlines::Eos, &mut s.rows, &mut s.hashes, &mut s.bytes);
        let eos = m.dict.find(EOS, hash(EOS)).unwrap() as i32;
        assert_eq!(s.rows.iter().filter(|&&r| r == eos).count(), 2, "the newline and the end: {:?}", s.rows);
        // A literal </s> ends fastText's line (space mode).
        m.dict.line(b"let x </s> in x + 1", Newlines::Space, &mut s.rows, &mut s.hashes, &mut s.bytes);
        assert_eq!(s.rows.iter().filter(|&&r| r == eos).count(), 1);
        assert!(s.rows.len() <= 3, "{:?}", s.rows);
    }
}
