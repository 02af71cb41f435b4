//! The command line: clap structs are parsed here and turned into validated library settings;
//! library code never sees clap types.
//!
//! Exit codes: 0 success; 1 error; 2 usage error; 3 finished, but bad records were skipped
//! (`--on-bad-record skip`), see the summary and the rejects file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::PipelineConfig;
use crate::pipeline::{self, DsirJob, DsirRowScorer, FeatureCache, Fitted, Keep, Progress, RunReport, ScoredLake, ZipfitRowScorer};
use crate::score::dsir::{DsirModel, DsirParams, FitBudget, NgramHash};
use crate::score::zipfit::{ZipCompressor, ZipfitParams};
use crate::select::Noise;
use crate::source::{expand_inputs, inspect_file, BadRecordPolicy, InputFile, ReadOptions, RejectWriter};

#[derive(Parser)]
#[command(name = "syllabus", version, about = "Decide what a language model trains on, and in what order.")]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline described by a TOML file (see pipelines/).
    Run {
        pipeline: PathBuf,
        /// Write under this directory instead of the pipeline's out_dir.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show per file: format, rows, bytes, schema and a sample row.
    Inspect {
        #[command(flatten)]
        source: SourceArgs,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Score every document; writes id and the score columns in input order.
    #[command(subcommand)]
    Score(ScoreCommand),
    /// Select documents; writes the chosen documents with all their columns.
    #[command(subcommand)]
    Select(SelectCommand),
}

#[derive(Subcommand)]
enum ScoreCommand {
    /// ZIP-FIT alignment with a target set (zipfit: mean of 1 - NCD over the targets).
    Zipfit {
        #[command(flatten)]
        zipfit: ZipfitArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: ScoreIo,
    },
    /// DSIR log importance weights (dsir_logw) and word counts (n_words).
    Dsir {
        #[command(flatten)]
        dsir: DsirArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: ScoreIo,
    },
}

#[derive(Subcommand)]
enum SelectCommand {
    /// The k documents most aligned with the target set by ZIP-FIT (ties: earlier row).
    Zipfit {
        #[command(flatten)]
        zipfit: ZipfitArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: SelectIo,
    },
    /// Importance resampling (Gumbel top-k) on DSIR weights.
    Dsir {
        #[command(flatten)]
        dsir: DsirArgs,
        #[command(flatten)]
        source: SourceArgs,
        /// Seed of the Gumbel noise: numpy's np.random.seed(S) draws (0 <= S < 2^32).
        #[arg(long, default_value_t = 0)]
        seed: u32,
        /// Keep the k highest weights (no noise) instead of sampling.
        #[arg(long)]
        top_k: bool,
        #[command(flatten)]
        io: SelectIo,
    },
}

/// Inputs and output of a `score` command.
#[derive(Args)]
struct ScoreIo {
    /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
    #[arg(long)]
    out: PathBuf,
    /// Raw data: files, directories or globs; - for jsonl on stdin.
    #[arg(required = true)]
    raw: Vec<String>,
}

/// Inputs and outputs of a `select` command.
#[derive(Args)]
struct SelectIo {
    /// How many documents to keep (DSIR: fewer than the eligible ones; ZIP-FIT: all of them
    /// if there are fewer).
    #[arg(long)]
    k: u64,
    /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
    #[arg(long)]
    out: PathBuf,
    /// Also write every row's scores to this file.
    #[arg(long)]
    scores_out: Option<PathBuf>,
    /// Raw data: files, directories or globs; - for jsonl on stdin.
    #[arg(required = true)]
    raw: Vec<String>,
}

#[derive(Args)]
struct SourceArgs {
    /// Field (jsonl) or column (Parquet) holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the id; rows without one get FILE:LINE (jsonl) or FILE:ROW (Parquet).
    #[arg(long, default_value = "id")]
    id_field: String,
    /// What to do with a record that cannot be read.
    #[arg(long, value_enum, default_value = "fail")]
    on_bad_record: BadRecordPolicy,
    /// With --on-bad-record skip: write each rejected record here (jsonl).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Rows per batch.
    #[arg(long, default_value_t = crate::batch::DEFAULT_BATCH_ROWS)]
    batch_rows: usize,
}

impl SourceArgs {
    fn read_options(&self) -> anyhow::Result<ReadOptions> {
        if self.batch_rows == 0 {
            bail!("--batch-rows must be at least 1");
        }
        if self.rejects.is_some() && self.on_bad_record == BadRecordPolicy::Fail {
            bail!("--rejects needs --on-bad-record skip");
        }
        Ok(ReadOptions {
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            batch_rows: self.batch_rows,
            on_bad_record: self.on_bad_record,
        })
    }
}

#[derive(Args)]
struct DsirArgs {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1..)]
    target: Vec<String>,
    /// Use a saved model (from --save-model) instead of fitting.
    #[arg(long, conflicts_with_all = ["target", "buckets", "ngrams", "hash", "target_smoothing", "fit_all"])]
    model: Option<PathBuf>,
    /// Save the fitted model here (JSON), to score other files or machines identically.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Number of hash buckets.
    #[arg(long)]
    buckets: Option<u32>,
    /// Longest n-gram (2: unigrams and bigrams).
    #[arg(long)]
    ngrams: Option<usize>,
    /// Documents with fewer words are never selected.
    #[arg(long)]
    min_words: Option<u64>,
    /// sha256: the reference's buckets; fast: xxh3, not reference-compatible.
    #[arg(long, value_enum)]
    hash: Option<NgramHash>,
    /// Pseudocount added to every target bucket count before normalising.
    #[arg(long)]
    target_smoothing: Option<f64>,
    /// Count every raw n-gram (the reference stops at 100000 * buckets).
    #[arg(long)]
    fit_all: bool,
    /// Memory for keeping documents' features between the fit and the scoring pass (MiB);
    /// 0 re-tokenizes every document. Never changes a result.
    #[arg(long, default_value_t = crate::pipeline::dsir::DEFAULT_FEATURE_CACHE_MB)]
    feature_cache_mb: usize,
}

