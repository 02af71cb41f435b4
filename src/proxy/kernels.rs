//! CPU kernels of the `lm` proxy's fused engine ([`super::cpu`]): matrix products (the `gemm`
//! crate, the one candle itself calls), and fused loops for layer norm, causal attention, GELU,
//! softmax cross-entropy, the per-prediction scores and AdamW, each with its backward pass.
//!
//! The loops are written so LLVM vectorises them (independent lanes, no float reductions it
//! would have to reorder) and compiled twice: as built, and for AVX2 where the CPU has it (the
//! [`simd!`] macro; Rust does not contract `a * b + c` into FMA, so both give the same bits).
//! Every reduction runs in a fixed order and work is split into fixed pieces, never by thread
//! count: results are the same with any number of threads.

use rayon::prelude::*;

use crate::simd::simd;

/// Lanes of the lane-wise accumulators (one AVX2 register of f32).
const L: usize = 8;

/// Layer norm's epsilon (as candle's and PyTorch's default).
pub const LN_EPS: f32 = 1e-5;

/// Rows per parallel task for row-wise kernels; a fixed size, so the split never depends on
/// the thread count.
const ROWS_PER_TASK: usize = 32;

/// Below this many elements a row-wise kernel runs on the calling thread.
const PAR_MIN: usize = 1 << 15;

#[inline(always)]
fn hsum(acc: [f32; L]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Σ a·b in a fixed order (8 lanes, then the tail).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let b = &b[..n];
    let body = n / L * L;
    let mut acc = [0f32; L];
    for (x, y) in a[..body].chunks_exact(L).zip(b[..body].chunks_exact(L)) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = hsum(acc);
    for (x, y) in a[body..].iter().zip(&b[body..]) {
        s += x * y;
    }
    s
}

/// y += alpha · x.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Lane-wise sums of f(x) over a slice whose length is a multiple of the lanes (two
/// accumulators in one loop vectorise badly; one per call is a plain pattern).
#[inline(always)]
fn lanes(a: &[f32], f: impl Fn(f32) -> f32) -> [f32; L] {
    let mut acc = [0f32; L];
    for x in a.chunks_exact(L) {
        for l in 0..L {
            acc[l] += f(x[l]);
        }
    }
    acc
}

#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let body = a.len() / L * L;
    let mut acc = [0f32; L];
    for x in a[..body].chunks_exact(L) {
        for l in 0..L {
            acc[l] += x[l];
        }
    }
    let mut s = hsum(acc);
    for x in &a[body..] {
        s += x;
    }
    s
}

#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let body = a.len() / L * L;
    let mut acc = [f32::NEG_INFINITY; L];
    for x in a[..body].chunks_exact(L) {
        for l in 0..L {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in acc.iter().chain(&a[body..]) {
        m = if x > m { x } else { m };
    }
    m
}

/// e^x for f32, vectorisable: x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r by the polynomial of
/// Cephes' `expf` (about 1 ulp), 2^k from the exponent bits. Inputs are clamped to
/// [-87.3, 88.7] (so e^x of a very negative x is about 1e-38, not 0).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.7 { 88.7 } else { x };
    // The bits of k + 1.5·2^23 hold k in the low mantissa bits: k as an integer without a
    // float-to-int cast (Rust's saturating cast does not vectorise).
    let biased = x * LOG2E + ROUND;
    let ki = biased.to_bits() as i32 - 0x4B40_0000;
    let k = biased - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = (p * (r * r) + r) + 1.0;
    e * f32::from_bits(((ki + 127) as u32) << 23)
}

/// x ← e^(x − m), in place; returns Σ (lane-wise, fixed order).
#[inline(always)]
fn exp_shifted(x: &mut [f32], m: f32) -> f32 {
    for v in x.iter_mut() {
        *v = exp(*v - m);
    }
    sum(x)
}

/// Whether a kernel over `elems` elements is worth splitting across threads.
fn parallel(elems: usize) -> bool {
    elems >= PAR_MIN && rayon::current_num_threads() > 1
}

