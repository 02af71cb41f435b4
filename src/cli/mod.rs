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
use crate::pipeline::{
    self, DsirJob, DsirRowScorer, FeatureCache, Fitted, Keep, Progress, RunReport, ScoredLake, ZipfitRowScorer,
};
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

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Select documents; writes the chosen documents with all their columns. With --scores,
    /// keep them by any score column and a rule; or select with a method (dsir, zipfit).
    Select(Box<SelectArgs>),
    /// Build a curriculum from a document table: order, mix, reweight, tokenize, pack and
    /// write shards with a manifest (the [tokenize], [order], [schedule], [reweight] and
    /// [output] stages of a pipeline).
    Curriculum(Box<CurriculumArgs>),
    /// Re-read every shard of a curriculum and check it against its manifest.
    Verify {
        /// The curriculum's directory (where manifest.json is).
        dir: PathBuf,
    },
    /// Tokenizers.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// SQL over documents, scores, selections and curricula (DataFusion): an interactive shell,
    /// or -c QUERY / -f FILE. Paths become tables: a syllabus output directory gives selected,
    /// scores, curriculum, rejects, phases, shards and sequences; any jsonl(.gz/.zst) or
    /// Parquet file or directory gives a table named after it.
    Sql(Box<SqlArgs>),
    /// Serve a curriculum to the trainer ranks of this node: verify its shards, stage them
    /// once into shared memory, take the trainer's reports and steer the mixture (DUMP,
    /// Skill-It). Runs until SIGINT/SIGTERM, then removes the segment. Ranks attach with the
    /// Python client `syllabus_loader` (python/).
    Serve(Box<ServeArgs>),
}

#[derive(Args)]
struct ServeArgs {
    /// The curriculum's directory (where manifest.json is).
    dir: PathBuf,
    /// Serve under syllabus-<uid>-NAME instead of a name derived from the manifest (to serve
    /// one curriculum to two trainers at once).
    #[arg(long)]
    name: Option<String>,
    /// The feedback rule (default: the pipeline's [feedback] rule, else none).
    #[arg(long, value_enum)]
    feedback: Option<crate::loader::feedback::Rule>,
    /// Reports are due every N global batches.
    #[arg(long)]
    every: Option<u64>,
    /// A decision applies this many global batches after its report.
    #[arg(long)]
    lag: Option<u64>,
    /// DUMP's softmax temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Skill-It's step size.
    #[arg(long)]
    eta: Option<f64>,
    /// The decision log (default: mixture_log.jsonl in the curriculum's directory).
    #[arg(long)]
    log: Option<PathBuf>,
    /// File mode of the shared-memory segment, its lock and its socket (octal).
    #[arg(long, default_value = "600")]
    mode: String,
    /// copy: the tokens into shared memory; map: ranks map the (verified) shard files, for
    /// curricula larger than shared memory.
    #[arg(long, value_enum, default_value = "copy")]
    stage: crate::loader::segment::StageMode,
}

#[derive(Args)]
struct SqlArgs {
    /// Run these statements (separated by ;) and exit.
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    command: Option<String>,
    /// Run the statements of this file and exit.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: crate::sql::SqlFormat,
    /// Write results here (csv, json, parquet).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// A saved DSIR model for dsir_logw(text) (default: an output directory's dsir_model.json).
    #[arg(long)]
    dsir_model: Option<PathBuf>,
    /// A target set for zipfit(text) (files, directories, globs).
    #[arg(long, num_args = 1..)]
    zipfit_target: Vec<String>,
    /// Memory for sorts, joins and aggregations before they spill to disk (MiB).
    #[arg(long, default_value_t = 2048)]
    memory_limit_mb: usize,
    /// Output directories, files or directories of data.
    paths: Vec<PathBuf>,
}

