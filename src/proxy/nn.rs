//! The small pieces proxy models are built from: a seeded parameter store, layers written with
//! differentiable candle ops, and the seeded random numbers behind initialisation and batch
//! order (candle's own CPU generator cannot be seeded, and results must not depend on it).

use candle_core::{DType, Device, Result, Tensor, Var, D};

/// SplitMix64: small, fast, and the same numbers on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_5EED_5EED_5EED)
    }

    /// The SplitMix64 stream that starts at `state` itself (k-means++'s draws).
    pub fn from_state(state: u64) -> Self {
        Rng(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Parameters, in creation order, initialised from one seed.
pub struct Params {
    pub rng: Rng,
    pub device: Device,
    pub vars: Vec<(String, Var)>,
}

impl Params {
    pub fn new(seed: u64, device: &Device) -> Self {
        Params { rng: Rng::new(seed), device: device.clone(), vars: Vec::new() }
    }

    fn var(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> Result<Tensor> {
        let v = Var::from_tensor(&Tensor::from_vec(values, shape, &self.device)?)?;
        let t = v.as_tensor().clone();
        self.vars.push((name.to_string(), v));
        Ok(t)
    }

    pub fn normal(&mut self, name: &str, shape: &[usize], std: f64) -> Result<Tensor> {
        let n = shape.iter().product();
        let values = (0..n).map(|_| (self.rng.normal() * std) as f32).collect();
        self.var(name, shape, values)
    }

    pub fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        self.var(name, shape, vec![value; n])
    }

    pub fn all(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }
}

/// `x @ w + b` over the last dimension of `x`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub w: Tensor,
    pub b: Tensor,
}

impl Linear {
    pub fn new(p: &mut Params, name: &str, fan_in: usize, fan_out: usize, std: f64) -> Result<Self> {
        Ok(Linear {
            w: p.normal(&format!("{name}.w"), &[fan_in, fan_out], std)?,
            b: p.constant(&format!("{name}.b"), &[fan_out], 0.0)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Leading dimensions folded into rows: one plain matmul, and a backward pass that does
        // not materialise a broadcast copy of the weights per batch element.
        let dims = x.dims().to_vec();
        let (rows, k) = (dims[..dims.len() - 1].iter().product::<usize>(), dims[dims.len() - 1]);
        let y = x.reshape((rows, k))?.matmul(&self.w)?.broadcast_add(&self.b)?;
        let mut out = dims;
        *out.last_mut().expect("at least one dimension") = self.w.dim(1)?;
        y.reshape(out)
    }
}

/// Layer normalisation over the last dimension, from differentiable ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
}

impl LayerNorm {
    pub fn new(p: &mut Params, name: &str, dim: usize) -> Result<Self> {
        Ok(LayerNorm {
            gamma: p.constant(&format!("{name}.g"), &[dim], 1.0)?,
            beta: p.constant(&format!("{name}.b"), &[dim], 0.0)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        normed.broadcast_mul(&self.gamma)?.broadcast_add(&self.beta)
    }
}

/// Softmax probabilities and per-row log-probabilities of `logits` `[n, k]`, as plain vectors.
pub fn probabilities(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let p = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    p.to_vec2()
}
