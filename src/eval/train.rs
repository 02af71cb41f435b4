//! Equal-compute training runs: the `lm` proxy's model trained on exactly `tokens` predictions
//! of a candidate, validated every `every` predictions.
//!
//! A step takes exactly `batch_size × context` predictions from the candidate's stream (the
//! last step what is left of the budget): windows of up to `context` predictions are cut from
//! the units in order, and a window that does not fit the step is split, its rest opening the
//! next step. So every candidate trains on the same number of predictions in the same number
//! of steps, and checkpoints fall on the same token counts for all of them. A table is shuffled
//! by the seed, afresh for every pass; a curriculum is read in its order, every pass the same.
//! Passes after the first are repeats, counted.
//!
//! The step loss is Σ weight · cross-entropy over the step's predictions, divided by their
//! number. AdamW at the proxy's learning rate under one schedule for every candidate
//! ([`Schedule`]): by default a linear warm-up over the first 5% of the steps (at least one)
//! and a cosine decay to a tenth of it at the end; or a linear decay, a constant rate, or
//! warm-up, stable and decay (WSD).

use candle_core::Device;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::data::{Kind, Streams, Unit};
use super::{Point, RunResult};
use crate::error::{Error, Result};
use crate::proxy::cpu::{self, CpuLm};
use crate::proxy::lm::{self, Lm, LmShape};
use crate::proxy::nn::{Params, Rng};
use crate::proxy::{Backend, Resolved};

fn cerr(e: candle_core::Error) -> Error {
    Error::InvalidArgument(format!("eval model: {e}"))
}

/// A piece of a unit: predictions `start .. start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub unit: usize,
    pub start: usize,
    pub len: usize,
}

/// The candidate's predictions, in training order, pass after pass.
pub struct Stream<'a> {
    units: &'a [Unit],
    kind: Kind,
    rng: Rng,
    order: Vec<usize>,
    at: usize,
    pos: usize,
    context: usize,
    /// Passes begun (1 once the first piece is taken).
    pub passes: u64,
}

impl<'a> Stream<'a> {
    pub fn new(s: &'a Streams, seed: u32, context: usize) -> Result<Self> {
        if s.predictions() == 0 {
            return Err(Error::InvalidArgument("the candidate has no tokens to train on".into()));
        }
        Ok(Stream {
            units: &s.units,
            kind: s.kind,
            rng: Rng::new(((seed as u64) << 32) | 0xE7A1),
            order: Vec::new(),
            at: 0,
            pos: 0,
            context,
            passes: 0,
        })
    }

    fn next_pass(&mut self) {
        self.order = match self.kind {
            Kind::Table => self.rng.permutation(self.units.len()),
            Kind::Curriculum => (0..self.units.len()).collect(),
        };
        self.at = 0;
        self.pos = 0;
        self.passes += 1;
    }

    /// Pieces holding exactly `want` predictions.
    pub fn take(&mut self, want: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut got = 0;
        while got < want {
            if self.at >= self.order.len() {
                self.next_pass();
            }
            let unit = self.order[self.at];
            let n = self.units[unit].predictions() as usize;
            if self.pos >= n {
                self.at += 1;
                self.pos = 0;
                continue;
            }
            // Windows start at multiples of the context within a unit, unless a step
            // boundary split one.
            let to_boundary = self.context - self.pos % self.context;
            let len = to_boundary.min(n - self.pos).min(want - got);
            out.push(Piece { unit, start: self.pos, len });
            self.pos += len;
            got += len;
        }
        out
    }
}

/// Inputs, targets and per-prediction weights (each unit's weight, or 1 where not `weighted`;
/// 0 for padding) of pieces, padded to the longest.
pub fn batch(units: &[Unit], pieces: &[Piece], weighted: bool) -> lm::HostBatch {
    let len = pieces.iter().map(|p| p.len).max().unwrap_or(1);
    let cap = pieces.len() * len;
    let mut b = lm::HostBatch {
        inputs: Vec::with_capacity(cap),
        targets: Vec::with_capacity(cap),
        mask: Vec::with_capacity(cap),
        len,
    };
    for p in pieces {
        let u = &units[p.unit];
        let t = &u.tokens[p.start..p.start + p.len + 1];
        b.inputs.extend_from_slice(&t[..p.len]);
        b.targets.extend_from_slice(&t[1..]);
        b.mask.extend(std::iter::repeat_n(if weighted { u.weight } else { 1.0 }, p.len));
        let pad = len - p.len;
        b.inputs.extend(std::iter::repeat_n(t[0], pad));
        b.targets.extend(std::iter::repeat_n(t[0], pad));
        b.mask.extend(std::iter::repeat_n(0f32, pad));
    }
    b
}