/// The proxy model of `score el2n|grand|loss`.
#[derive(Args)]
struct ProxyArgs {
    #[arg(long, value_enum)]
    proxy: crate::proxy::ProxyKind,
    /// lm: the tokenizer.json.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// mlp: the feature column (a list of numbers).
    #[arg(long)]
    features: Option<String>,
    /// mlp: the integer label column.
    #[arg(long)]
    label: Option<String>,
    /// Train on these instead of the candidate pool (e.g. target-domain text for perplexity
    /// filtering).
    #[arg(long, num_args = 1..)]
    train_on: Vec<String>,
    /// Hidden width (lm 64, mlp 128).
    #[arg(long)]
    width: Option<usize>,
    /// Transformer blocks (lm, 2) or hidden layers (mlp, 1).
    #[arg(long)]
    layers: Option<usize>,
    /// lm: tokens per window (64); longer documents are scored over consecutive windows.
    #[arg(long)]
    context: Option<usize>,
    /// Training passes, fractions allowed (lm 1, mlp 10); 0 scores at initialisation.
    #[arg(long)]
    epochs: Option<f64>,
    /// Independent initialisations whose scores are averaged (3).
    #[arg(long)]
    seeds: Option<u32>,
    /// Windows (lm, 16) or rows (mlp, 64) per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate (lm 3e-3, mlp 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// The first seed; seed + 1, ... for the others.
    #[arg(long, default_value_t = 0)]
    seed: u32,
}

impl ProxyArgs {
    fn spec(&self, last_layer: bool) -> crate::proxy::ProxySpec {
        crate::proxy::ProxySpec {
            proxy: self.proxy,
            tokenizer: self.tokenizer.clone(),
            features: self.features.clone(),
            label: self.label.clone(),
            train_on: self.train_on.clone(),
            last_layer,
            seed: self.seed,
            model: crate::proxy::ProxyParams {
                width: self.width,
                layers: self.layers,
                context: self.context,
                epochs: self.epochs,
                seeds: self.seeds,
                batch_size: self.batch_size,
                lr: self.lr,
                weight_decay: self.weight_decay,
            },
        }
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct SelectArgs {
    #[command(subcommand)]
    method: Option<SelectCommand>,
    /// Score tables with `id` and the column (what `syllabus score` writes), joined by id.
    #[arg(long, num_args = 1.., required = true)]
    scores: Vec<String>,
    /// The score column: el2n, grand, loss, dsir_logw, zipfit, or any numeric column.
    #[arg(long, required = true)]
    by: Option<String>,
    /// Keep the K highest (a count, or a fraction like 0.5).
    #[arg(long, value_parser = crate::select::rule::Amount::parse, group = "rule")]
    keep_max: Option<crate::select::rule::Amount>,
    /// Keep the K lowest.
    #[arg(long, value_parser = crate::select::rule::Amount::parse, group = "rule")]
    keep_min: Option<crate::select::rule::Amount>,
    /// Skip the H highest (likely label noise), then keep --k.
    #[arg(long, value_parser = crate::select::rule::Amount::parse, group = "rule", requires = "k")]
    offset: Option<crate::select::rule::Amount>,
    /// With --offset: how many to keep after the skipped ones.
    #[arg(long, value_parser = crate::select::rule::Amount::parse, requires = "offset")]
    k: Option<crate::select::rule::Amount>,
    /// Keep the quantile band [LO, HI) of the scores, e.g. --band 0.25 0.75.
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], group = "rule", allow_negative_numbers = true)]
    band: Option<Vec<f64>>,
    /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// Raw data: files, directories or globs.
    #[arg(required = true)]
    raw: Vec<String>,
}

impl SelectArgs {
    fn rule(&self) -> anyhow::Result<crate::select::rule::Rule> {
        use crate::select::rule::Rule;
        let rule = match (self.keep_max, self.keep_min, self.offset, &self.band) {
            (Some(k), None, None, None) => Rule::KeepMax(k),
            (None, Some(k), None, None) => Rule::KeepMin(k),
            (None, None, Some(skip), None) => Rule::Offset { skip, keep: self.k.context("--offset needs --k")? },
            (None, None, None, Some(b)) => Rule::Band { lo: b[0], hi: b[1] },
            _ => bail!("choose one rule: --keep-max, --keep-min, --offset with --k, or --band"),
        };
        rule.validate().map_err(anyhow::Error::msg)?;
        Ok(rule)
    }
}

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer on a lake and write it as tokenizer.json.
    Train {
        /// Vocabulary size, special tokens (<|endoftext|>, <pad>) included.
        #[arg(long)]
        vocab_size: usize,
        /// Merges need at least this many occurrences.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        #[arg(required = true)]
        inputs: Vec<String>,
    },
}