/// `c = a·b` (`accumulate`: `c += a·b`) for an m×k `a` and a k×n `b`, element (i, p) of `a`
/// at `a[i·a_rs + p·a_cs]` (so a transposed operand is just other strides), `c` row-major.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, r: usize, col: usize| (r - 1) * rs + (col - 1) * cs;
    assert!(c.len() >= m * n, "matmul: output too small");
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.len() > last(a_rs, a_cs, m, k) && b.len() > last(b_rs, b_cs, k, n), "matmul: operand too small");
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every element gemm reads and writes inside the slices;
    // `c` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// The (row, column) strides of a row-major matrix with `cols` columns, for [`matmul`].
pub const fn rows(cols: usize) -> (usize, usize) {
    (cols, 1)
}

/// The strides of the transpose of a row-major matrix with `cols` columns.
pub const fn transposed(cols: usize) -> (usize, usize) {
    (1, cols)
}

/// Run `f(first_row, chunk)` over `data` (rows of `width`) in fixed chunks of rows, in
/// parallel when it is large.
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let step = ROWS_PER_TASK * width.max(1);
    if parallel(data.len()) {
        data.par_chunks_mut(step).enumerate().for_each(|(i, c)| f(i * ROWS_PER_TASK, c));
    } else {
        data.chunks_mut(step).enumerate().for_each(|(i, c)| f(i * ROWS_PER_TASK, c));
    }
}

simd! {
    fn ln_rows(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32], xhat: &mut [f32], rstd: &mut [f32]) {
        let d = g.len();
        for (r, ((x, o), xh)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).zip(xhat.chunks_exact_mut(d)).enumerate() {
            let mean = sum(x) / d as f32;
            for (h, &v) in xh.iter_mut().zip(x) {
                *h = v - mean;
            }
            let var = dot(xh, xh) / d as f32;
            let s = (var + LN_EPS).sqrt();
            for ((h, o), (&g, &b)) in xh.iter_mut().zip(o.iter_mut()).zip(g.iter().zip(b)) {
                *h /= s;
                *o = *h * g + b;
            }
            rstd[r] = 1.0 / s;
        }
    }
}

/// Layer norm of the rows of `x` (width `g.len()`): `out = x̂·g + b`, keeping `x̂` and
/// 1/σ for the backward pass.
pub fn layer_norm(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32], xhat: &mut [f32], rstd: &mut [f32]) {
    let d = g.len();
    let n = x.len() / d;
    let (out, xhat, rstd) = (&mut out[..n * d], &mut xhat[..n * d], &mut rstd[..n]);
    let step = ROWS_PER_TASK * d;
    if parallel(n * d) {
        out.par_chunks_mut(step)
            .zip(xhat.par_chunks_mut(step))
            .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
            .enumerate()
            .for_each(|(i, ((o, xh), r))| ln_rows(&x[i * step..i * step + o.len()], g, b, o, xh, r));
    } else {
        ln_rows(x, g, b, out, xhat, rstd);
    }
}

simd! {
    fn ln_back_rows(dout: &[f32], xhat: &[f32], rstd: &[f32], g: &[f32], dx: &mut [f32]) {
        let d = g.len();
        let mut dxhat = vec![0f32; d];
        for (r, ((dy, xh), dx)) in dout.chunks_exact(d).zip(xhat.chunks_exact(d)).zip(dx.chunks_exact_mut(d)).enumerate() {
            for ((t, &dy), &g) in dxhat.iter_mut().zip(dy).zip(g) {
                *t = dy * g;
            }
            let a = sum(&dxhat) / d as f32;
            let c = dot(&dxhat, xh) / d as f32;
            let s = rstd[r];
            for ((dx, &t), &h) in dx.iter_mut().zip(&dxhat).zip(xh) {
                *dx += s * ((t - a) - h * c);
            }
        }
    }
}

