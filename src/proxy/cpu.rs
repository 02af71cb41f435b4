//! The `lm` proxy's CPU engine: the model of [`super::lm`] (same architecture, same initial
//! weights, same loss), with its forward and backward passes written out by hand over flat
//! buffers and fused kernels ([`super::kernels`]) instead of candle's autograd. Candle's graph
//! allocates a tensor per operation and runs element-wise operations one at a time; here a
//! training step is a dozen matrix products (the `gemm` crate, as in candle) and a few fused
//! loops over buffers that are allocated once and reused.
//!
//! Parameters are one flat vector in the order [`super::nn::Params`] creates them (so
//! [`CpuLm::from_params`] and [`CpuLm::to_candle`] convert both ways, and the tests check every
//! gradient against candle's autograd). The candle model remains the GPU path.
//!
//! Memory: parameters, gradients and AdamW's two moments (4 × the parameters), and one batch's
//! activations, held between steps.

use std::ops::Range;

use candle_core::{Device, Tensor};

use super::kernels::{self as k, rows, transposed};
use super::lm::{Lm, LmShape};
use super::nn::Params;

/// Where each parameter lives in the flat vector.
#[derive(Debug, Clone)]
struct Layout {
    tok: Range<usize>,
    pos: Range<usize>,
    blocks: Vec<BlockLayout>,
    lnf_g: Range<usize>,
    lnf_b: Range<usize>,
    head_w: Range<usize>,
    head_b: Range<usize>,
    total: usize,
}

#[derive(Debug, Clone)]
struct BlockLayout {
    ln1_g: Range<usize>,
    ln1_b: Range<usize>,
    qkv_w: Range<usize>,
    qkv_b: Range<usize>,
    proj_w: Range<usize>,
    proj_b: Range<usize>,
    ln2_g: Range<usize>,
    ln2_b: Range<usize>,
    up_w: Range<usize>,
    up_b: Range<usize>,
    down_w: Range<usize>,
    down_b: Range<usize>,
}

impl Layout {
    /// In [`Lm::new`]'s creation order.
    fn new(s: LmShape) -> Self {
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            at - n..at
        };
        let d = s.width;
        let tok = take(s.vocab * d);
        let pos = take(s.context * d);
        let blocks = (0..s.layers)
            .map(|_| BlockLayout {
                ln1_g: take(d),
                ln1_b: take(d),
                qkv_w: take(d * 3 * d),
                qkv_b: take(3 * d),
                proj_w: take(d * d),
                proj_b: take(d),
                ln2_g: take(d),
                ln2_b: take(d),
                up_w: take(d * 4 * d),
                up_b: take(4 * d),
                down_w: take(4 * d * d),
                down_b: take(d),
            })
            .collect();
        let lnf_g = take(d);
        let lnf_b = take(d);
        let head_w = take(d * s.vocab);
        let head_b = take(s.vocab);
        Layout { tok, pos, blocks, lnf_g, lnf_b, head_w, head_b, total: at }
    }
}

/// One block's activations, kept for the backward pass.
#[derive(Default)]
struct BlockActs {
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    h1: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    y: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    h2: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
}

/// Buffers of one batch: activations of the last forward pass and the backward pass's scratch.
#[derive(Default)]
pub struct Work {
    b: usize,
    t: usize,
    inputs: Vec<u32>,
    x: Vec<f32>,
    blocks: Vec<BlockActs>,
    xhatf: Vec<f32>,
    rstdf: Vec<f32>,
    /// The final hidden states `[b·t, width]`.
    pub hidden: Vec<f32>,
    /// The logits `[b·t, vocab]` (the gradient after [`CpuLm::backward`]); without the output
    /// layer's bias after [`CpuLm::forward_unbiased`].
    pub logits: Vec<f32>,
    bias_pending: bool,
    dx: Vec<f32>,
    dh: Vec<f32>,
    dqkv: Vec<f32>,
    dy: Vec<f32>,
    dup: Vec<f32>,
}