/// The model being trained: the proxy's CPU engine, or candle's model on a GPU (one per run,
/// so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Cpu { m: CpuLm, opt: cpu::AdamW, work: cpu::Work, grads: Vec<f32> },
    Candle { m: Lm, opt: AdamW, device: Device },
}

impl Model {
    pub fn new(shape: LmShape, r: &Resolved, seed: u32, backend: &Backend) -> Result<Self> {
        let device = match backend {
            Backend::Engine => {
                let m = CpuLm::new(shape, seed as u64).map_err(cerr)?;
                let opt = cpu::AdamW::new(m.num_params(), r.lr, r.weight_decay);
                let grads = vec![0f32; m.num_params()];
                return Ok(Model::Cpu { m, opt, work: cpu::Work::default(), grads });
            }
            Backend::Candle(device) => device,
        };
        let mut p = Params::new(seed as u64, device);
        let m = Lm::new(shape, &mut p).map_err(cerr)?;
        let opt = AdamW::new(p.all(), ParamsAdamW { lr: r.lr, weight_decay: r.weight_decay, ..Default::default() })
            .map_err(cerr)?;
        Ok(Model::Candle { m, opt, device: device.clone() })
    }

    /// Σ weight · cross-entropy of a batch of `rows` windows, divided by `denom`.
    pub fn loss(&mut self, b: &lm::HostBatch, rows: usize, denom: f64) -> Result<f64> {
        match self {
            Model::Cpu { m, work, .. } => {
                m.forward_unbiased(&b.inputs, rows, b.len, work);
                Ok(m.loss(&b.targets, &b.mask, denom, work))
            }
            Model::Candle { m, device, .. } => m
                .loss(&b.to_tensors(device).map_err(cerr)?, denom)
                .and_then(|l| l.to_dtype(candle_core::DType::F64))
                .and_then(|l| l.to_scalar::<f64>())
                .map_err(cerr),
        }
    }

    /// One AdamW step at learning rate `lr` on the loss of a batch.
    pub fn step(&mut self, b: &lm::HostBatch, rows: usize, denom: f64, lr: f64) -> Result<()> {
        match self {
            Model::Cpu { m, opt, work, grads } => {
                grads.fill(0.0);
                m.forward_unbiased(&b.inputs, rows, b.len, work);
                m.backward(&b.targets, &b.mask, denom, work, grads);
                opt.lr = lr;
                opt.step(&mut m.params, grads);
            }
            Model::Candle { m, opt, device } => {
                let loss = m.loss(&b.to_tensors(device).map_err(cerr)?, denom).map_err(cerr)?;
                opt.set_learning_rate(lr);
                opt.backward_step(&loss).map_err(cerr)?;
            }
        }
        Ok(())
    }

    /// Mean token cross-entropy (nats) over every prediction of `units`.
    pub fn mean_loss(&mut self, units: &[Unit], context: usize) -> Result<f64> {
        let mut pieces = Vec::new();
        for (unit, u) in units.iter().enumerate() {
            let n = u.predictions() as usize;
            let mut start = 0;
            while start < n {
                let len = context.min(n - start);
                pieces.push(Piece { unit, start, len });
                start += len;
            }
        }
        let (mut sum, mut n) = (0f64, 0u64);
        for chunk in pieces.chunks(16) {
            // Unweighted: every prediction counts once.
            sum += self.loss(&batch(units, chunk, false), chunk.len(), 1.0)?;
            n += chunk.iter().map(|p| p.len as u64).sum::<u64>();
        }
        Ok(sum / n.max(1) as f64)
    }
}

/// A learning-rate schedule's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Half a cosine from the peak to the final rate.
    #[default]
    Cosine,
    /// A straight line from the peak to the final rate.
    Linear,
    /// The peak throughout (after the warm-up).
    Constant,
    /// Warm-up, stable at the peak, then a linear decay to the final rate over the last
    /// `decay` share of the steps.
    Wsd,
}