simd! {
    fn ln_param_grads(dout: &[f32], xhat: &[f32], dg: &mut [f32], db: &mut [f32]) {
        let d = dg.len();
        for (dy, xh) in dout.chunks_exact(d).zip(xhat.chunks_exact(d)) {
            for (((g, b), &dy), &h) in dg.iter_mut().zip(db.iter_mut()).zip(dy).zip(xh) {
                *g += dy * h;
                *b += dy;
            }
        }
    }
}

/// Backward of [`layer_norm`]: `dx += ∂/∂x`, `dg += Σ dout·x̂`, `db += Σ dout` (over rows, in
/// order).
pub fn layer_norm_back(
    dout: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    g: &[f32],
    dx: &mut [f32],
    dg: &mut [f32],
    db: &mut [f32],
) {
    let d = g.len();
    let n = rstd.len();
    let (dout, xhat, dx) = (&dout[..n * d], &xhat[..n * d], &mut dx[..n * d]);
    ln_param_grads(dout, xhat, dg, db);
    for_rows(dx, d, |r0, c| {
        let rows = c.len() / d;
        ln_back_rows(&dout[r0 * d..(r0 + rows) * d], &xhat[r0 * d..(r0 + rows) * d], &rstd[r0..r0 + rows], g, c)
    });
}