#[derive(Args)]
struct ZipfitArgs {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1.., required = true)]
    target: Vec<String>,
    /// gzip: CPython's gzip.compress lengths (the reference's); zstd: python-zstandard's;
    /// lz4: blocks, fast mode only. Default: gzip, or lz4 with --fast.
    #[arg(long, value_enum)]
    compressor: Option<ZipCompressor>,
    /// Compression level (default: gzip 6, zstd 3, zstd --fast -1; lz4: acceleration 1).
    #[arg(long, allow_negative_numbers = true)]
    level: Option<i32>,
    /// Each candidate loaded once as a dictionary (lz4, or zstd with --compressor zstd),
    /// C(x ++ t) taken as C(x) + C(t | x): much faster, approximate, not reference-compatible.
    #[arg(long)]
    fast: bool,
}

impl ZipfitArgs {
    fn params(&self) -> ZipfitParams {
        ZipfitParams::with(self.compressor, self.level, self.fast)
    }
}

impl DsirArgs {
    fn params(&self) -> DsirParams {
        let d = DsirParams::default();
        DsirParams {
            buckets: self.buckets.unwrap_or(d.buckets),
            ngrams: self.ngrams.unwrap_or(d.ngrams),
            min_words: self.min_words.unwrap_or(d.min_words),
            hash: self.hash.unwrap_or(d.hash),
            target_smoothing: self.target_smoothing.unwrap_or(d.target_smoothing),
        }
    }
}

/// Parse arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::par::init_threads(cli.threads);
    let progress = Progress::new(cli.quiet);
    let start = Instant::now();
    match cli.command {
        Command::Run { pipeline, out } => {
            let mut cfg = PipelineConfig::load(&pipeline)?;
            if cli.threads > 0 {
                cfg.threads = cli.threads;
            }
            let summary = pipeline::run(&cfg, out.as_deref(), &progress)?;
            eprintln!("syllabus run {}: {} selection", summary.name, summary.method);
            print_report(&summary.report, start, true);
            for o in &summary.outputs {
                eprintln!("  wrote {}", o.display());
            }
            Ok(exit_code(&summary.report))
        }
        Command::Inspect { source, paths } => {
            let opts = source.read_options()?;
            for f in expand_inputs(&paths)? {
                print!("{}", inspect_file(&f, &opts)?.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(ScoreCommand::Dsir { dsir, source, io }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress };
            let Fitted { model, target_stats, cache } = fit_dsir(&dsir, &opts, &raw, &progress, rejects.as_mut())?;
            let report = lake.score_to(&DsirRowScorer::new(Arc::new(model), &cache), &io.out, rejects.as_mut())?;
            finish("score dsir", &io.out, report, target_stats, rejects, start, false)
        }
        Command::Select(SelectCommand::Dsir { dsir, source, seed, top_k, io }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress };
            let Fitted { model, target_stats, cache } = fit_dsir(&dsir, &opts, &raw, &progress, rejects.as_mut())?;
            let noise = if top_k { Noise::None } else { Noise::gumbel(seed) };
            let keep = Keep { k: io.k, require_fewer_than_eligible: true };
            let scorer = DsirRowScorer::new(Arc::new(model), &cache);
            let report = lake.select_to(&scorer, keep, noise, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
            finish("select dsir", &io.out, report, target_stats, rejects, start, true)
        }
        Command::Score(ScoreCommand::Zipfit { zipfit, source, io }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress };
            let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, &progress, rejects.as_mut())?;
            let report = lake.score_to(&scorer, &io.out, rejects.as_mut())?;
            finish("score zipfit", &io.out, report, target_stats, rejects, start, false)
        }
        Command::Select(SelectCommand::Zipfit { zipfit, source, io }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress };
            let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, &progress, rejects.as_mut())?;
            let keep = Keep { k: io.k, require_fewer_than_eligible: false };
            let report = lake.select_to(&scorer, keep, Noise::None, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
            finish("select zipfit", &io.out, report, target_stats, rejects, start, true)
        }
    }
}