fn size(v: &mut Vec<f32>, n: usize) {
    // Contents are overwritten by every pass; only the length matters.
    v.resize(n, 0.0);
}

impl Work {
    fn fit(&mut self, s: LmShape, heads: usize, b: usize, t: usize) {
        let (n, d) = (b * t, s.width);
        self.b = b;
        self.t = t;
        self.blocks.resize_with(s.layers, BlockActs::default);
        for a in &mut self.blocks {
            size(&mut a.xhat1, n * d);
            size(&mut a.rstd1, n);
            size(&mut a.h1, n * d);
            size(&mut a.qkv, n * 3 * d);
            size(&mut a.att, b * heads * t * t);
            size(&mut a.y, n * d);
            size(&mut a.xhat2, n * d);
            size(&mut a.rstd2, n);
            size(&mut a.h2, n * d);
            size(&mut a.up, n * 4 * d);
            size(&mut a.act, n * 4 * d);
        }
        size(&mut self.x, n * d);
        size(&mut self.xhatf, n * d);
        size(&mut self.rstdf, n);
        size(&mut self.hidden, n * d);
        size(&mut self.logits, n * s.vocab);
    }

    fn fit_backward(&mut self, s: LmShape) {
        let (n, d) = (self.b * self.t, s.width);
        size(&mut self.dx, n * d);
        size(&mut self.dh, n * d);
        size(&mut self.dqkv, n * 3 * d);
        size(&mut self.dy, n * d);
        size(&mut self.dup, n * 4 * d);
    }
}

/// The `lm` proxy on the CPU.
#[derive(Debug, Clone)]
pub struct CpuLm {
    pub shape: LmShape,
    heads: usize,
    layout: Layout,
    /// Every parameter, flat, in [`Params`]' order.
    pub params: Vec<f32>,
}

impl CpuLm {
    /// The model with the initial weights [`Lm::new`] draws from `seed`.
    pub fn new(shape: LmShape, seed: u64) -> candle_core::Result<Self> {
        let mut p = Params::new(seed, &Device::Cpu);
        Lm::new(shape, &mut p)?;
        Self::from_params(shape, &p)
    }