#[derive(Args)]
struct CurriculumArgs {
    /// A Hugging Face tokenizer.json.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Tokens per sequence.
    #[arg(long)]
    seq_len: u32,
    /// End-of-document token (default: <|endoftext|>, </s>, <eos>, ... whichever it has).
    #[arg(long)]
    eos: Option<String>,
    /// Padding token (default: <pad>, <|pad|> or [PAD], else the EOS token).
    #[arg(long)]
    pad: Option<String>,
    #[arg(long, value_enum, default_value = "concat")]
    packing: crate::curriculum::Packing,
    /// Ordering within each domain.
    #[arg(long, value_enum, default_value = "input")]
    order: crate::curriculum::OrderMethod,
    /// The score column to order by (ascending, descending, folding).
    #[arg(long)]
    by: Option<String>,
    /// Folding passes L.
    #[arg(long, default_value_t = 3)]
    fold_passes: usize,
    #[arg(long, default_value_t = 256)]
    sort_memory_mb: usize,
    /// Domain of each document from this column.
    #[arg(long, conflicts_with = "domain")]
    domain_field: Option<String>,
    /// NAME=PATH: the files of a domain (file, directory or glob); repeat per domain.
    #[arg(long)]
    domain: Vec<String>,
    /// Token budget T (default: every document once).
    #[arg(long)]
    budget_tokens: Option<u64>,
    /// START:DOMAIN=SHARE,DOMAIN=SHARE: a phase of the schedule from START (a fraction of T);
    /// repeat per phase, e.g. --phase 0:web=0.7,code=0.3 --phase 0.8:web=0.3,code=0.7.
    #[arg(long)]
    phase: Vec<String>,
    /// Move linearly between phase mixtures.
    #[arg(long)]
    interpolate: bool,
    #[arg(long, value_enum, default_value = "stop")]
    on_exhausted: crate::curriculum::Exhausted,
    /// Per-sample weights from this loss column (Sow et al.).
    #[arg(long)]
    reweight_by: Option<String>,
    #[arg(long, value_enum, default_value = "linupper")]
    strategy: crate::curriculum::Strategy,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Documents per reweighting window.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Shard formats (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "syllabus")]
    format: Vec<crate::curriculum::ShardFormat>,
    /// Tokens per shard (rounded down to whole sequences).
    #[arg(long, default_value_t = 1 << 23)]
    shard_tokens: u64,
    /// Seed of random orderings.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// The document table: files, directories or globs (e.g. a selection's output).
    inputs: Vec<String>,
}

impl CurriculumArgs {
    fn spec(&self) -> anyhow::Result<crate::curriculum::CurriculumSpec> {
        use crate::curriculum::*;
        let mut phases = Vec::new();
        for p in &self.phase {
            let (start, mix) =
                p.split_once(':').with_context(|| format!("--phase {p:?}: expected START:DOMAIN=SHARE,..."))?;
            let start: f64 = start.trim().parse().with_context(|| format!("--phase {p:?}: bad start"))?;
            let mut mixture = indexmap::IndexMap::new();
            for part in mix.split(',').filter(|s| !s.trim().is_empty()) {
                let (d, w) = part.split_once('=').with_context(|| format!("--phase {p:?}: expected DOMAIN=SHARE"))?;
                let w: f64 = w.trim().parse().with_context(|| format!("--phase {p:?}: bad share for {d}"))?;
                mixture.insert(d.trim().to_string(), w);
            }
            phases.push(PhaseConfig { start, mixture });
        }
        if phases.is_empty() && (self.budget_tokens.is_some() || self.interpolate) {
            bail!("--budget-tokens and --interpolate need at least one --phase");
        }
        let spec = CurriculumSpec {
            seed: self.seed,
            reweight: self.reweight_by.as_ref().map(|by| ReweightConfig {
                by: by.clone(),
                strategy: self.strategy,
                temperature: self.temperature,
                window: self.window,
            }),
            schedule: (!phases.is_empty()).then(|| ScheduleConfig {
                tokens: self.budget_tokens,
                interpolate: self.interpolate,
                on_exhausted: self.on_exhausted,
                phases,
            }),
            order: OrderConfig {
                method: self.order,
                by: self.by.clone(),
                passes: self.fold_passes,
                sort_memory_mb: self.sort_memory_mb,
            },
            tokenize: TokenizeConfig {
                tokenizer: self.tokenizer.clone(),
                seq_len: self.seq_len,
                eos: self.eos.clone(),
                pad: self.pad.clone(),
                packing: self.packing,
            },
            output: OutputConfig { formats: self.format.clone(), shard_tokens: self.shard_tokens },
        };
        spec.validate()?;
        Ok(spec)
    }