/// Validated read options, the expanded raw files and the rejects file of a command.
fn open_lake(source: &SourceArgs, raw: &[String]) -> anyhow::Result<(ReadOptions, Vec<InputFile>, Option<RejectWriter>)> {
    let opts = source.read_options()?;
    let raw = expand_inputs(raw)?;
    let rejects = source.rejects.as_deref().map(RejectWriter::create).transpose()?;
    Ok((opts, raw, rejects))
}

/// Print the summary of a finished command and choose its exit code.
fn finish(
    what: &str,
    out: &Path,
    mut report: RunReport,
    target_stats: Vec<crate::source::FileStats>,
    rejects: Option<RejectWriter>,
    start: Instant,
    selecting: bool,
) -> anyhow::Result<ExitCode> {
    report.target_files = target_stats;
    if let Some(r) = rejects {
        report.rejects_written = r.finish()?;
    }
    eprintln!("syllabus {what}: wrote {}", out.display());
    print_report(&report, start, selecting);
    Ok(exit_code(&report))
}

/// Fit (or load) a DSIR model; with it, the target's per-file counts and the features kept
/// for the scoring pass.
fn fit_dsir(args: &DsirArgs, opts: &ReadOptions, raw: &[InputFile], progress: &Progress, rejects: Option<&mut RejectWriter>) -> anyhow::Result<Fitted> {
    if args.model.is_none() && args.target.is_empty() {
        bail!("DSIR needs a target set (--target) or a saved model (--model)");
    }
    let target = if args.target.is_empty() { Vec::new() } else { expand_inputs(&args.target)? };
    let budget = if args.fit_all { FitBudget::All } else { FitBudget::Auto };
    let mut params = args.params();
    let loaded = args.model.as_deref().map(load_model).transpose()?;
    if let Some(m) = &loaded {
        params = DsirParams { min_words: args.min_words.unwrap_or(m.params.min_words), ..m.params.clone() };
    }
    let feature_cache_bytes = args.feature_cache_mb << 20;
    let job = DsirJob { raw, target: &target, read: opts, params: params.clone(), budget, feature_cache_bytes, progress };
    let fitted = match loaded {
        Some(m) => Fitted { model: DsirModel::try_new(params, m.raw, m.target)?, target_stats: Vec::new(), cache: FeatureCache::default() },
        None => job.fit(rejects)?,
    };
    if let Some(p) = &args.save_model {
        fitted.model.save(p)?;
    }
    Ok(fitted)
}

/// Read and compress the ZIP-FIT target set.
fn zipfit_scorer(
    args: &ZipfitArgs,
    opts: &ReadOptions,
    progress: &Progress,
    rejects: Option<&mut RejectWriter>,
) -> anyhow::Result<(ZipfitRowScorer, Vec<crate::source::FileStats>)> {
    let target = expand_inputs(&args.target)?;
    let (target, stats) = pipeline::zipfit::load_target(&target, opts, args.params(), progress, rejects)?;
    Ok((ZipfitRowScorer::new(Arc::new(target)), stats))
}

fn load_model(p: &Path) -> anyhow::Result<DsirModel> {
    DsirModel::load(p).with_context(|| format!("loading model {}", p.display()))
}

fn exit_code(report: &RunReport) -> ExitCode {
    if report.rejected() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_report(r: &RunReport, start: Instant, selecting: bool) {
    let secs = start.elapsed().as_secs_f64();
    let selected = if selecting { format!("; {} selected", r.selected) } else { String::new() };
    eprintln!(
        "  read {} rows from {} files: {} kept, {} rejected; {} eligible{selected}; {:.2} s",
        r.read(),
        r.files.len(),
        r.kept(),
        r.rejected(),
        r.eligible,
        secs
    );
    let width = r.files.iter().chain(&r.target_files).map(|f| f.file.len()).max().unwrap_or(4).max(4);
    let last = if selecting { "selected" } else { "" };
    eprintln!("  {:<width$}  {:<9} {:>9} {:>9} {:>9} {:>9}", "file", "format", "read", "kept", "rejected", last);
    for (i, f) in r.files.iter().enumerate() {
        let sel = if selecting { r.selected_per_file.get(i).copied().unwrap_or(0).to_string() } else { String::new() };
        eprintln!("  {:<width$}  {:<9} {:>9} {:>9} {:>9} {:>9}", f.file, f.format, f.read, f.kept, f.rejected, sel);
    }
    for f in &r.target_files {
        eprintln!("  {:<width$}  {:<9} {:>9} {:>9} {:>9} {:>9}", f.file, f.format, f.read, f.kept, f.rejected, "(target)");
    }
    if r.rejected() > 0 {
        eprintln!("  {} bad records were skipped ({} written to the rejects file)", r.rejected(), r.rejects_written);
    }
}
