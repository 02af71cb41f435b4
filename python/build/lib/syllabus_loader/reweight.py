"""Loss-based sample reweighting (Sow et al., ICLR 2025), online in the training loop.

The same functions and results as syllabus's offline stage (src/curriculum/reweight.rs):
with a batch's per-sample losses l_i, h_i = 2δ(l_i − (l_max + l_min)/2) / max(l_max − l_min,
1e-6), δ = 1, a strategy f(h) and w_i = softmax_i(f_i / r). Weights are positive and sum to one.
"""

import math

import numpy as np

STRATEGIES = ("linupper", "quadratic", "extremes", "upper", "uniform")
_DELTA = 1.0


def _logit(strategy, h):
    if strategy == "linupper":
        return np.minimum(h + _DELTA, _DELTA)
    if strategy == "quadratic":
        return 1.0 - h * h / (_DELTA * _DELTA)
    if strategy == "extremes":
        return np.abs(h)
    if strategy == "upper":
        return 0.5 * h + 0.5 * _DELTA
    if strategy == "uniform":
        return np.zeros_like(h)
    raise ValueError(f"strategy {strategy!r}: one of {', '.join(STRATEGIES)}")


def window_weights(losses, strategy="linupper", temperature=1.0):
    """Weights of one batch (window) of per-sample losses: positive, summing to 1."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError("losses: a 1-d array of per-sample losses")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError("temperature must be positive")
    if losses.size == 0:
        return losses.copy()
    if not np.all(np.isfinite(losses)):
        raise ValueError("losses must be finite")
    lo, hi = losses.min(), losses.max()
    h = 2.0 * _DELTA * (losses - (hi + lo) / 2.0) / max(hi - lo, 1e-6)
    z = _logit(strategy, h) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def batch_weights(losses, strategy="linupper", temperature=1.0, *, step=None, burnout=1000):
    """Per-sample weights to multiply the losses by, scaled to average 1 (B·w), uniform for
    the first `burnout` steps as in the paper. Works on numpy arrays or torch tensors (the
    weights come back as the same kind, detached)."""
    torch_tensor = type(losses).__module__.startswith("torch")
    values = losses.detach().float().cpu().numpy() if torch_tensor else np.asarray(losses, dtype=np.float64)
    n = values.shape[0]
    if step is not None and step < burnout:
        w = np.ones(n)
    else:
        w = window_weights(values, strategy, temperature) * n
    if torch_tensor:
        import torch
        return torch.as_tensor(w, dtype=losses.dtype, device=losses.device)
    return w
