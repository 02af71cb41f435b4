//! The `lm` proxy: a small causal transformer language model over token ids.
//!
//! Token and learned position embeddings, `layers` pre-norm blocks (causal multi-head
//! self-attention with heads of 32 dimensions, and a 4x MLP with GELU), a final layer norm and
//! an untied output layer with bias (the "last layer" of GraNd's closed form).
//!
//! Documents become windows: the stream `[EOS] + tokens + [EOS]` predicts every token of the
//! document and its end, n = len + 1 predictions; window k takes the predictions
//! `k·context .. (k+1)·context` with the tokens just before them as input, so windows do not
//! overlap, each prediction is scored once, and attention does not cross a window boundary.
//! A document's loss and EL2N are means over all its predictions, whatever its windows.

use candle_core::{Device, Result, Tensor, D};

use crate::proxy::nn::{LayerNorm, Linear, Params};

/// Model size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LmShape {
    pub vocab: usize,
    pub width: usize,
    pub layers: usize,
    pub context: usize,
}

struct Block {
    ln1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln2: LayerNorm,
    up: Linear,
    down: Linear,
}

pub struct Lm {
    pub shape: LmShape,
    heads: usize,
    tok: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// The output layer: logits = h · W + b.
    pub head: Linear,
}

/// One window of one document.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub doc: usize,
    /// First prediction (index into the document's predictions).
    pub start: usize,
    pub len: usize,
}

/// The windows of documents (token ids without EOS), in document order.
pub fn windows(docs: &[Vec<u32>], context: usize) -> Vec<Window> {
    let mut out = Vec::new();
    for (doc, toks) in docs.iter().enumerate() {
        let n = toks.len() + 1;
        let mut start = 0;
        while start < n {
            let len = context.min(n - start);
            out.push(Window { doc, start, len });
            start += len;
        }
    }
    out
}

/// Inputs, targets and mask of a batch of windows, padded to the longest.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    pub len: usize,
}

/// The same batch as host vectors (row-major `[windows, len]`).
#[derive(Debug, Clone, Default)]
pub struct HostBatch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub mask: Vec<f32>,
    pub len: usize,
}

impl HostBatch {
    /// Fill with the windows `ws` of `docs` (reusing the vectors).
    pub fn fill(&mut self, docs: &[Vec<u32>], ws: &[Window], eos: u32) {
        let len = ws.iter().map(|w| w.len).max().unwrap_or(1);
        self.len = len;
        self.inputs.clear();
        self.targets.clear();
        self.mask.clear();
        for w in ws {
            let toks = &docs[w.doc];
            // Stream position i: EOS at 0, then the tokens, then EOS.
            let at = |i: usize| -> u32 {
                if i == 0 || i > toks.len() {
                    eos
                } else {
                    toks[i - 1]
                }
            };
            for j in 0..len {
                if j < w.len {
                    self.inputs.push(at(w.start + j));
                    self.targets.push(at(w.start + j + 1));
                    self.mask.push(1.0);
                } else {
                    self.inputs.push(eos);
                    self.targets.push(eos);
                    self.mask.push(0.0);
                }
            }
        }
    }

    pub fn new(docs: &[Vec<u32>], ws: &[Window], eos: u32) -> Self {
        let mut b = HostBatch::default();
        b.fill(docs, ws, eos);
        b
    }

    /// Window `i`'s targets (without padding).
    pub fn targets_of(&self, i: usize, w: &Window) -> &[u32] {
        &self.targets[i * self.len..i * self.len + w.len]
    }

    /// The batch as tensors on `device`.
    pub fn to_tensors(&self, device: &Device) -> Result<Batch> {
        let shape = (self.inputs.len() / self.len.max(1), self.len);
        Ok(Batch {
            inputs: Tensor::from_slice(&self.inputs, shape, device)?,
            targets: Tensor::from_slice(&self.targets, shape, device)?,
            mask: Tensor::from_slice(&self.mask, shape, device)?,
            len: self.len,
        })
    }
}

pub fn batch(docs: &[Vec<u32>], ws: &[Window], eos: u32, device: &Device) -> Result<Batch> {
    HostBatch::new(docs, ws, eos).to_tensors(device)
}

impl Lm {
    pub fn new(shape: LmShape, p: &mut Params) -> Result<Self> {
        let d = shape.width;
        let std = 0.02;
        // Residual projections scaled down with depth (GPT-2's initialisation).
        let proj_std = std / (2.0 * shape.layers.max(1) as f64).sqrt();
        let tok = p.normal("tok", &[shape.vocab, d], std)?;
        let pos = p.normal("pos", &[shape.context, d], std)?;
        let mut blocks = Vec::with_capacity(shape.layers);
        for l in 0..shape.layers {
            blocks.push(Block {
                ln1: LayerNorm::new(p, &format!("b{l}.ln1"), d)?,
                qkv: Linear::new(p, &format!("b{l}.qkv"), d, 3 * d, std)?,
                proj: Linear::new(p, &format!("b{l}.proj"), d, d, proj_std)?,
                ln2: LayerNorm::new(p, &format!("b{l}.ln2"), d)?,
                up: Linear::new(p, &format!("b{l}.up"), d, 4 * d, std)?,
                down: Linear::new(p, &format!("b{l}.down"), 4 * d, d, proj_std)?,
            });
        }
        let ln_f = LayerNorm::new(p, "ln_f", d)?;
        let head = Linear::new(p, "head", d, shape.vocab, std)?;
        Ok(Lm { shape, heads: (d / 32).max(1), tok, pos, blocks, ln_f, head })
    }

    /// The final hidden states `[b, t, width]` (the output layer's input) and the logits
    /// `[b, t, vocab]`.
    pub fn forward(&self, inputs: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = inputs.dims2()?;
        let d = self.shape.width;
        let x = self.tok.index_select(&inputs.flatten_all()?, 0)?.reshape((b, t, d))?;
        let mut x = x.broadcast_add(&self.pos.narrow(0, 0, t)?)?;
        let nh = self.heads;
        let hd = d / nh;
        let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (t, t), inputs.device())?;
        for blk in &self.blocks {
            let h = blk.ln1.forward(&x)?;
            let qkv = blk.qkv.forward(&h)?;
            let split = |i: usize| -> Result<Tensor> {
                qkv.narrow(D::Minus1, i * d, d)?.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, d))?;
            x = (x + blk.proj.forward(&y)?)?;
            let h = blk.ln2.forward(&x)?;
            x = (x + blk.down.forward(&blk.up.forward(&h)?.gelu()?)?)?;
        }
        let h = self.ln_f.forward(&x)?;
        let logits = self.head.forward(&h)?;
        Ok((h, logits))
    }

    /// Mean token cross-entropy over the unmasked positions of a batch, divided by `denom`
    /// (the number of predictions, or a document's).
    pub fn loss(&self, batch: &Batch, denom: f64) -> Result<Tensor> {
        let (_, logits) = self.forward(&batch.inputs)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp.gather(&batch.targets.unsqueeze(D::Minus1)?, D::Minus1)?.squeeze(D::Minus1)?;
        let total = (picked * &batch.mask)?.sum_all()?;
        total.neg()? / denom
    }
}