simd! {
    fn add_rows(x: &mut [f32], b: &[f32]) {
        for row in x.chunks_exact_mut(b.len()) {
            for (v, &b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
}

/// Add `b` to every row of `x`.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for_rows(x, b.len(), |_, c| add_rows(c, b));
}

simd! {
    fn colsum_block(x: &[f32], width: usize, col: usize, out: &mut [f32]) {
        let w = out.len();
        for row in x.chunks_exact(width) {
            for (o, &v) in out.iter_mut().zip(&row[col..col + w]) {
                *o += v;
            }
        }
    }
}

/// `out += Σ_rows x` (width `out.len()`), each column summed over the rows in order.
pub fn colsum(x: &[f32], out: &mut [f32]) {
    let width = out.len();
    if parallel(x.len()) && width >= 256 {
        out.par_chunks_mut(128).enumerate().for_each(|(i, o)| colsum_block(x, width, i * 128, o));
    } else {
        colsum_block(x, width, 0, out);
    }
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/π)
const GELU_A: f32 = 0.044_715;

// 0.5·(1 + tanh z) = σ(2z): GELU(x) = x·σ(2z) with z = √(2/π)(x + 0.044715x³), one exp.
simd! {
    fn gelu_chunk(u: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(u) {
            let z = GELU_C * (x + GELU_A * x * x * x);
            *o = x / (1.0 + exp(-2.0 * z));
        }
    }
}

simd! {
    fn gelu_back_chunk(u: &[f32], d: &mut [f32]) {
        for (d, &x) in d.iter_mut().zip(u) {
            let z = GELU_C * (x + GELU_A * x * x * x);
            let s = 1.0 / (1.0 + exp(-2.0 * z));
            let dz = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
            *d *= s + x * (2.0 * s * (1.0 - s)) * dz;
        }
    }
}

/// GELU, tanh approximation (candle's `gelu`, PyTorch's `approximate="tanh"`).
pub fn gelu(u: &[f32], out: &mut [f32]) {
    for_rows(out, 256, |r0, c| gelu_chunk(&u[r0 * 256..r0 * 256 + c.len()], c));
}

/// `d *= gelu'(u)`.
pub fn gelu_back(u: &[f32], d: &mut [f32]) {
    for_rows(d, 256, |r0, c| gelu_back_chunk(&u[r0 * 256..r0 * 256 + c.len()], c));
}

/// Head `h` of a window's q, k or v (`part` 0, 1, 2) in `qkv`, transposed into `out` (`hd`
/// rows of `t`), so a query's scores against all keys run over contiguous memory.
#[inline(always)]
fn transpose_head(qkv: &[f32], t: usize, part: usize, h: usize, hd: usize, out: &mut [f32]) {
    let d3 = qkv.len() / t;
    let at = part * d3 / 3 + h * hd;
    for j in 0..t {
        for (c, &x) in qkv[j * d3 + at..][..hd].iter().enumerate() {
            out[c * t + j] = x;
        }
    }
}

/// Scores of query `q` (scaled) against keys `0..n`, from the head's transposed keys `kt`
/// (`HD` rows of `t`, then at least 32 values of padding), into `out[..n]`: 32 keys at a time,
/// their sums held in registers. A last partial block is computed whole (the lanes past `n`
/// read the next row or the padding) and only its first lanes are kept.
#[inline(always)]
fn scores32<const HD: usize>(q: &[f32; HD], scale: f32, kt: &[f32], t: usize, n: usize, out: &mut [f32]) {
    let mut j0 = 0;
    while j0 < n {
        let w = (n - j0).min(32);
        let mut acc = [0f32; 32];
        for c in 0..HD {
            let qc = q[c] * scale;
            let kr = &kt[c * t + j0..][..32];
            for l in 0..32 {
                acc[l] += qc * kr[l];
            }
        }
        out[j0..j0 + w].copy_from_slice(&acc[..w]);
        j0 += w;
    }
}

/// Σ_j w_j · rows_j over `w.len()` rows of `HD` values, `stride` apart, summed in order.
#[inline(always)]
fn weighted_rows<const HD: usize>(w: &[f32], rows: &[f32], stride: usize) -> [f32; HD] {
    let mut acc = [0f32; HD];
    for (j, &wj) in w.iter().enumerate() {
        let r = &rows[j * stride..][..HD];
        for c in 0..HD {
            acc[c] += wj * r[c];
        }
    }
    acc
}

/// One head of [`attention_fwd`] with heads of `HD` dimensions known at compile time.
#[inline(always)]
fn head_fwd<const HD: usize>(
    qkv: &[f32],
    t: usize,
    h: usize,
    scale: f32,
    kt: &mut [f32],
    p: &mut [f32],
    y: &mut [f32],
) {
    let d3 = qkv.len() / t;
    let d = d3 / 3;
    transpose_head(qkv, t, 1, h, HD, kt);
    for i in 0..t {
        let q: &[f32; HD] = qkv[i * d3 + h * HD..][..HD].try_into().expect("HD values");
        let row = &mut p[i * t..][..t];
        let (live, dead) = row.split_at_mut(i + 1);
        scores32(q, scale, kt, t, i + 1, live);
        let m = max(live);
        let inv = 1.0 / exp_shifted(live, m);
        for s in live.iter_mut() {
            *s *= inv;
        }
        dead.fill(0.0);
        let acc = weighted_rows::<HD>(live, &qkv[2 * d + h * HD..], d3);
        y[i * d + h * HD..][..HD].copy_from_slice(&acc);
    }
}

/// One head of [`attention_back`] with heads of `HD` dimensions known at compile time: dS for
/// the whole head first, then dq by rows and dk, dv by columns, each sum held in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn head_back<const HD: usize>(
    qkv: &[f32],
    p: &[f32],
    dy: &[f32],
    t: usize,
    h: usize,
    scale: f32,
    vt: &mut [f32],
    dsm: &mut [f32],
    dqkv: &mut [f32],
) {
    let d3 = qkv.len() / t;
    let d = d3 / 3;
    transpose_head(qkv, t, 2, h, HD, vt);
    for i in 0..t {
        let g: &[f32; HD] = dy[i * d + h * HD..][..HD].try_into().expect("HD values");
        let prow = &p[i * t..][..i + 1];
        let ds = &mut dsm[i * t..][..i + 1];
        // dP_ij = dy_i · v_j, for all j ≤ i.
        scores32(g, 1.0, vt, t, i + 1, ds);
        let r = dot(prow, ds);
        for (s, &pj) in ds.iter_mut().zip(prow) {
            *s = pj * (*s - r) * scale;
        }
        let dq = weighted_rows::<HD>(ds, &qkv[d + h * HD..], d3);
        dqkv[i * d3 + h * HD..][..HD].copy_from_slice(&dq);
    }
    for j in 0..t {
        let (mut dk, mut dv) = ([0f32; HD], [0f32; HD]);
        for i in j..t {
            let (s, pij) = (dsm[i * t + j], p[i * t + j]);
            let q = &qkv[i * d3 + h * HD..][..HD];
            let g = &dy[i * d + h * HD..][..HD];
            for c in 0..HD {
                dk[c] += s * q[c];
                dv[c] += pij * g[c];
            }
        }
        dqkv[j * d3 + d + h * HD..][..HD].copy_from_slice(&dk);
        dqkv[j * d3 + 2 * d + h * HD..][..HD].copy_from_slice(&dv);
    }
}

simd! {
    fn attention_fwd(qkv: &[f32], t: usize, heads: usize, scale: f32, p: &mut [f32], y: &mut [f32]) {
        let d3 = qkv.len() / t;
        let d = d3 / 3;
        let hd = d / heads;
        // Padded for the whole blocks of `scores32`.
        let mut kt = vec![0f32; hd * t + 32];
        for h in 0..heads {
            if hd == 32 {
                head_fwd::<32>(qkv, t, h, scale, &mut kt, &mut p[h * t * t..][..t * t], y);
                continue;
            }
            transpose_head(qkv, t, 1, h, hd, &mut kt);
            for i in 0..t {
                let q = &qkv[i * d3 + h * hd..][..hd];
                let row = &mut p[(h * t + i) * t..][..t];
                let (live, dead) = row.split_at_mut(i + 1);
                live.fill(0.0);
                for (c, &qc) in q.iter().enumerate() {
                    axpy(qc * scale, &kt[c * t..c * t + i + 1], live);
                }
                let m = max(live);
                let inv = 1.0 / exp_shifted(live, m);
                for s in live.iter_mut() {
                    *s *= inv;
                }
                dead.fill(0.0);
                let out = &mut y[i * d + h * hd..][..hd];
                out.fill(0.0);
                for (j, &pj) in live.iter().enumerate() {
                    axpy(pj, &qkv[j * d3 + 2 * d + h * hd..][..hd], out);
                }
            }
        }
    }
}

simd! {
    fn attention_back(qkv: &[f32], p: &[f32], dy: &[f32], t: usize, heads: usize, scale: f32, dqkv: &mut [f32]) {
        let d3 = qkv.len() / t;
        let d = d3 / 3;
        let hd = d / heads;
        dqkv.fill(0.0);
        let mut ds = vec![0f32; t];
        let mut vt = vec![0f32; hd * t + 32];
        let mut dsm = if hd == 32 { vec![0f32; t * t] } else { Vec::new() };
        for h in 0..heads {
            if hd == 32 {
                head_back::<32>(qkv, &p[h * t * t..][..t * t], dy, t, h, scale, &mut vt, &mut dsm, dqkv);
                continue;
            }
            transpose_head(qkv, t, 2, h, hd, &mut vt);
            for i in 0..t {
                let g = &dy[i * d + h * hd..][..hd];
                let prow = &p[(h * t + i) * t..][..i + 1];
                let ds = &mut ds[..i + 1];
                // dP_ij = dy_i · v_j, for all j at once.
                ds.fill(0.0);
                for (c, &gc) in g.iter().enumerate() {
                    axpy(gc, &vt[c * t..c * t + i + 1], ds);
                }
                let r = dot(prow, ds);
                for (s, &pj) in ds.iter_mut().zip(prow) {
                    *s = pj * (*s - r) * scale;
                }
                let q = &qkv[i * d3 + h * hd..][..hd];
                for (j, (&s, &pj)) in ds.iter().zip(prow).enumerate() {
                    let k = &qkv[j * d3 + d + h * hd..][..hd];
                    axpy(s, k, &mut dqkv[i * d3 + h * hd..][..hd]);
                    axpy(s, q, &mut dqkv[j * d3 + d + h * hd..][..hd]);
                    axpy(pj, g, &mut dqkv[j * d3 + 2 * d + h * hd..][..hd]);
                }
            }
        }
    }
}

/// Causal self-attention of `b` windows of `t` positions: `qkv` rows `[q | k | v]` (heads of
/// `width / heads` side by side), softmax(q·kᵀ·scale) over the positions up to each one, kept in
/// `p` (`b·heads·t·t`), and `y = p·v` (heads side by side again).
pub fn attention(qkv: &[f32], b: usize, t: usize, heads: usize, p: &mut [f32], y: &mut [f32]) {
    let d = qkv.len() / (b * t) / 3;
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    p[..b * heads * t * t]
        .par_chunks_mut(heads * t * t)
        .zip(y[..b * t * d].par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(w, (p, y))| attention_fwd(&qkv[w * t * 3 * d..(w + 1) * t * 3 * d], t, heads, scale, p, y));
}

/// Backward of [`attention`]: `dqkv` (overwritten) from `dy`.
pub fn attention_backward(qkv: &[f32], p: &[f32], dy: &[f32], b: usize, t: usize, heads: usize, dqkv: &mut [f32]) {
    let d = qkv.len() / (b * t) / 3;
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    dqkv[..b * t * 3 * d].par_chunks_mut(t * 3 * d).enumerate().for_each(|(w, dq)| {
        let rows = w * t..(w + 1) * t;
        attention_back(
            &qkv[rows.start * 3 * d..rows.end * 3 * d],
            &p[w * heads * t * t..(w + 1) * heads * t * t],
            &dy[rows.start * d..rows.end * d],
            t,
            heads,
            scale,
            dq,
        )
    });
}

simd! {
    fn ce_rows(z: &mut [f32], v: usize, bias: &[f32], targets: &[u32], weights: &[f32], inv_denom: f32) -> f64 {
        let mut total = 0f64;
        for ((row, &y), &w) in z.chunks_exact_mut(v).zip(targets).zip(weights) {
            if w == 0.0 {
                row.fill(0.0);
                continue;
            }
            for (z, &b) in row.iter_mut().zip(bias) {
                *z += b;
            }
            let zy = row[y as usize];
            let m = max(row);
            let s = exp_shifted(row, m);
            total += w as f64 * ((m as f64 + (s as f64).ln()) - zy as f64);
            let scale = w * inv_denom / s;
            for e in row.iter_mut() {
                *e *= scale;
            }
            row[y as usize] -= w * inv_denom;
        }
        total
    }
}

/// Softmax cross-entropy of the rows of `logits` (width `v`; plus `bias`, when not empty, added
/// here while the row is in cache) against `targets`, weighted by `weights` (0: padding) and
/// divided by `denom`: returns Σ w·(−log p_y) / denom and turns `logits` into its gradient,
/// (p − onehot(y))·w / denom.
pub fn cross_entropy(logits: &mut [f32], v: usize, bias: &[f32], targets: &[u32], weights: &[f32], denom: f64) -> f64 {
    let n = targets.len();
    let inv = (1.0 / denom) as f32;
    let step = ROWS_PER_TASK * v;
    let part = |(i, c): (usize, &mut [f32])| {
        let r = i * ROWS_PER_TASK..i * ROWS_PER_TASK + c.len() / v;
        ce_rows(c, v, bias, &targets[r.clone()], &weights[r], inv)
    };
    // The same pieces, summed in the same order, on any number of threads.
    let parts: Vec<f64> = if parallel(n * v) {
        logits[..n * v].par_chunks_mut(step).enumerate().map(part).collect()
    } else {
        logits[..n * v].chunks_mut(step).enumerate().map(part).collect()
    };
    parts.iter().sum::<f64>() / denom
}

simd! {
    /// Cross-entropy and EL2N of one prediction from its logits (plus `bias`, when not empty):
    /// with e_i = exp(z_i − max) and S = Σ e_i (summed in f64), p_y = e_y / S and
    /// Σ p² = Σ e_i² / S².
    pub fn loss_and_el2n(logits: &[f32], bias: &[f32], target: usize) -> (f64, f64) {
        let biased = !bias.is_empty();
        let m = if biased {
            let mut acc = [f32::NEG_INFINITY; L];
            let body = logits.len() / L * L;
            for (z, b) in logits[..body].chunks_exact(L).zip(bias[..body].chunks_exact(L)) {
                for l in 0..L {
                    let x = z[l] + b[l];
                    acc[l] = if x > acc[l] { x } else { acc[l] };
                }
            }
            let mut m = f32::NEG_INFINITY;
            for x in acc.into_iter().chain(logits[body..].iter().zip(&bias[body..]).map(|(z, b)| z + b)) {
                m = if x > m { x } else { m };
            }
            m
        } else {
            max(logits)
        };
        let (mut s, mut q) = ([0f64; L], [0f64; L]);
        let mut tail = (0f64, 0f64);
        // Exponentials a block at a time (a plain loop LLVM vectorises), then summed in f64.
        let mut buf = [0f32; 256];
        for (k, block) in logits.chunks(256).enumerate() {
            let e = &mut buf[..block.len()];
            if biased {
                for ((e, &z), &b) in e.iter_mut().zip(block).zip(&bias[k * 256..]) {
                    *e = exp((z + b) - m);
                }
            } else {
                for (e, &z) in e.iter_mut().zip(block) {
                    *e = exp(z - m);
                }
            }
            // A block's lanes sum 32 values each in f32 (each in [0, 1]), then go into f64.
            let body = e.len() / L * L;
            let (bs, bq) = (lanes(&e[..body], |x| x), lanes(&e[..body], |x| x * x));
            for l in 0..L {
                s[l] += bs[l] as f64;
                q[l] += bq[l] as f64;
            }
            for &x in &e[body..] {
                tail.0 += x as f64;
                tail.1 += x as f64 * x as f64;
            }
        }
        let fold = |a: [f64; L]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        let (s, q) = (fold(s) + tail.0, fold(q) + tail.1);
        let zy = if biased { logits[target] + bias[target] } else { logits[target] };
        let loss = m as f64 + s.ln() - zy as f64;
        let py = exp(zy - m) as f64 / s;
        let el2n = (q / (s * s) - 2.0 * py + 1.0).max(0.0).sqrt();
        (loss, el2n)
    }
}

/// AdamW's constants for one step (candle's `AdamW`: decoupled weight decay, bias-corrected
/// moments).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f32,
    pub decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub scale_m: f32,
    pub scale_v: f32,
}