    fn source(&self) -> anyhow::Result<crate::config::SourceConfig> {
        let mut domains = indexmap::IndexMap::new();
        for d in &self.domain {
            let (name, path) = d.split_once('=').with_context(|| format!("--domain {d:?}: expected NAME=PATH"))?;
            domains.entry(name.to_string()).or_insert_with(Vec::new).push(path.to_string());
        }
        if self.inputs.is_empty() && domains.is_empty() {
            bail!("no inputs: give the document table's files (or --domain NAME=PATH)");
        }
        Ok(crate::config::SourceConfig {
            paths: self.inputs.clone(),
            domain_field: self.domain_field.clone(),
            domains,
            text_field: self.source.text_field.clone(),
            id_field: self.source.id_field.clone(),
            on_bad_record: self.source.on_bad_record,
            batch_rows: self.source.batch_rows,
        })
    }
}

#[derive(Subcommand)]
enum ScoreCommand {
    /// EL2N from proxy models (mean over seeds; lm: mean per-token EL2N), with loss (and n_tokens).
    El2n {
        #[command(flatten)]
        proxy: ProxyArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: ScoreIo,
    },
    /// GraNd: the norm of the gradient of each row's loss over all parameters (exact), or
    /// over the output layer in closed form with --last-layer; with el2n, loss (and n_tokens).
    Grand {
        #[command(flatten)]
        proxy: ProxyArgs,
        /// The closed form over the output layer (weights and bias) instead of every parameter.
        #[arg(long)]
        last_layer: bool,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: ScoreIo,
    },
    /// Loss: mean token cross-entropy (log perplexity) under a proxy lm, or the classifier's
    /// cross-entropy; with el2n (and n_tokens).
    Loss {
        #[command(flatten)]
        proxy: ProxyArgs,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        io: ScoreIo,
    },
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
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause only where the message does not already say it.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
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
            if let Some(method) = summary.method {
                eprintln!("syllabus run {}: {method} selection", summary.name);
                print_report(&summary.report, start, true);
            }
            if let Some(t) = &summary.curriculum {
                print_totals(&summary.name, t, start);
            }
            let out_dir = out.as_deref().unwrap_or(&cfg.out_dir);
            for o in &summary.outputs {
                eprintln!("  wrote {}", out_dir.join(o).display());
            }
            let curriculum_rejects = summary.curriculum.as_ref().map_or(0, |t| t.rejected);
            if curriculum_rejects > 0 {
                eprintln!("  {curriculum_rejects} bad records were skipped");
                return Ok(ExitCode::from(3));
            }
            Ok(exit_code(&summary.report))
        }
        Command::Curriculum(args) => {
            let spec = args.spec()?;
            let source = args.source()?;
            let read = source.read_options();
            let (files, domains) = source.lake()?;
            let config = serde_json::json!({ "source": source, "curriculum": spec });
            let tok_bytes = std::fs::read(&spec.tokenize.tokenizer)
                .with_context(|| format!("reading {}", spec.tokenize.tokenizer.display()))?;
            let key = crate::shard::manifest::json_hash(&serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "config": config,
                "inputs": crate::curriculum::inputs_fingerprint(&files),
                "tokenizer": xxhash_rust::xxh3::xxh3_128(&tok_bytes).to_string(),
            }));
            let work = crate::curriculum::begin_work(&args.out, &key)?;
            let rejects = args.source.rejects.clone();
            let manifest = crate::curriculum::Build {
                spec: &spec,
                config,
                files: &files,
                read: &read,
                domains,
                out: &args.out,
                work: &work,
                rejects: rejects.as_deref(),
                progress: &progress,
            }
            .run()?;
            print_totals("curriculum", &manifest.totals, start);
            eprintln!("  wrote {}", args.out.join(crate::shard::manifest::MANIFEST_FILE).display());
            if manifest.totals.rejected > 0 {
                eprintln!("  {} bad records were skipped", manifest.totals.rejected);
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql(args) => sql_command(*args, cli.quiet),
        Command::Serve(args) => serve_command(*args, cli.quiet),
        Command::Verify { dir } => {
            let r = crate::shard::verify::verify(&dir)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            if r.problems.is_empty() {
                eprintln!(
                    "syllabus verify {}: {} files, {} sequences, {} tokens: all good",
                    dir.display(),
                    r.files,
                    r.sequences,
                    r.tokens
                );
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &r.problems {
                    eprintln!("  problem: {p}");
                }
                bail!("{} problems in {}", r.problems.len(), dir.display())
            }
        }
        Command::Tokenizer(TokenizerCommand::Train { vocab_size, min_frequency, out, source, inputs }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &inputs)?;
            let opts_train = crate::tokenize::TrainOptions { vocab_size, min_frequency };
            let r = crate::tokenize::train(&raw, &opts, &opts_train, rejects.as_mut(), &out)?;
            if let Some(w) = rejects {
                w.finish()?;
            }
            eprintln!(
                "syllabus tokenizer train: {} documents, vocabulary {}; wrote {} ({:.2} s)",
                r.documents,
                r.vocab_size,
                out.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
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
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress, file_column: None };
            let Fitted { model, target_stats, cache } = fit_dsir(&dsir, &opts, &raw, &progress, rejects.as_mut())?;
            let report = lake.score_to(&DsirRowScorer::new(Arc::new(model), &cache), &io.out, rejects.as_mut())?;
            finish("score dsir", &io.out, report, target_stats, rejects, start, false)
        }
        Command::Score(ScoreCommand::El2n { proxy, source, io }) => {
            score_proxy(crate::proxy::ScoreKind::El2n, proxy.spec(false), &source, &io, &progress, start)
        }
        Command::Score(ScoreCommand::Grand { proxy, last_layer, source, io }) => {
            score_proxy(crate::proxy::ScoreKind::Grand, proxy.spec(last_layer), &source, &io, &progress, start)
        }
        Command::Score(ScoreCommand::Loss { proxy, source, io }) => {
            score_proxy(crate::proxy::ScoreKind::Loss, proxy.spec(false), &source, &io, &progress, start)
        }
        Command::Score(ScoreCommand::Zipfit { zipfit, source, io }) => {
            let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress, file_column: None };
            let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, &progress, rejects.as_mut())?;
            let report = lake.score_to(&scorer, &io.out, rejects.as_mut())?;
            finish("score zipfit", &io.out, report, target_stats, rejects, start, false)
        }
        Command::Select(args) if args.method.is_none() => {
            let rule = args.rule()?;
            let by = args.by.clone().expect("required");
            let out = args.out.clone().expect("required");
            let (opts, raw, mut rejects) = open_lake(&args.source, &args.raw)?;
            let scores = crate::select::rule::read_scores(&expand_inputs(&args.scores)?, &by)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress, file_column: None };
            let report = lake.select_by_rule(&scores, &by, rule, &out, rejects.as_mut())?;
            finish(&format!("select by {by}"), &out, report, Vec::new(), rejects, start, true)
        }
        Command::Select(args) => match args.method.expect("a method") {
            SelectCommand::Dsir { dsir, source, seed, top_k, io } => {
                let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
                let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress, file_column: None };
                let Fitted { model, target_stats, cache } = fit_dsir(&dsir, &opts, &raw, &progress, rejects.as_mut())?;
                let noise = if top_k { Noise::None } else { Noise::gumbel(seed) };
                let keep = Keep { k: io.k, require_fewer_than_eligible: true };
                let scorer = DsirRowScorer::new(Arc::new(model), &cache);
                let report =
                    lake.select_to(&scorer, keep, noise, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
                finish("select dsir", &io.out, report, target_stats, rejects, start, true)
            }
            SelectCommand::Zipfit { zipfit, source, io } => {
                let (opts, raw, mut rejects) = open_lake(&source, &io.raw)?;
                let lake = ScoredLake { raw: &raw, read: &opts, progress: &progress, file_column: None };
                let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, &progress, rejects.as_mut())?;
                let keep = Keep { k: io.k, require_fewer_than_eligible: false };
                let report =
                    lake.select_to(&scorer, keep, Noise::None, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
                finish("select zipfit", &io.out, report, target_stats, rejects, start, true)
            }
        },
    }
}