/// A schedule with its numbers, checked.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub kind: LrSchedule,
    pub peak: f64,
    /// The rate at the last step (the peak for `constant`).
    pub final_lr: f64,
    /// Shares of the steps: warming up, and (wsd) decaying at the end.
    pub warmup: f64,
    pub decay: f64,
}

impl Schedule {
    pub fn new(kind: LrSchedule, peak: f64, final_lr: Option<f64>, warmup: f64, decay: f64) -> Result<Schedule> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(0.0..1.0).contains(&warmup) {
            return bad(format!("warmup {warmup}: a share of the steps, at least 0 and below 1"));
        }
        if !(decay > 0.0 && decay <= 1.0) {
            return bad(format!("decay {decay}: a share of the steps, above 0 and at most 1"));
        }
        if kind == LrSchedule::Constant && final_lr.is_some() {
            return bad("final_lr: a constant schedule has none".into());
        }
        let final_lr = match final_lr {
            None if kind == LrSchedule::Constant => peak,
            None => peak / 10.0,
            Some(f) if f.is_finite() && f >= 0.0 => f,
            Some(f) => return bad(format!("final_lr {f}: must be 0 or more")),
        };
        Ok(Schedule { kind, peak, final_lr, warmup, decay })
    }

    /// The default: cosine from `peak` to a tenth of it after a 5% warm-up.
    pub fn cosine(peak: f64) -> Schedule {
        Schedule { kind: LrSchedule::Cosine, peak, final_lr: peak / 10.0, warmup: 0.05, decay: 0.2 }
    }

    /// The learning rate at `step` of `steps`.
    pub fn at(&self, step: usize, steps: usize) -> f64 {
        let (lr, min) = (self.peak, self.final_lr);
        let warmup = if self.warmup > 0.0 { ((steps as f64 * self.warmup + 1e-9) as usize).max(1) } else { 0 };
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        let span = (steps - warmup).max(1) as f64;
        let progress = ((step - warmup) as f64 / span).min(1.0);
        match self.kind {
            LrSchedule::Cosine => min + 0.5 * (lr - min) * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrSchedule::Linear => lr + (min - lr) * progress,
            LrSchedule::Constant => lr,
            LrSchedule::Wsd => {
                // The last `decay` share of all the steps decays; a step there goes from lr
                // (its first) to min (the last step).
                let decay_steps = ((steps as f64 * self.decay + 1e-9) as usize).clamp(1, steps.max(1));
                let start = steps - decay_steps;
                if step < start.max(warmup) {
                    lr
                } else {
                    let d = (step - start) as f64 / (decay_steps.saturating_sub(1).max(1)) as f64;
                    lr + (min - lr) * d.min(1.0)
                }
            }
        }
    }
}