    /// The model with the values of candle parameters (made by [`Lm::new`]).
    pub fn from_params(shape: LmShape, p: &Params) -> candle_core::Result<Self> {
        let layout = Layout::new(shape);
        let mut params = Vec::with_capacity(layout.total);
        for (_, v) in &p.vars {
            params.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        if params.len() != layout.total {
            candle_core::bail!("lm parameters: {} values, the layout has {}", params.len(), layout.total);
        }
        Ok(CpuLm { shape, heads: (shape.width / 32).max(1), layout, params })
    }

    /// The same model as candle tensors on `device` (for the autograd checks and the GPU).
    pub fn to_candle(&self, device: &Device) -> candle_core::Result<(Lm, Params)> {
        let mut p = Params::new(0, device);
        let lm = Lm::new(self.shape, &mut p)?;
        let mut at = 0;
        for (_, v) in &p.vars {
            let n = v.as_tensor().elem_count();
            v.set(&Tensor::from_slice(&self.params[at..at + n], v.as_tensor().shape(), device)?)?;
            at += n;
        }
        Ok((lm, p))
    }

    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// Forward pass over `b` windows of `t` input ids (row-major): fills `w.hidden` and
    /// `w.logits`, and keeps what [`CpuLm::backward`] needs.
    pub fn forward(&self, inputs: &[u32], b: usize, t: usize, w: &mut Work) {
        self.run_forward(inputs, b, t, w, true)
    }

    /// [`CpuLm::forward`] without adding the output layer's bias to the logits: the loss
    /// ([`CpuLm::backward`], [`CpuLm::loss`]) and the scores add it ([`CpuLm::head_bias`]) while
    /// a row is in cache, instead of in a pass of its own over all of them.
    pub fn forward_unbiased(&self, inputs: &[u32], b: usize, t: usize, w: &mut Work) {
        self.run_forward(inputs, b, t, w, false)
    }

    /// The output layer's bias.
    pub fn head_bias(&self) -> &[f32] {
        &self.params[self.layout.head_b.clone()]
    }

    fn run_forward(&self, inputs: &[u32], b: usize, t: usize, w: &mut Work, add_head_bias: bool) {
        let s = self.shape;
        let (d, v, n) = (s.width, s.vocab, b * t);
        assert!(t <= s.context && inputs.len() == n, "a batch of {b}x{t} with {} inputs", inputs.len());
        assert!(inputs.iter().all(|&i| (i as usize) < v), "a token id outside the vocabulary of {v}");
        w.fit(s, self.heads, b, t);
        w.inputs.clear();
        w.inputs.extend_from_slice(inputs);
        let p = &self.params;
        let (tok, pos) = (&p[self.layout.tok.clone()], &p[self.layout.pos.clone()]);
        for (r, (row, &id)) in w.x.chunks_exact_mut(d).zip(inputs).enumerate() {
            let (e, q) = (&tok[id as usize * d..][..d], &pos[(r % t) * d..][..d]);
            for ((x, &e), &q) in row.iter_mut().zip(e).zip(q) {
                *x = e + q;
            }
        }
        for (l, a) in self.layout.blocks.iter().zip(&mut w.blocks) {
            k::layer_norm(&w.x, &p[l.ln1_g.clone()], &p[l.ln1_b.clone()], &mut a.h1, &mut a.xhat1, &mut a.rstd1);
            k::matmul(n, 3 * d, d, &mut a.qkv, false, &a.h1, rows(d), &p[l.qkv_w.clone()], rows(3 * d));
            k::add_bias(&mut a.qkv, &p[l.qkv_b.clone()]);
            k::attention(&a.qkv, b, t, self.heads, &mut a.att, &mut a.y);
            k::matmul(n, d, d, &mut w.x, true, &a.y, rows(d), &p[l.proj_w.clone()], rows(d));
            k::add_bias(&mut w.x, &p[l.proj_b.clone()]);
            k::layer_norm(&w.x, &p[l.ln2_g.clone()], &p[l.ln2_b.clone()], &mut a.h2, &mut a.xhat2, &mut a.rstd2);
            k::matmul(n, 4 * d, d, &mut a.up, false, &a.h2, rows(d), &p[l.up_w.clone()], rows(4 * d));
            k::add_bias(&mut a.up, &p[l.up_b.clone()]);
            k::gelu(&a.up, &mut a.act);
            k::matmul(n, d, 4 * d, &mut w.x, true, &a.act, rows(4 * d), &p[l.down_w.clone()], rows(d));
            k::add_bias(&mut w.x, &p[l.down_b.clone()]);
        }
        let (lg, lb) = (&p[self.layout.lnf_g.clone()], &p[self.layout.lnf_b.clone()]);
        k::layer_norm(&w.x, lg, lb, &mut w.hidden, &mut w.xhatf, &mut w.rstdf);
        k::matmul(n, v, d, &mut w.logits, false, &w.hidden, rows(d), &p[self.layout.head_w.clone()], rows(v));
        if add_head_bias {
            k::add_bias(&mut w.logits, self.head_bias());
        }
        w.bias_pending = !add_head_bias;
    }

    /// The bias still to be added to `w.logits` (empty if none).
    fn pending<'a>(&'a self, w: &Work) -> &'a [f32] {
        if w.bias_pending {
            self.head_bias()
        } else {
            &[]
        }
    }

    /// After [`CpuLm::forward`]: the loss alone, as [`CpuLm::backward`] gives it (the logits
    /// become its gradient with respect to them).
    pub fn loss(&self, targets: &[u32], weights: &[f32], denom: f64, w: &mut Work) -> f64 {
        let n = w.b * w.t;
        assert!(targets.len() == n && weights.len() == n);
        let bias = self.pending(w);
        w.bias_pending = false;
        k::cross_entropy(&mut w.logits, self.shape.vocab, bias, targets, weights, denom)
    }

    /// After [`CpuLm::forward`]: the loss Σ weight·(−log p(target)) / `denom` over the batch
    /// (weight 0 for padding), and its gradient added to `grads` (the layout of `params`).
    pub fn backward(&self, targets: &[u32], weights: &[f32], denom: f64, w: &mut Work, grads: &mut [f32]) -> f64 {
        let s = self.shape;
        let (d, v, t, n) = (s.width, s.vocab, w.t, w.b * w.t);
        assert!(grads.len() == self.layout.total);
        let loss = self.loss(targets, weights, denom, w);
        w.fit_backward(s);
        let p = &self.params;
        let lay = &self.layout;
        let dz = &w.logits[..n * v];
        k::matmul(d, v, n, &mut grads[lay.head_w.clone()], true, &w.hidden, transposed(d), dz, rows(v));
        k::colsum(dz, &mut grads[lay.head_b.clone()]);
        k::matmul(n, d, v, &mut w.dh, false, dz, rows(v), &p[lay.head_w.clone()], transposed(v));
        w.dx.fill(0.0);
        {
            let (dg, db) = pair(grads, &lay.lnf_g, &lay.lnf_b);
            k::layer_norm_back(&w.dh, &w.xhatf, &w.rstdf, &p[lay.lnf_g.clone()], &mut w.dx, dg, db);
        }
        for (l, a) in lay.blocks.iter().zip(&w.blocks).rev() {
            // x ← x + gelu(ln2(x)·W_up + b_up)·W_down + b_down
            k::matmul(4 * d, d, n, &mut grads[l.down_w.clone()], true, &a.act, transposed(4 * d), &w.dx, rows(d));
            k::colsum(&w.dx, &mut grads[l.down_b.clone()]);
            k::matmul(n, 4 * d, d, &mut w.dup, false, &w.dx, rows(d), &p[l.down_w.clone()], transposed(d));
            k::gelu_back(&a.up, &mut w.dup);
            k::matmul(d, 4 * d, n, &mut grads[l.up_w.clone()], true, &a.h2, transposed(d), &w.dup, rows(4 * d));
            k::colsum(&w.dup, &mut grads[l.up_b.clone()]);
            k::matmul(n, d, 4 * d, &mut w.dh, false, &w.dup, rows(4 * d), &p[l.up_w.clone()], transposed(4 * d));
            let (dg, db) = pair(grads, &l.ln2_g, &l.ln2_b);
            k::layer_norm_back(&w.dh, &a.xhat2, &a.rstd2, &p[l.ln2_g.clone()], &mut w.dx, dg, db);
            // x ← x + attention(ln1(x)·W_qkv + b_qkv)·W_proj + b_proj
            k::matmul(d, d, n, &mut grads[l.proj_w.clone()], true, &a.y, transposed(d), &w.dx, rows(d));
            k::colsum(&w.dx, &mut grads[l.proj_b.clone()]);
            k::matmul(n, d, d, &mut w.dy, false, &w.dx, rows(d), &p[l.proj_w.clone()], transposed(d));
            k::attention_backward(&a.qkv, &a.att, &w.dy, w.b, t, self.heads, &mut w.dqkv);
            k::matmul(d, 3 * d, n, &mut grads[l.qkv_w.clone()], true, &a.h1, transposed(d), &w.dqkv, rows(3 * d));
            k::colsum(&w.dqkv, &mut grads[l.qkv_b.clone()]);
            k::matmul(n, d, 3 * d, &mut w.dh, false, &w.dqkv, rows(3 * d), &p[l.qkv_w.clone()], transposed(3 * d));
            let (dg, db) = pair(grads, &l.ln1_g, &l.ln1_b);
            k::layer_norm_back(&w.dh, &a.xhat1, &a.rstd1, &p[l.ln1_g.clone()], &mut w.dx, dg, db);
        }
        // Embeddings: rows added in order.
        let (dtok, dpos) = pair(grads, &lay.tok, &lay.pos);
        for (r, (g, &id)) in w.dx.chunks_exact(d).zip(&w.inputs).enumerate() {
            k::axpy(1.0, g, &mut dtok[id as usize * d..][..d]);
            k::axpy(1.0, g, &mut dpos[(r % t) * d..][..d]);
        }
        loss
    }
}