fn sql_command(args: SqlArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use crate::sql::{Output, Session, SqlOptions};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let opts = SqlOptions {
            paths: args.paths.clone(),
            dsir_model: args.dsir_model.clone(),
            zipfit_target: args.zipfit_target.clone(),
            memory_limit_mb: args.memory_limit_mb,
        };
        let session = Session::new(&opts).await?;
        let mut out = Output::new(args.format, args.output.as_deref())?;
        let script = match (&args.command, &args.file) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(f)) => Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?),
            (None, None) if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                Some(s)
            }
            _ => None,
        };
        match script {
            Some(script) => {
                crate::sql::run_script(&session, &script, &mut out).await?;
                out.finish()?;
            }
            None => sql_shell(&session, &mut out, quiet).await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The interactive shell: statements end with `;`; `\d`, `\d TABLE`, `\q`; Ctrl-C cancels
/// the running query (or the statement being typed), Ctrl-D leaves.
async fn sql_shell(session: &crate::sql::Session, out: &mut crate::sql::Output, quiet: bool) -> anyhow::Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".syllabus_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    if !quiet {
        eprintln!("syllabus sql: {} tables; \\d lists them, \\d NAME describes one, \\q quits; end statements with ;", session.table_names().len());
    }
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "syllabus> " } else { "     ...> " };
        match rl.readline(prompt) {
            Ok(line) => {
                let t = line.trim();
                if buf.is_empty() && t.starts_with('\\') {
                    let _ = rl.add_history_entry(t);
                    let mut parts = t.split_whitespace();
                    match (parts.next(), parts.next()) {
                        (Some("\\q"), _) => break,
                        (Some("\\d"), name) => match session.describe(name).await {
                            Ok(s) => print!("{s}"),
                            Err(e) => eprintln!("error: {e}"),
                        },
                        _ => eprintln!("unknown command {t}: \\d, \\d TABLE, \\q"),
                    }
                    continue;
                }
                buf.push_str(&line);
                buf.push('\n');
                if !t.ends_with(';') {
                    continue;
                }
                let _ = rl.add_history_entry(buf.trim());
                for stmt in crate::sql::split_statements(&buf) {
                    tokio::select! {
                        r = session.run(&stmt, out) => match r {
                            Ok(n) => if !quiet { eprintln!("({n} rows)") },
                            Err(e) => eprintln!("error: {e}"),
                        },
                        _ = tokio::signal::ctrl_c() => eprintln!("cancelled"),
                    }
                }
                buf.clear();
            }
            Err(ReadlineError::Interrupted) => buf.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// `score el2n|grand|loss`: train the proxies, score every row, write the table.
fn score_proxy(
    kind: crate::proxy::ScoreKind,
    spec: crate::proxy::ProxySpec,
    source: &SourceArgs,
    io: &ScoreIo,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let (opts, raw, mut rejects) = open_lake(source, &io.raw)?;
    let (scores, files) = spec.score(kind, &raw, &opts, rejects.as_mut(), progress)?;
    scores.write(&io.out)?;
    let t = scores.timing;
    let unit = if spec.proxy == crate::proxy::ProxyKind::Lm { "tokens" } else { "rows" };
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    eprintln!(
        "syllabus score {}: trained on {} {unit} in {:.2} s ({:.0} {unit}/s), scored {} {unit} in {:.2} s ({:.0} {unit}/s)",
        kind.column(),
        t.train_examples,
        t.train_secs,
        rate(t.train_examples, t.train_secs),
        t.score_examples,
        t.score_secs,
        rate(t.score_examples, t.score_secs)
    );
    let report = RunReport {
        eligible: scores.ids.len() as u64,
        selected_per_file: vec![0; files.len()],
        files,
        ..Default::default()
    };
    finish(&format!("score {}", kind.column()), &io.out, report, Vec::new(), rejects, start, false)
}

/// Validated read options, the expanded raw files and the rejects file of a command.
fn open_lake(
    source: &SourceArgs,
    raw: &[String],
) -> anyhow::Result<(ReadOptions, Vec<InputFile>, Option<RejectWriter>)> {
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
fn fit_dsir(
    args: &DsirArgs,
    opts: &ReadOptions,
    raw: &[InputFile],
    progress: &Progress,
    rejects: Option<&mut RejectWriter>,
) -> anyhow::Result<Fitted> {
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
    let job =
        DsirJob { raw, target: &target, read: opts, params: params.clone(), budget, feature_cache_bytes, progress };
    let fitted = match loaded {
        Some(m) => Fitted {
            model: DsirModel::try_new(params, m.raw, m.target)?,
            target_stats: Vec::new(),
            cache: FeatureCache::default(),
        },
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

fn print_totals(what: &str, t: &crate::shard::manifest::Totals, start: Instant) {
    eprintln!(
        "syllabus {what}: curriculum of {} documents, {} tokens in {} sequences ({} padding) across {} shards; {:.2} s",
        t.documents,
        t.tokens,
        t.sequences,
        t.padding_tokens,
        t.shards,
        start.elapsed().as_secs_f64()
    );
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
        eprintln!(
            "  {:<width$}  {:<9} {:>9} {:>9} {:>9} {:>9}",
            f.file, f.format, f.read, f.kept, f.rejected, "(target)"
        );
    }
    if r.rejected() > 0 {
        eprintln!("  {} bad records were skipped ({} written to the rejects file)", r.rejected(), r.rejects_written);
    }
}

fn serve_command(a: ServeArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use crate::loader::feedback::FeedbackConfig;
    let manifest = crate::shard::manifest::Manifest::load(&a.dir)?;
    let mut fb: FeedbackConfig = match manifest.config.get("feedback") {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone())
            .map_err(|e| anyhow::anyhow!("{}: manifest's [feedback]: {e}", a.dir.display()))?,
        _ => FeedbackConfig::default(),
    };
    if let Some(r) = a.feedback {
        fb.rule = r;
    }
    fb.every = a.every.unwrap_or(fb.every);
    fb.lag = a.lag.unwrap_or(fb.lag);
    fb.temperature = a.temperature.unwrap_or(fb.temperature);
    fb.eta = a.eta.unwrap_or(fb.eta);
    let mode = u32::from_str_radix(&a.mode, 8)
        .ok()
        .filter(|m| *m <= 0o777 && m & 0o600 == 0o600)
        .ok_or_else(|| anyhow::anyhow!("--mode {}: an octal file mode that lets the owner read and write, e.g. 600 or 660", a.mode))?;
    let opts = crate::loader::serve::ServeOptions { dir: a.dir, name: a.name, feedback: fb, log: a.log, mode, stage: a.stage };
    crate::loader::serve::serve(opts, |r| {
        // One JSON line on stdout says it is ready (scripts and tests wait for it).
        println!("{}", serde_json::to_string(r).expect("ready serializes"));
        if !quiet {
            eprintln!(
                "syllabus serve: {} sequences ({} MB) in {}; feedback {}{}; stop with Ctrl-C",
                r.sequences,
                r.bytes >> 20,
                r.segment.display(),
                serde_json::to_value(r.rule).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                r.replaced_stale_pid.map(|p| format!("; replaced a stale segment of pid {p}")).unwrap_or_default()
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