/// Train from `seed` on exactly `tokens` predictions of `cand`, validating on `valid` at
/// 0, every `every` (a multiple of the step) and `tokens`: the run's curve.
#[allow(clippy::too_many_arguments)]
pub fn train(
    shape: LmShape,
    r: &Resolved,
    schedule: &Schedule,
    average_last: Option<u32>,
    seed: u32,
    cand: &Streams,
    valid: &[&[Unit]],
    tokens: u64,
    every: u64,
    backend: &Backend,
    mut on_point: impl FnMut(u64),
) -> Result<RunResult> {
    let units = cand.units.iter().chain(valid.iter().flat_map(|v| v.iter()));
    crate::proxy::check_ids(units.map(|u| u.tokens.as_slice()), shape.vocab)?;
    let mut model = Model::new(shape, r, seed, backend)?;
    let step_tokens = (r.batch_size * r.context) as u64;
    let steps = tokens.div_ceil(step_tokens) as usize;
    let mut stream = Stream::new(cand, seed, r.context)?;
    let validate =
        |model: &mut Model| valid.iter().map(|v| model.mean_loss(v, shape.context)).collect::<Result<Vec<f64>>>();
    let mut points = vec![Point { tokens: 0, loss: validate(&mut model)? }];
    on_point(0);
    // The last `average_last` checkpoints' weights (the CPU engine's flat parameters).
    let keep = average_last.map_or(0, |n| n as usize);
    if keep > 0 && !matches!(model, Model::Cpu { .. }) {
        return Err(Error::InvalidArgument(
            "average_last: the averaged checkpoints need the CPU engine (the GPU backend keeps its weights on the device)".into(),
        ));
    }
    let mut kept: std::collections::VecDeque<Vec<f32>> = std::collections::VecDeque::new();
    let mut seen = 0u64;
    for step in 0..steps {
        let want = step_tokens.min(tokens - seen);
        let pieces = stream.take(want as usize);
        model.step(&batch(&cand.units, &pieces, true), pieces.len(), want as f64, schedule.at(step, steps))?;
        seen += want;
        if seen.is_multiple_of(every) || seen == tokens {
            points.push(Point { tokens: seen, loss: validate(&mut model)? });
            if let (true, Model::Cpu { m, .. }) = (keep > 0, &model) {
                if kept.len() == keep {
                    kept.pop_front();
                }
                kept.push_back(m.params.clone());
            }
            on_point(seen);
        }
    }
    let averaged = match &mut model {
        Model::Cpu { m, .. } if keep > 0 => {
            // Uniform average, summed in f64 in checkpoint order.
            let mut sum = vec![0f64; m.params.len()];
            for w in &kept {
                for (a, &b) in sum.iter_mut().zip(w) {
                    *a += f64::from(b);
                }
            }
            let n = kept.len() as f64;
            m.params = sum.iter().map(|&a| (a / n) as f32).collect();
            Some(Point { tokens: seen, loss: validate(&mut model)? })
        }
        _ => None,
    };
    Ok(RunResult { points, averaged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::dsir::Counts;

    fn streams(kind: Kind, lens: &[usize]) -> Streams {
        let units = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| Unit { tokens: (0..n).map(|t| (i * 100 + t) as u32).collect(), weight: 1.0 })
            .collect();
        Streams { kind, units, documents: lens.len() as u64, counts: Counts::new(1), hash: String::new() }
    }

    #[test]
    fn every_step_takes_exactly_what_it_asks_and_repeats_are_counted() {
        let s = streams(Kind::Table, &[5, 1, 9, 3]); // 4 + 0 + 8 + 2 = 14 predictions
        let mut st = Stream::new(&s, 7, 4).unwrap();
        let mut total = 0;
        for want in [6usize, 6, 6, 6, 5] {
            let pieces = st.take(want);
            assert_eq!(pieces.iter().map(|p| p.len).sum::<usize>(), want);
            assert!(pieces.iter().all(|p| p.len <= 4 && p.start + p.len <= s.units[p.unit].predictions() as usize));
            total += want;
        }
        assert_eq!(total, 29);
        // 29 predictions of a 14-prediction candidate: three passes begun.
        assert_eq!(st.passes, 3);
    }

    #[test]
    fn a_curriculum_is_read_in_order_and_a_table_is_shuffled_per_pass() {
        let c = streams(Kind::Curriculum, &[3, 3, 3, 3]);
        let mut st = Stream::new(&c, 1, 8).unwrap();
        let units: Vec<usize> = st.take(16).iter().map(|p| p.unit).collect();
        assert_eq!(units, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        let t = streams(Kind::Table, &[2; 50]);
        let mut st = Stream::new(&t, 1, 8).unwrap();
        let first: Vec<usize> = st.take(50).iter().map(|p| p.unit).collect();
        let second: Vec<usize> = st.take(50).iter().map(|p| p.unit).collect();
        assert_ne!(first, (0..50).collect::<Vec<_>>());
        assert_ne!(first, second);
        let mut sorted = second.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a pass is a permutation");
        // The same seed gives the same order.
        let mut again = Stream::new(&t, 1, 8).unwrap();
        assert_eq!(again.take(50).iter().map(|p| p.unit).collect::<Vec<_>>(), first);
    }

    #[test]
    fn batches_shift_targets_and_weight_predictions() {
        let units = vec![Unit { tokens: vec![0, 5, 6, 7, 0], weight: 2.0 }];
        let pieces = [Piece { unit: 0, start: 1, len: 3 }, Piece { unit: 0, start: 0, len: 1 }];
        let b = batch(&units, &pieces, true);
        let plain = batch(&units, &pieces, false);
        assert_eq!(b.len, 3);
        assert_eq!(plain.mask, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(b.inputs, vec![5, 6, 7, 0, 0, 0]);
        assert_eq!(b.targets, vec![6, 7, 0, 5, 0, 0]);
        assert_eq!(b.mask, vec![2.0, 2.0, 2.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn the_engine_and_candle_train_alike() {
        // Candle's path (the GPU's) on the CPU against the engine: the same curve up to rounding.
        let s = streams(Kind::Table, &[30, 12, 50, 7, 41, 22]);
        let valid: Vec<&[Unit]> = vec![&s.units[..3]];
        let r = crate::proxy::ProxyParams {
            width: Some(32),
            layers: Some(1),
            context: Some(8),
            batch_size: Some(4),
            ..Default::default()
        }
        .resolve(crate::proxy::ProxyKind::Lm)
        .unwrap();
        let shape = LmShape { vocab: 600, width: 32, layers: 1, context: 8 };
        let sched = Schedule::cosine(r.lr);
        let run = |b: Backend| train(shape, &r, &sched, None, 1, &s, &valid, 320, 64, &b, |_| {}).unwrap().points;
        let (engine, candle) = (run(Backend::Engine), run(Backend::Candle(Device::Cpu)));
        assert_eq!(engine.len(), 6);
        for (a, b) in engine.iter().zip(&candle) {
            assert_eq!(a.tokens, b.tokens);
            assert!((a.loss[0] - b.loss[0]).abs() < 1e-3 * b.loss[0], "{a:?} vs {b:?}");
        }
        assert!(engine[5].loss[0] < engine[0].loss[0], "training lowers the loss");
    }

    #[test]
    fn the_schedule_warms_up_and_decays_to_a_tenth() {
        let steps = 200;
        let c = Schedule::cosine(1.0);
        assert_eq!(Schedule::new(LrSchedule::Cosine, 1.0, None, 0.05, 0.2).unwrap(), c, "the default");
        let lr_at = |s: usize, n: usize| c.at(s, n);
        assert!((lr_at(0, steps) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, steps) - 1.0).abs() < 1e-12);
        assert!((lr_at(steps - 1, steps) - 0.1).abs() < 0.01);
        assert!((1..steps).all(|s| s < 10 || lr_at(s, steps) <= lr_at(s - 1, steps) + 1e-12));
        assert!((lr_at(0, 1) - 1.0).abs() < 1e-12);
        // Exactly the schedule eval had before schedules could be chosen (5% warm-up by whole
        // steps, cosine to a tenth), so default runs keep their numbers.
        let before = |step: usize, steps: usize| {
            let warmup = (steps / 20).max(1);
            if step < warmup {
                return (step + 1) as f64 / warmup as f64;
            }
            let progress = ((step - warmup) as f64 / (steps - warmup).max(1) as f64).min(1.0);
            0.1 + 0.5 * 0.9 * (1.0 + (std::f64::consts::PI * progress).cos())
        };
        for n in 1..600 {
            assert!((0..n).all(|s| lr_at(s, n) == before(s, n)), "{n} steps");
        }
    }

    #[test]
    fn linear_constant_and_wsd_schedules() {
        let steps = 100;
        let lin = Schedule::new(LrSchedule::Linear, 1.0, Some(0.0), 0.0, 0.2).unwrap();
        assert_eq!(lin.at(0, steps), 1.0);
        assert!((lin.at(50, steps) - 0.5).abs() < 1e-12);
        assert!((lin.at(99, steps) - 0.01).abs() < 1e-12);
        let k = Schedule::new(LrSchedule::Constant, 0.3, None, 0.05, 0.2).unwrap();
        assert!((k.at(0, steps) - 0.06).abs() < 1e-12, "warms up");
        assert!((5..steps).all(|s| k.at(s, steps) == 0.3));
        // WSD: 5 warm-up steps, stable to step 79, the last 20 steps decay to 0.1.
        let w = Schedule::new(LrSchedule::Wsd, 1.0, None, 0.05, 0.2).unwrap();
        assert!((w.at(4, steps) - 1.0).abs() < 1e-12);
        assert!((5..80).all(|s| w.at(s, steps) == 1.0));
        assert_eq!(w.at(80, steps), 1.0);
        assert!((w.at(99, steps) - 0.1).abs() < 1e-12);
        assert!((81..steps).all(|s| w.at(s, steps) < w.at(s - 1, steps)));
        // Bad settings.
        assert!(Schedule::new(LrSchedule::Constant, 1.0, Some(0.1), 0.05, 0.2).is_err());
        assert!(Schedule::new(LrSchedule::Wsd, 1.0, None, 1.0, 0.2).is_err());
        assert!(Schedule::new(LrSchedule::Wsd, 1.0, None, 0.05, 0.0).is_err());
        assert!(Schedule::new(LrSchedule::Cosine, 1.0, Some(-1.0), 0.05, 0.2).is_err());
    }
}