/// Two disjoint ranges of `v`, mutably (`a` before `b`).
fn pair<'a>(v: &'a mut [f32], a: &Range<usize>, b: &Range<usize>) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start);
    let (lo, hi) = v.split_at_mut(b.start);
    (&mut lo[a.clone()], &mut hi[..b.len()])
}

/// AdamW over the flat parameters, with candle's `AdamW` arithmetic (β 0.9 and 0.999, ε 1e-8,
/// decoupled weight decay), so both optimise alike.
pub struct AdamW {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    pub lr: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(n: usize, lr: f64, weight_decay: f64) -> Self {
        AdamW { m: vec![0.0; n], v: vec![0.0; n], t: 0, lr, weight_decay }
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let (b1, b2) = (0.9f64, 0.999f64);
        self.t += 1;
        let s = k::AdamStep {
            lr: self.lr as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: 1e-8,
            scale_m: (1.0 / (1.0 - b1.powi(self.t))) as f32,
            scale_v: (1.0 / (1.0 - b2.powi(self.t))) as f32,
        };
        k::adamw(params, grads, &mut self.m, &mut self.v, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::lm;

    fn docs() -> Vec<Vec<u32>> {
        let mut rng = crate::proxy::nn::Rng::new(11);
        (0..7).map(|i| (0..(3 + 9 * i)).map(|_| (rng.next_u64() % 40) as u32 + 1).collect()).collect()
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y} (scale {scale})");
        }
    }

