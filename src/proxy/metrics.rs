//! Per-prediction scores from a proxy's outputs (Paul et al. 2021; METHODS.md).
//!
//! For a prediction with logits z over K classes (or a vocabulary) and target y, p = softmax(z):
//! - EL2N: ||p − onehot(y)||₂ = sqrt(Σ p² − 2 p_y + 1), in [0, √2];
//! - loss: cross-entropy −log p_y;
//! - last-layer GraNd: the gradient of the loss with respect to the last linear layer
//!   (weights and bias) is (p − y)[h; 1]ᵀ, so its norm is EL2N · sqrt(||h||² + 1).
//!
//! Everything is computed in f64 from f32 logits, with a stable log-sum-exp.

/// Cross-entropy, EL2N, and the probabilities of one prediction.
pub struct Prediction {
    pub loss: f64,
    pub el2n: f64,
    pub probs: Vec<f64>,
}

pub fn predict(logits: &[f32], target: usize) -> Prediction {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z)) as f64;
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    let probs: Vec<f64> = logits.iter().map(|&z| (z as f64 - lse).exp()).collect();
    let loss = lse - logits[target] as f64;
    Prediction { loss, el2n: el2n(&probs, target), probs }
}

/// Cross-entropy and EL2N of one prediction in one pass over the logits, without allocating:
/// with e_i = exp(z_i − max) and S = Σ e_i, p_y = e_y / S and Σ p² = Σ e_i² / S² (sums in f64;
/// a vectorised kernel, [`crate::proxy::kernels::loss_and_el2n`]).
pub fn loss_and_el2n(logits: &[f32], target: usize) -> (f64, f64) {
    crate::proxy::kernels::loss_and_el2n(logits, &[], target)
}

/// ||p − onehot(y)||₂.
pub fn el2n(probs: &[f64], target: usize) -> f64 {
    let sq: f64 = probs.iter().map(|p| p * p).sum();
    (sq - 2.0 * probs[target] + 1.0).max(0.0).sqrt()
}

/// The closed-form gradient norm of the loss with respect to a last linear layer (weights and
/// bias) whose input was `h`.
pub fn last_layer_grand(el2n: f64, h: &[f32]) -> f64 {
    let hh: f64 = h.iter().map(|&x| x as f64 * x as f64).sum();
    el2n * (hh + 1.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn el2n_oracles() {
        // A perfect prediction gives 0; uniform over K gives sqrt(1 - 1/K); at most sqrt(2).
        assert!(el2n(&[0.0, 1.0, 0.0], 1).abs() < 1e-12);
        let u = vec![0.1; 10];
        assert!((el2n(&u, 3) - (1.0f64 - 0.1).sqrt()).abs() < 1e-12);
        assert!((el2n(&u, 3) - 0.9487).abs() < 1e-4);
        assert!((el2n(&[1.0, 0.0], 1) - 2f64.sqrt()).abs() < 1e-12);
        // From logits: equal logits are uniform.
        let p = predict(&[2.0; 10], 0);
        assert!((p.el2n - 0.9f64.sqrt()).abs() < 1e-9);
        assert!((p.loss - 10f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn one_pass_agrees_with_the_probabilities() {
        let mut rng = crate::proxy::nn::Rng::new(4);
        for _ in 0..500 {
            let logits: Vec<f32> = (0..50).map(|_| (rng.normal() * 5.0) as f32).collect();
            let y = (rng.next_u64() % 50) as usize;
            let p = predict(&logits, y);
            let (l, e) = loss_and_el2n(&logits, y);
            assert!(
                (l - p.loss).abs() < 1e-4 * (1.0 + p.loss) && (e - p.el2n).abs() < 1e-5,
                "{l} {} {e} {}",
                p.loss,
                p.el2n
            );
        }
    }

    #[test]
    fn el2n_is_bounded() {
        let mut rng = crate::proxy::nn::Rng::new(1);
        for _ in 0..2000 {
            let k = 2 + (rng.next_u64() % 20) as usize;
            let logits: Vec<f32> = (0..k).map(|_| (rng.normal() * 8.0) as f32).collect();
            let y = (rng.next_u64() % k as u64) as usize;
            let p = predict(&logits, y);
            assert!(p.el2n >= 0.0 && p.el2n <= 2f64.sqrt() + 1e-12, "{}", p.el2n);
            assert!(p.loss >= 0.0);
        }
    }
}
