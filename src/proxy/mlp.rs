//! The `mlp` proxy: a classifier over a numeric feature vector, for labelled data (the paper's
//! setting): `layers` hidden layers of `width` units with ReLU, then a linear output layer.

use candle_core::{Device, Result, Tensor, D};

use crate::proxy::nn::{Linear, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpShape {
    pub features: usize,
    pub classes: usize,
    pub width: usize,
    pub layers: usize,
}

pub struct Mlp {
    pub shape: MlpShape,
    hidden: Vec<Linear>,
    /// The output layer: logits = h · W + b.
    pub head: Linear,
}

impl Mlp {
    pub fn new(shape: MlpShape, p: &mut Params) -> Result<Self> {
        let mut hidden = Vec::with_capacity(shape.layers);
        let mut fan_in = shape.features;
        for l in 0..shape.layers {
            // He initialisation for ReLU layers.
            hidden.push(Linear::new(p, &format!("h{l}"), fan_in, shape.width, (2.0 / fan_in as f64).sqrt())?);
            fan_in = shape.width;
        }
        let head = Linear::new(p, "head", fan_in, shape.classes, (1.0 / fan_in as f64).sqrt())?;
        Ok(Mlp { shape, hidden, head })
    }

    /// The output layer's input `[n, width]` and the logits `[n, classes]`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for l in &self.hidden {
            h = l.forward(&h)?.relu()?;
        }
        let logits = self.head.forward(&h)?;
        Ok((h, logits))
    }

    /// Mean cross-entropy of a batch.
    pub fn loss(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let (_, logits) = self.forward(x)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp.gather(&y.unsqueeze(D::Minus1)?, D::Minus1)?;
        picked.mean_all()?.neg()
    }
}

/// Rows `idx` of a feature matrix and their labels, as tensors.
pub fn batch(features: &[Vec<f32>], labels: &[u32], idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
    let f = features.first().map_or(0, Vec::len);
    let x: Vec<f32> = idx.iter().flat_map(|&i| features[i].iter().copied()).collect();
    let y: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
    Ok((Tensor::from_vec(x, (idx.len(), f), device)?, Tensor::from_vec(y, idx.len(), device)?))
}