    #[test]
    fn forward_and_every_gradient_match_candle_autograd() {
        // Heads of 32 (the blocked attention kernels) and one head of 48 (the general ones).
        for width in [64, 48] {
            gradients_match(LmShape { vocab: 48, width, layers: 2, context: 16 });
        }
    }

    fn gradients_match(shape: LmShape) {
        let mut m = CpuLm::new(shape, 3).unwrap();
        // Nudge the weights away from their initial values (zero biases, unit gains).
        let mut rng = crate::proxy::nn::Rng::new(5);
        for x in &mut m.params {
            *x += (rng.normal() * 0.05) as f32;
        }
        let (lm, p) = m.to_candle(&Device::Cpu).unwrap();
        let docs = docs();
        let ws = lm::windows(&docs, shape.context);
        let chunk = &ws[2..8];
        let b = lm::batch(&docs, chunk, 0, &Device::Cpu).unwrap();
        let (bn, t) = (chunk.len(), b.len);
        let inputs = b.inputs.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let targets = b.targets.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let mut weights = b.mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Unequal weights, as `syllabus eval` gives.
        for (i, w) in weights.iter_mut().enumerate() {
            *w *= 1.0 + (i % 3) as f32 * 0.5;
        }
        let mask = Tensor::from_vec(weights.clone(), (bn, t), &Device::Cpu).unwrap();
        let batch = lm::Batch { mask, ..b };
        let denom = 37.0;

        let mut w = Work::default();
        m.forward(&inputs, bn, t, &mut w);
        let (_, logits) = lm.forward(&batch.inputs).unwrap();
        close(&w.logits, &logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(), 1e-4, "logits");

        let mut grads = vec![0f32; m.num_params()];
        // The loss with the output bias added by the cross-entropy kernel is the same.
        m.forward_unbiased(&inputs, bn, t, &mut w);
        let loss = m.backward(&targets, &weights, denom, &mut w, &mut grads);
        let mut again = vec![0f32; m.num_params()];
        m.forward(&inputs, bn, t, &mut w);
        assert_eq!(loss, m.backward(&targets, &weights, denom, &mut w, &mut again));
        assert_eq!(grads, again);
        let cl = lm.loss(&batch, denom).unwrap();
        let want = cl.to_scalar::<f32>().unwrap() as f64;
        assert!((loss - want).abs() < 1e-5 * want.abs().max(1.0), "loss {loss} vs {want}");
        let g = cl.backward().unwrap();
        let mut at = 0;
        for (name, var) in &p.vars {
            let n = var.as_tensor().elem_count();
            let auto = g.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            close(&grads[at..at + n], &auto, 2e-4, name);
            at += n;
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Large enough that every kernel and matrix product takes its parallel path.
        let shape = LmShape { vocab: 700, width: 64, layers: 1, context: 32 };
        let docs: Vec<Vec<u32>> = {
            let mut rng = crate::proxy::nn::Rng::new(2);
            (0..40).map(|_| (0..60).map(|_| (rng.next_u64() % 699) as u32 + 1).collect()).collect()
        };
        let ws = lm::windows(&docs, shape.context);
        let b = lm::HostBatch::new(&docs, &ws[..48], 0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut m = CpuLm::new(shape, 4).unwrap();
                let mut opt = AdamW::new(m.num_params(), 1e-2, 0.0);
                let (mut w, mut grads) = (Work::default(), vec![0f32; m.num_params()]);
                let mut losses = Vec::new();
                for _ in 0..3 {
                    grads.fill(0.0);
                    m.forward(&b.inputs, 48, b.len, &mut w);
                    losses.push(m.backward(&b.targets, &b.mask, 1000.0, &mut w, &mut grads));
                    opt.step(&mut m.params, &grads);
                }
                m.forward(&b.inputs, 48, b.len, &mut w);
                (losses, grads, m.params, w.logits.clone())
            })
        };
        let one = run(1);
        assert!(one == run(2) && one == run(3), "1, 2 and 3 threads give the same bits");
    }

    #[test]
    fn adamw_matches_candle() {
        use candle_nn::Optimizer;
        let shape = LmShape { vocab: 48, width: 32, layers: 1, context: 8 };
        let mut m = CpuLm::new(shape, 1).unwrap();
        let (lm, p) = m.to_candle(&Device::Cpu).unwrap();
        let mut opt = candle_nn::AdamW::new(
            p.all(),
            candle_nn::ParamsAdamW { lr: 3e-3, weight_decay: 0.1, ..Default::default() },
        )
        .unwrap();
        let mut mine = AdamW::new(m.num_params(), 3e-3, 0.1);
        let docs = docs();
        let ws = lm::windows(&docs, shape.context);
        let mut w = Work::default();
        for step in 0..4 {
            let chunk = &ws[step * 3..step * 3 + 3];
            let b = lm::batch(&docs, chunk, 0, &Device::Cpu).unwrap();
            let inputs = b.inputs.flatten_all().unwrap().to_vec1::<u32>().unwrap();
            let targets = b.targets.flatten_all().unwrap().to_vec1::<u32>().unwrap();
            let weights = b.mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let denom: usize = chunk.iter().map(|w| w.len).sum();
            m.forward(&inputs, chunk.len(), b.len, &mut w);
            let mut grads = vec![0f32; m.num_params()];
            m.backward(&targets, &weights, denom as f64, &mut w, &mut grads);
            mine.step(&mut m.params, &grads);
            opt.backward_step(&lm.loss(&b, denom as f64).unwrap()).unwrap();
        }
        let theirs: Vec<f32> =
            p.vars.iter().flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect();
        close(&m.params, &theirs, 1e-4, "parameters after 4 steps");
    }
}
