//! `syllabus eval`: train the same small model on each candidate at equal compute and compare.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Args;

use super::SourceArgs;
use crate::eval::{EvalParams, EvalSpec, Named};
use crate::progress::Progress;

#[derive(Args)]
pub(super) struct EvalArgs {
    /// The tokenizer.json every candidate and validation set is tokenized with (a curriculum's
    /// own: its manifest names it).
    #[arg(long)]
    tokenizer: PathBuf,
    /// A validation set, NAME=PATH (a file, directory or glob); repeat for more.
    #[arg(long = "valid", value_name = "NAME=PATH", value_parser = Named::parse, required = true)]
    valid: Vec<Named>,
    /// Training tokens (predictions) per candidate and seed: every candidate trains on exactly
    /// this many, repeating itself if it is shorter.
    #[arg(long)]
    tokens: u64,
    /// Seeds per candidate (seed, seed + 1, ...): the same initialisation for every candidate.
    #[arg(long, default_value_t = crate::eval::default_seeds())]
    seeds: u32,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Validate every K tokens (rounded up to whole steps); default: ten points.
    #[arg(long, value_name = "K")]
    every: Option<u64>,
    /// At most this many predictions of each validation set (whole documents in file order).
    #[arg(long, default_value_t = crate::eval::default_valid_tokens())]
    valid_tokens: u64,
    /// The raw pool the candidates were chosen from (repeat for more paths): adds KL reduction
    /// (DSIR's data metric).
    #[arg(long)]
    raw: Vec<String>,
    /// Output directory: curves.parquet, summary.csv, eval.json, curves.png.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// The model: the lm proxy's (width 64, 2 blocks, context 64, 16 windows a step, AdamW
    /// 3e-3, no weight decay).
    #[command(flatten)]
    model: super::score::ModelArgs,
    /// The learning-rate schedule, the same for every candidate: cosine (to --final-lr),
    /// linear, constant, or wsd (warm-up, stable, then a linear decay over --decay).
    #[arg(long, value_enum, default_value = "cosine")]
    lr_schedule: crate::eval::train::LrSchedule,
    /// The learning rate at the end (default: a tenth of --lr; not with constant).
    #[arg(long)]
    final_lr: Option<f64>,
    /// The share of the steps the rate warms up over.
    #[arg(long, default_value_t = crate::eval::default_warmup())]
    warmup: f64,
    /// wsd: the share of the steps, at the end, the rate decays over.
    #[arg(long, default_value_t = crate::eval::default_decay())]
    decay: f64,
    /// Also validate the uniform average of the last N checkpoints' weights (the validation
    /// points; at least 2), as one more point at the end (CPU engine).
    #[arg(long, value_name = "N")]
    average_last: Option<u32>,
    #[command(flatten)]
    source: SourceArgs,
    /// NAME=PATH: a document table (file, directory, glob; `text` and, where present, `weight`),
    /// a syllabus output directory (its selected.parquet), or a curriculum directory (its
    /// manifest's shards, in order, with their weights). The first is the baseline of "sooner".
    #[arg(required = true, value_name = "CANDIDATE", value_parser = Named::parse)]
    candidates: Vec<Named>,
}

impl EvalArgs {
    pub(super) fn stage_outputs(&mut self, o: &mut crate::store::output::Outputs) -> crate::error::Result<()> {
        o.stage_in_place(&mut self.out)?;
        self.source.stage_outputs(o)
    }
}

pub(super) fn eval_command(args: EvalArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    if args.source.rejects.is_some() {
        bail!("eval writes no rejects file: leave out --rejects (bad records are skipped and counted with --on-bad-record skip)");
    }
    let read = args.source.read_options()?;
    let spec = EvalSpec {
        tokenizer: args.tokenizer,
        candidates: args.candidates,
        valid: args.valid.into_iter().map(|n| (n.name, vec![n.path])).collect(),
        raw: args.raw,
        params: EvalParams {
            tokens: args.tokens,
            seeds: args.seeds,
            every: args.every,
            valid_tokens: args.valid_tokens,
            model: args.model.params(None, None),
            lr_schedule: args.lr_schedule,
            final_lr: args.final_lr,
            warmup: args.warmup,
            decay: args.decay,
            average_last: args.average_last,
        },
        seed: args.seed,
    };
    let report = crate::eval::run(&spec, &read, &args.out, progress)?;
    print!("{}", crate::eval::render_table(&report.summary));
    print_done(&args.out, &report, start);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_done(out: &std::path::Path, report: &crate::eval::EvalReport, start: Instant) {
    for r in report.summary.iter().filter(|r| !r.final_loss_mean.is_finite()) {
        eprintln!(
            "warning: candidate {} diverged on {} (final loss {}): try a lower --lr",
            r.candidate, r.valid, r.final_loss_mean
        );
    }
    let s = &report.settings;
    let runs = report.candidates.len() * s.seeds as usize;
    let resumed = if report.resumed_runs > 0 {
        format!(" ({} kept from an interrupted run)", report.resumed_runs)
    } else {
        String::new()
    };
    eprintln!(
        "syllabus eval: {} candidates x {} seeds = {runs} runs{resumed} of {} tokens, validated every {}; wrote {}/{{{}, {}, {}, {}}}; {:.2} s",
        report.candidates.len(),
        s.seeds,
        s.tokens,
        s.every,
        crate::store::output::shown(out),
        crate::eval::CURVES_FILE,
        crate::eval::SUMMARY_FILE,
        crate::eval::EVAL_FILE,
        crate::eval::PLOT_FILE,
        start.elapsed().as_secs_f64()
    );
}