simd! {
    fn adamw_chunk(theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
        for (((t, &g), m), v) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * s.beta1 + g * (1.0 - s.beta1);
            *v = *v * s.beta2 + (g * g) * (1.0 - s.beta2);
            let mh = *m * s.scale_m;
            let vh = *v * s.scale_v;
            *t = *t * s.decay - (mh / (vh.sqrt() + s.eps)) * s.lr;
        }
    }
}

/// One AdamW update of `theta` with gradient `g` and moments `m`, `v`.
pub fn adamw(theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
    const STEP: usize = 1 << 14;
    if parallel(theta.len()) {
        theta
            .par_chunks_mut(STEP)
            .zip(m.par_chunks_mut(STEP))
            .zip(v.par_chunks_mut(STEP))
            .enumerate()
            .for_each(|(i, ((t, m), v))| adamw_chunk(t, &g[i * STEP..i * STEP + t.len()], m, v, s));
    } else {
        adamw_chunk(theta, g, m, v, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x) as f64, (x as f64).exp());
            assert!(((a - b) / b).abs() < 3e-7, "exp({x}) = {a}, want {b}");
            x += 0.013;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
    }

    #[test]
    fn matmul_with_transposed_operands() {
        // a 2x3, b 3x2; aᵀ stored as 3x2 and bᵀ as 2x3.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let want = [58.0, 64.0, 139.0, 154.0];
        let mut c = [0f32; 4];
        matmul(2, 2, 3, &mut c, false, &a, rows(3), &b, rows(2));
        assert_eq!(c, want);
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let bt = [7.0, 9.0, 11.0, 8.0, 10.0, 12.0];
        matmul(2, 2, 3, &mut c, true, &at, transposed(2), &bt, transposed(3));
        assert_eq!(c, want.map(|x| 2.0 * x));
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let mut rng = crate::proxy::nn::Rng::new(9);
        let (n, v) = (5, 37);
        let z: Vec<f32> = (0..n * v).map(|_| (rng.normal() * 3.0) as f32).collect();
        let y: Vec<u32> = (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect();
        let w = [1.0, 0.5, 0.0, 2.0, 1.0];
        let loss = |z: &[f32]| cross_entropy(&mut z.to_vec(), v, &[], &y, &w, 3.0);
        let mut g = z.clone();
        let l0 = cross_entropy(&mut g, v, &[], &y, &w, 3.0);
        // A bias passed in is a bias added before.
        let bias: Vec<f32> = (0..v).map(|i| i as f32 * 0.01).collect();
        let biased: Vec<f32> = z.chunks(v).flat_map(|r| r.iter().zip(&bias).map(|(a, b)| a + b)).collect();
        let (mut a, mut b) = (z.clone(), biased.clone());
        assert_eq!(cross_entropy(&mut a, v, &bias, &y, &w, 3.0), cross_entropy(&mut b, v, &[], &y, &w, 3.0));
        assert_eq!(a, b);
        assert!((l0 - loss(&z)).abs() < 1e-12);
        for i in [0, 5, 40, 80, 100, 150] {
            let h = 1e-2f32;
            let (mut up, mut down) = (z.clone(), z.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up) - loss(&down)) / (2.0 * h as f64);
            assert!((fd - g[i] as f64).abs() < 1e-3, "{i}: {fd} vs {}", g[i]);
        }
        // The padding row (weight 0) has no gradient.
        assert!(g[2 * v..3 * v].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn loss_and_el2n_oracles() {
        // Uniform over K: loss ln K, EL2N sqrt(1 - 1/K); a perfect prediction: both 0; a sure
        // wrong one: EL2N sqrt(2).
        for k in [10usize, 2048] {
            let (l, e) = loss_and_el2n(&vec![2.0; k], &[], 3);
            assert!(
                (l - (k as f64).ln()).abs() < 1e-6 && (e - (1.0 - 1.0 / k as f64).sqrt()).abs() < 1e-6,
                "{k}: {l} {e}"
            );
        }
        let (l, e) = loss_and_el2n(&[0.0, 100.0, 0.0], &[], 1);
        assert!(l.abs() < 1e-9 && e.abs() < 1e-9, "{l} {e}");
        let (_, e) = loss_and_el2n(&[0.0, 100.0, 0.0], &[], 0);
        assert!((e - 2f64.sqrt()).abs() < 1e-9, "{e}");
    }

    #[test]
    fn loss_and_el2n_matches_the_f64_definition() {
        let mut rng = crate::proxy::nn::Rng::new(4);
        for k in [2usize, 7, 50, 2048] {
            let z: Vec<f32> = (0..k).map(|_| (rng.normal() * 5.0) as f32).collect();
            let y = (rng.next_u64() % k as u64) as usize;
            let p = crate::proxy::metrics::predict(&z, y);
            let (l, e) = loss_and_el2n(&z, &[], y);
            let bias: Vec<f32> = (0..k).map(|i| (i % 5) as f32 * 0.3).collect();
            let zb: Vec<f32> = z.iter().zip(&bias).map(|(a, b)| a + b).collect();
            assert_eq!(loss_and_el2n(&z, &bias, y), loss_and_el2n(&zb, &[], y));
            assert!(
                (l - p.loss).abs() < 1e-5 * (1.0 + p.loss) && (e - p.el2n).abs() < 1e-6,
                "{l} {} {e} {}",
                p.loss,
                p.el2n
            );
        }
    }
}
