//! `syllabus eval`: train the same small model on each candidate at equal compute and compare.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Args;

use super::SourceArgs;
use crate::eval::{EvalParams, EvalSpec, Named};
use crate::progress::Progress;

/// The training every eval, mix and mix graph run shares: the tokenizer, the validation
/// sets, the budget, the seeds, the model and its schedule. (`tokenizer` and `tokens` are
/// required on the command line; they are options here only because `mix`'s own flags are
/// parsed, empty, when `mix graph` runs.)
#[derive(Args)]
pub(super) struct TrainArgs {
    /// The tokenizer.json every candidate and validation set is tokenized with (a curriculum's
    /// own: its manifest names it).
    #[arg(long, required = true)]
    tokenizer: Option<PathBuf>,
    /// A validation set, NAME=PATH (a file, directory or glob); repeat for more.
    #[arg(long = "valid", value_name = "NAME=PATH", value_parser = Named::parse, required = true)]
    valid: Vec<Named>,
    /// Training tokens (predictions) per run: every run trains on exactly this many,
    /// repeating its data if it is shorter.
    #[arg(long, required = true)]
    tokens: Option<u64>,
    /// Seeds per candidate or checked mixture (seed, seed + 1, ...): the same initialisation
    /// for every one.
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
    /// The model: the lm proxy's (width 64, 2 blocks, context 64, 16 windows a step, AdamW
    /// 3e-3, no weight decay).
    #[command(flatten)]
    model: super::score::ModelArgs,
    /// The learning-rate schedule, the same for every run: cosine (to --final-lr), linear,
    /// constant, or wsd (warm-up, stable, then a linear decay over --decay).
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
}

impl TrainArgs {
    pub(super) fn params(&self, average_last: Option<u32>, shuffle_sequences: bool) -> EvalParams {
        EvalParams {
            tokens: self.tokens.unwrap_or_default(),
            seeds: self.seeds,
            every: self.every,
            valid_tokens: self.valid_tokens,
            model: self.model.params(None, None),
            lr_schedule: self.lr_schedule,
            final_lr: self.final_lr,
            warmup: self.warmup,
            decay: self.decay,
            average_last,
            shuffle_sequences,
        }
    }

    pub(super) fn tokenizer(&self) -> PathBuf {
        self.tokenizer.clone().unwrap_or_default()
    }

    pub(super) fn seed(&self) -> u32 {
        self.seed
    }

    /// The validation sets as (name, paths).
    pub(super) fn valid(&self) -> Vec<(String, Vec<String>)> {
        self.valid.iter().map(|n| (n.name.clone(), vec![n.path.clone()])).collect()
    }
}

#[derive(Args)]
pub(super) struct EvalArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The raw pool the candidates were chosen from (repeat for more paths): adds KL reduction
    /// (DSIR's data metric).
    #[arg(long)]
    raw: Vec<String>,
    /// Output directory: curves.parquet, summary.csv, eval.json, curves.png.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Also validate the uniform average of the last N checkpoints' weights (the validation
    /// points; at least 2), as one more point at the end (CPU engine).
    #[arg(long, value_name = "N")]
    average_last: Option<u32>,
    /// Read curriculum candidates' packed sequences in a seeded random order (afresh each
    /// pass) instead of their manifest order: the packing kept, the order of the contexts not
    /// (In-Context Pretraining shuffles its related contexts).
    #[arg(long)]
    shuffle_sequences: bool,
    /// Model scales, WIDTHxLAYERS[:context=N][:tokens=N], comma-separated (e.g. 64x2,128x4):
    /// every candidate is trained at each (OUT/SCALE/, `:` as `_`, no `=`), and scales.csv says how far their
    /// rankings agree (pairs, Kendall's tau) and decisions.csv what each would pick.
    #[arg(long, value_delimiter = ',', value_parser = crate::eval::scales::Scale::parse)]
    scales: Vec<crate::eval::scales::Scale>,
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
        tokenizer: args.train.tokenizer(),
        candidates: args.candidates.into_iter().map(Into::into).collect(),
        valid: args.train.valid(),
        raw: args.raw,
        params: args.train.params(args.average_last, args.shuffle_sequences),
        seed: args.train.seed(),
    };
    if !args.scales.is_empty() {
        let report = crate::eval::scales::run(&spec, &args.scales, &read, &args.out, progress)?;
        for (s, r) in args.scales.iter().zip(&report.reports) {
            println!("scale {}", s.label);
            print!("{}", crate::eval::render_table(&r.summary));
        }
        print!("{}", crate::eval::scales::render(&report));
        eprintln!(
            "syllabus eval: {} scales; wrote {}/{{SCALE/, {}, {}, {}}}; {:.2} s",
            args.scales.len(),
            crate::store::output::shown(&args.out),
            crate::eval::scales::SCALES_FILE,
            crate::eval::scales::DECISIONS_FILE,
            crate::eval::scales::SCALES_JSON,
            start.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
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
