//! `syllabus score ...` and `syllabus select ...`: the scoring and selection commands.
//!
//! The scoring methods' subcommands (`score dsir`, `select zipfit`, ...) come from the
//! registry ([`crate::methods`]): one generic command each for scoring and selecting, on this
//! machine or with `--cluster`. The proxy scores (`score el2n|grand|loss`) and keeping by a
//! score column (`select --scores ... --by`) are their own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{finish, open_lake, SourceArgs};
use crate::methods::{FitLake, Method, Sampling};
use crate::passes::work::Work;
use crate::passes::{RunReport, ScoredLake};
use crate::progress::Progress;
use crate::select::Noise;
use crate::source::{expand_inputs, InputFile, ReadOptions, RejectWriter};
use crate::store::output::Outputs;

/// The proxy model of `score el2n|grand|loss`.
#[derive(Args)]
pub(super) struct ProxyArgs {
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
    #[command(flatten)]
    model: ModelArgs,
    /// Training passes, fractions allowed (lm 1, mlp 10); 0 scores at initialisation.
    #[arg(long)]
    epochs: Option<f64>,
    /// Independent initialisations whose scores are averaged (3).
    #[arg(long)]
    seeds: Option<u32>,
    /// The first seed; seed + 1, ... for the others.
    #[arg(long, default_value_t = 0)]
    seed: u32,
}

/// A proxy model's shape and optimizer (`score el2n|grand|loss`, and `eval`'s lm).
#[derive(Args)]
pub(super) struct ModelArgs {
    /// Hidden width (lm 64, mlp 128).
    #[arg(long)]
    width: Option<usize>,
    /// Transformer blocks (lm, 2) or hidden layers (mlp, 1).
    #[arg(long)]
    layers: Option<usize>,
    /// lm: tokens per window (64); longer documents are read as consecutive windows.
    #[arg(long)]
    context: Option<usize>,
    /// Windows (lm, 16) or rows (mlp, 64) per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate (lm 3e-3, mlp 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
}

impl ModelArgs {
    pub(super) fn params(&self, epochs: Option<f64>, seeds: Option<u32>) -> crate::proxy::ProxyParams {
        crate::proxy::ProxyParams {
            width: self.width,
            layers: self.layers,
            context: self.context,
            epochs,
            seeds,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
        }
    }
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
            model: self.model.params(self.epochs, self.seeds),
        }
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct SelectArgs {
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
    /// Keep every row whose score is below X, e.g. `--by contam_ngrams --below 1` drops the
    /// rows that match a benchmark.
    #[arg(long, value_name = "X", group = "rule", allow_negative_numbers = true)]
    below: Option<f64>,
    /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// Raw data: files, directories or globs.
    #[arg(required = true)]
    raw: Vec<String>,
}

impl ScoreCommand {
    /// Store outputs written to a local staging path first ([`crate::store::output`]).
    pub(super) fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        match self {
            ScoreCommand::Method(m) => m.stage_outputs(o),
            ScoreCommand::Cluster { settings, terms_out, source, io, .. } => {
                source.stage_outputs(o)?;
                o.stage_opt(&mut settings.save_model)?;
                o.stage_opt(terms_out)?;
                o.stage_in_place(&mut io.out)
            }
            ScoreCommand::Dedup { source, io, .. }
            | ScoreCommand::El2n { source, io, .. }
            | ScoreCommand::Grand { source, io, .. }
            | ScoreCommand::Loss { source, io, .. } => {
                source.stage_outputs(o)?;
                o.stage_in_place(&mut io.out)
            }
        }
    }
}

impl SelectIo {
    fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        o.stage_in_place(&mut self.out)?;
        o.stage_opt(&mut self.scores_out)
    }
}

impl SelectArgs {
    /// Store outputs written to a local staging path first ([`crate::store::output`]).
    pub(super) fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        o.stage_opt(&mut self.out)?;
        self.source.stage_outputs(o)?;
        match &mut self.method {
            Some(m) => m.stage_outputs(o),
            None => Ok(()),
        }
    }

    fn rule(&self) -> anyhow::Result<crate::select::rule::Rule> {
        use crate::select::rule::Rule;
        let rule = match (self.keep_max, self.keep_min, self.offset, &self.band, self.below) {
            (Some(k), None, None, None, None) => Rule::KeepMax(k),
            (None, Some(k), None, None, None) => Rule::KeepMin(k),
            (None, None, Some(skip), None, None) => Rule::Offset { skip, keep: self.k.context("--offset needs --k")? },
            (None, None, None, Some(b), None) => Rule::Band { lo: b[0], hi: b[1] },
            (None, None, None, None, Some(x)) => Rule::Below(x),
            _ => bail!("choose one rule: --keep-max, --keep-min, --offset with --k, --band or --below"),
        };
        rule.validate().map_err(anyhow::Error::msg)?;
        Ok(rule)
    }
}

#[derive(Subcommand)]
pub(super) enum ScoreCommand {
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
    /// Exact and near duplicates (MinHash-LSH): dup_exact, dup_cluster, dup_count, dup_keep.
    Dedup {
        #[command(flatten)]
        settings: crate::dedup::DedupSettings,
        #[command(flatten)]
        source: SourceArgs,
        /// Run on a cluster (`syllabus cluster`): df://HOST:PORT. Same output, byte for byte.
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
        #[command(flatten)]
        io: ScoreIo,
    },
    /// Clusters: spherical k-means over TF-IDF vectors of hashed unigrams and bigrams;
    /// cluster, cluster_dist (cosine distance to its centroid), cluster_rank (1 = nearest).
    Cluster {
        #[command(flatten)]
        settings: crate::kmeans::ClusterSettings,
        /// Also write one row per cluster here: its size, top terms and nearest documents.
        #[arg(long, value_name = "FILE")]
        terms_out: Option<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        /// Assign the rows on a cluster (`syllabus cluster`): df://HOST:PORT. The fit runs
        /// here (give --model to skip it). Same output, byte for byte.
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
        #[command(flatten)]
        io: ScoreIo,
    },
    /// The scoring methods of the registry: `score dsir`, `score zipfit`, ...
    #[command(flatten)]
    Method(MethodScore),
}

/// `select METHOD`: dedup, or a method of the registry.
#[derive(Subcommand)]
pub(super) enum SelectCommand {
    /// The lake without its duplicates: the first row of each exact or near-duplicate cluster.
    Dedup {
        #[command(flatten)]
        settings: crate::dedup::DedupSettings,
        #[command(flatten)]
        source: SourceArgs,
        /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
        #[arg(long)]
        out: PathBuf,
        /// Also write every row's dup_exact, dup_cluster, dup_count and dup_keep here.
        #[arg(long)]
        scores_out: Option<PathBuf>,
        /// Raw data: files, directories or globs.
        #[arg(required = true)]
        raw: Vec<String>,
    },
    /// k rows balanced over clusters (Diversify and Conquer): a budget per cluster, then the
    /// best rows by --by (or a seeded draw) within each.
    ClusterBalanced {
        /// Cluster tables (`syllabus score cluster`), joined to the lake by id.
        #[arg(long, required = true, num_args = 1..)]
        clusters: Vec<String>,
        /// Rows to keep.
        #[arg(long)]
        k: u64,
        /// How k is split: equal, size (size^alpha) or mean (the cluster's mean --by score).
        #[arg(long, value_enum, default_value = "equal")]
        budget: crate::kmeans::balance::BudgetRule,
        #[arg(long, default_value_t = 1.0)]
        alpha: f64,
        /// Within a cluster, the highest of this score first (from --scores, or the cluster
        /// tables); without it, a seeded uniform draw.
        #[arg(long, value_name = "COLUMN")]
        by: Option<String>,
        /// Score tables holding --by (default: the cluster tables).
        #[arg(long, num_args = 1..)]
        scores: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        source: SourceArgs,
        /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
        #[arg(long)]
        out: PathBuf,
        /// Raw data: files, directories or globs.
        #[arg(required = true)]
        raw: Vec<String>,
    },
    /// D4: every row but the share of each cluster nearest its centroid (the most redundant).
    D4 {
        /// Cluster tables (`syllabus score cluster`), joined to the lake by id.
        #[arg(long, required = true, num_args = 1..)]
        clusters: Vec<String>,
        /// The share of each cluster to drop, nearest the centroid first.
        #[arg(long, default_value_t = 0.2)]
        drop: f64,
        #[command(flatten)]
        source: SourceArgs,
        /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
        #[arg(long)]
        out: PathBuf,
        /// Raw data: files, directories or globs.
        #[arg(required = true)]
        raw: Vec<String>,
    },
    #[command(flatten)]
    Method(Box<MethodSelect>),
}

impl SelectCommand {
    fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        match self {
            SelectCommand::Method(m) => m.stage_outputs(o),
            SelectCommand::Dedup { source, out, scores_out, .. } => {
                source.stage_outputs(o)?;
                o.stage_in_place(out)?;
                o.stage_opt(scores_out)
            }
            SelectCommand::ClusterBalanced { source, out, .. } | SelectCommand::D4 { source, out, .. } => {
                source.stage_outputs(o)?;
                o.stage_in_place(out)
            }
        }
    }

    fn run(self, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
        match self {
            SelectCommand::Method(m) => m.run(progress, start),
            SelectCommand::Dedup { settings, source, out, scores_out, raw } => {
                dedup_command(&settings, &source, &raw, &out, scores_out.as_deref(), true, progress, start)
            }
            SelectCommand::ClusterBalanced { clusters, k, budget, alpha, by, scores, seed, source, out, raw } => {
                let b = crate::kmeans::Balanced { k, budget, alpha, by, seed };
                let (opts, raw, mut rejects) = open_lake(&source, &raw)?;
                let table = crate::kmeans::balanced_table(&expand_inputs(&clusters)?, b.by.as_deref(), &scores)?;
                let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: None };
                let (report, budgets) = crate::kmeans::select_balanced(&lake, &table, &b, rejects.as_mut(), &out)?;
                let used = budgets.iter().filter(|&&n| n > 0).count();
                eprintln!("  budgets: {} rows over {used} of {} clusters", budgets.iter().sum::<u64>(), budgets.len());
                finish("select cluster-balanced", &out, report, Vec::new(), rejects, start, true)
            }
            SelectCommand::D4 { clusters, drop, source, out, raw } => {
                let (opts, raw, mut rejects) = open_lake(&source, &raw)?;
                let table = crate::kmeans::d4_table(&expand_inputs(&clusters)?)?;
                let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: None };
                let report = crate::kmeans::select_d4(&lake, &table, drop, rejects.as_mut(), &out)?;
                finish("select d4", &out, report, Vec::new(), rejects, start, true)
            }
        }
    }
}

/// Inputs and output of a `score` command.
#[derive(Args, Debug)]
pub(super) struct ScoreIo {
    /// Output file: .parquet (default), .jsonl, .jsonl.zst or .jsonl.gz.
    #[arg(long)]
    out: PathBuf,
    /// Raw data: files, directories or globs; - for jsonl on stdin.
    #[arg(required = true)]
    raw: Vec<String>,
}

/// Inputs and outputs of a `select` command.
#[derive(Args, Debug)]
pub(super) struct SelectIo {
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

/// `score METHOD`: its settings, the lake, the output; `--cluster` where the method runs there.
#[derive(Args)]
pub(super) struct ScoreWith<M: Method> {
    #[command(flatten)]
    settings: M::Settings,
    #[command(flatten)]
    source: SourceArgs,
    /// Run on a cluster (`syllabus cluster`): df://HOST:PORT. Same output, byte for byte.
    #[arg(long, value_name = "df://HOST:PORT", hide = !M::INFO.cluster)]
    cluster: Option<String>,
    #[command(flatten)]
    io: ScoreIo,
}

/// `select METHOD`: its settings, how to draw, the lake, the outputs.
#[derive(Args)]
pub(super) struct SelectWith<M: Method> {
    #[command(flatten)]
    settings: M::Settings,
    #[command(flatten)]
    source: SourceArgs,
    /// Seed of the Gumbel noise: numpy's np.random.seed(S) draws (0 <= S < 2^32) [default: 0].
    #[arg(long, hide = matches!(M::INFO.sampling, Sampling::TopK))]
    seed: Option<u32>,
    /// Keep the k highest weights (no noise) instead of sampling.
    #[arg(long, hide = !matches!(M::INFO.sampling, Sampling::Gumbel { top_k_option: true }))]
    top_k: bool,
    /// Run on a cluster (`syllabus cluster`): df://HOST:PORT. Same output, byte for byte.
    #[arg(long, value_name = "df://HOST:PORT", hide = !M::INFO.cluster)]
    cluster: Option<String>,
    #[command(flatten)]
    io: SelectIo,
}

/// Store outputs are written to local staging paths first ([`crate::store::output`]): the
/// method's own (`--save-model`), the rejects file and the output(s).
fn stage_method_outputs<M: Method>(
    settings: &mut M::Settings,
    source: &mut SourceArgs,
    o: &mut Outputs,
) -> crate::error::Result<()> {
    for p in M::outputs(settings) {
        o.stage_opt(p)?;
    }
    source.stage_outputs(o)
}

impl<M: Method> ScoreWith<M> {
    fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        stage_method_outputs::<M>(&mut self.settings, &mut self.source, o)?;
        o.stage_in_place(&mut self.io.out)
    }
}

impl<M: Method> SelectWith<M> {
    fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        stage_method_outputs::<M>(&mut self.settings, &mut self.source, o)?;
        self.io.stage_outputs(o)
    }
}

macro_rules! method_commands {
    ($($variant:ident: $method:ty),* $(,)?) => {
        /// `score METHOD` for every method of the registry.
        #[derive(Subcommand)]
        pub(super) enum MethodScore {
            $(
                #[command(about = <$method as Method>::INFO.score_about, hide = !<$method as Method>::INFO.score_command)]
                $variant(ScoreWith<$method>),
            )*
        }

        /// `select METHOD` for every method of the registry.
        #[derive(Subcommand)]
        pub(super) enum MethodSelect {
            $(
                #[command(about = <$method as Method>::INFO.select_about)]
                $variant(SelectWith<$method>),
            )*
        }

        impl MethodScore {
            fn run(self, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
                match self {
                    $(MethodScore::$variant(a) => score_with::<$method>(a, progress, start),)*
                }
            }

            fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
                match self {
                    $(MethodScore::$variant(a) => a.stage_outputs(o),)*
                }
            }
        }

        impl MethodSelect {
            fn run(self, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
                match self {
                    $(MethodSelect::$variant(a) => select_with::<$method>(a, progress, start),)*
                }
            }

            fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
                match self {
                    $(MethodSelect::$variant(a) => a.stage_outputs(o),)*
                }
            }
        }
    };
}
crate::methods::for_each_method!(method_commands);

pub(super) fn score_command(cmd: ScoreCommand, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    match cmd {
        ScoreCommand::Method(m) => m.run(progress, start),
        ScoreCommand::Dedup { settings, source, cluster: Some(url), io } => {
            dedup_on_cluster(&url, &settings, &source, &io, progress, start)
        }
        ScoreCommand::Dedup { settings, source, cluster: None, io } => {
            dedup_command(&settings, &source, &io.raw, &io.out, None, false, progress, start)
        }
        ScoreCommand::Cluster { settings, terms_out, source, cluster, io } => {
            cluster_command(&settings, terms_out, cluster.as_deref(), &source, &io, progress, start)
        }
        ScoreCommand::El2n { proxy, source, io } => {
            score_proxy(crate::proxy::ScoreKind::El2n, proxy.spec(false), &source, &io, progress, start)
        }
        ScoreCommand::Grand { proxy, last_layer, source, io } => {
            score_proxy(crate::proxy::ScoreKind::Grand, proxy.spec(last_layer), &source, &io, progress, start)
        }
        ScoreCommand::Loss { proxy, source, io } => {
            score_proxy(crate::proxy::ScoreKind::Loss, proxy.spec(false), &source, &io, progress, start)
        }
    }
}

pub(super) fn select_command(args: SelectArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    if let Some(m) = args.method {
        return m.run(progress, start);
    }
    let rule = args.rule()?;
    let by = args.by.clone().expect("required");
    let out = args.out.clone().expect("required");
    let (opts, raw, mut rejects) = open_lake(&args.source, &args.raw)?;
    let scores = crate::select::rule::read_scores(&expand_inputs(&args.scores)?, &by)?;
    let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: None };
    let report = lake.select_by_rule(&scores, &by, rule, &out, rejects.as_mut())?;
    finish(&format!("select by {by}"), &out, report, Vec::new(), rejects, start, true)
}

/// `score METHOD`: fit, then write every row's scores; resumable ([`crate::passes::work`]).
fn score_with<M: Method>(a: ScoreWith<M>, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    let name = M::INFO.name;
    if !M::INFO.score_command {
        bail!("{name} gives no scores of its own: run `syllabus select {name}`");
    }
    M::validate(&a.settings)?;
    let what = format!("score {name}");
    if let Some(url) = &a.cluster {
        return on_cluster::run::<M>(url, &a.settings, None, &a.source, &a.io.raw, &a.io.out, progress, start);
    }
    let key = format!("{:?} {:?} {:?}", a.settings, a.source, a.io);
    let Opened { opts, raw, work, mut rejects, fitted } =
        open_and_fit::<M>(&a.settings, &a.source, &a.io.raw, &a.io.out, &what, key, progress)?;
    let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
    let mut report = lake.score_to(fitted.scorer.as_ref(), &a.io.out, rejects.as_mut())?;
    report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
    work.map(Work::finish).transpose()?;
    finish(&what, &a.io.out, report, fitted.target_stats, rejects, start, false)
}

/// A resumable `score` or `select` command's lake, work and rejects ([`open_resumable`]), with
/// its method fitted (the fit keeps its progress in the work directory).
struct Opened {
    opts: ReadOptions,
    raw: Vec<InputFile>,
    work: Option<Work>,
    rejects: Option<RejectWriter>,
    fitted: crate::methods::Fitted,
}

fn open_and_fit<M: Method>(
    settings: &M::Settings,
    source: &SourceArgs,
    raw_inputs: &[String],
    out: &Path,
    what: &str,
    key: String,
    progress: &Progress,
) -> anyhow::Result<Opened> {
    let (opts, raw, work, mut rejects) =
        open_resumable(source, raw_inputs, out, what, key, M::target(settings), M::model(settings))?;
    let fit = FitLake { raw: &raw, read: &opts, progress, work: work.as_ref(), counts: None };
    let fitted = crate::methods::fit::<M>(settings, &fit, rejects.as_mut())?;
    Ok(Opened { opts, raw, work, rejects, fitted })
}

/// `select METHOD`: fit, then keep k rows by the method's score and draw; resumable.
fn select_with<M: Method>(a: SelectWith<M>, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    let name = M::INFO.name;
    let seed = crate::methods::draw(&M::INFO, a.seed, a.top_k)?;
    M::validate(&a.settings)?;
    crate::methods::check_k(a.io.k)?;
    let what = format!("select {name}");
    if let Some(url) = &a.cluster {
        if a.io.scores_out.is_some() {
            bail!("--scores-out is not available with --cluster: run `syllabus score {name} --cluster` for every row's scores");
        }
        let job = Some((a.io.k, seed));
        return on_cluster::run::<M>(url, &a.settings, job, &a.source, &a.io.raw, &a.io.out, progress, start);
    }
    let key = format!("{:?} {:?} {:?} {:?}", a.settings, a.source, a.io, seed);
    let Opened { opts, raw, work, mut rejects, fitted } =
        open_and_fit::<M>(&a.settings, &a.source, &a.io.raw, &a.io.out, &what, key, progress)?;
    let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
    let keep = M::INFO.keep(a.io.k);
    let noise = seed.map_or(Noise::None, Noise::gumbel);
    let mut report =
        lake.select_to(fitted.scorer.as_ref(), keep, noise, &a.io.out, a.io.scores_out.as_deref(), rejects.as_mut())?;
    report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
    work.map(Work::finish).transpose()?;
    finish(&what, &a.io.out, report, fitted.target_stats, rejects, start, true)
}

/// `score dedup` (`selecting`: false; the per-row table to `out`) and `select dedup` (the kept
/// rows to `out`, the per-row table to `scores_out`); resumable: the signatures of finished
/// files are kept in `OUT.work`.
#[allow(clippy::too_many_arguments)]
fn dedup_command(
    settings: &crate::dedup::DedupSettings,
    source: &SourceArgs,
    raw_inputs: &[String],
    out: &Path,
    scores_out: Option<&Path>,
    selecting: bool,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    settings.validate()?;
    let what = if selecting { "select dedup" } else { "score dedup" };
    // Memory changes where the join sorts, never the signatures kept: a run killed for its
    // memory resumes with a smaller limit.
    let key = format!("{:?} {source:?}", crate::dedup::DedupSettings { memory_limit: 0, ..settings.clone() });
    let (opts, raw, work, mut rejects) = open_resumable(source, raw_inputs, out, what, key, &[], None)?;
    if selecting && raw.iter().any(|f| f.name == "-") {
        bail!("select dedup reads the lake twice: give it files, not stdin (or run `score dedup`)");
    }
    // A lake from stdin has no work directory of its own: its signatures go to a temporary one.
    let (work, _tmp) = work_or_temp(work, what)?;
    let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: Some(&work) };
    let found = crate::dedup::find(&lake, settings, rejects.as_mut())?;
    let files = found.files.clone();
    let table = if selecting { scores_out } else { Some(out) };
    let outcome = found.decide(&lake, settings, table)?;
    let mut report = outcome.report.run_report(files);
    if selecting {
        crate::dedup::write_kept(&lake, &report.files, outcome.removed, out)?;
    }
    report.resumed = work.resumed.clone();
    work.finish()?;
    crate::dedup::print_report(what, &outcome.report);
    super::finish(what, out, report, Vec::new(), rejects, start, selecting)
}

/// The run's work directory, or a temporary one (kept alive by the second value) for a run
/// that has none of its own.
fn work_or_temp(work: Option<Work>, what: &str) -> anyhow::Result<(Work, Option<tempfile::TempDir>)> {
    Ok(match work {
        Some(w) => (w, None),
        None => {
            let tmp = tempfile::tempdir().context("a temporary work directory")?;
            (Work::at(tmp.path().join("run.work"), what.into())?, Some(tmp))
        }
    })
}

/// `score cluster`: fit (or load) the k-means model, assign every row, rank within clusters;
/// resumable: the model and the finished files' assignments are kept in `OUT.work`.
fn cluster_command(
    settings: &crate::kmeans::ClusterSettings,
    terms_out: Option<PathBuf>,
    cluster: Option<&str>,
    source: &SourceArgs,
    io: &ScoreIo,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    settings.validate()?;
    let what = "score cluster";
    // A run on a cluster keeps no file's assignments: it resumes its own fit, never a local
    // run's finished files (nor their rejects).
    let key = format!("{} {source:?} on_cluster={}", settings.resume_key(), cluster.is_some());
    let (opts, raw, work, mut rejects) =
        open_resumable(source, &io.raw, &io.out, what, key, &[], settings.model.as_deref())?;
    if raw.iter().any(|f| f.name == "-") {
        bail!("score cluster reads the lake once per pass: give it files, not stdin");
    }
    let (work, _tmp) = work_or_temp(work, what)?;
    let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: Some(&work) };
    // Reach the cluster before the fit, not after it.
    let assigner = crate::pipeline::Assigner::connect(cluster)?;
    let (model, fit) = crate::kmeans::model_for(&lake, settings)?;
    let (mut report, mut clusters) =
        assigner.assign(&lake, model, settings.memory_limit, rejects.as_mut(), &io.out, terms_out.as_deref())?;
    clusters.fit = fit;
    report.resumed = work.resumed.clone();
    work.finish()?;
    crate::kmeans::print_report(&clusters);
    finish(what, &io.out, report, Vec::new(), rejects, start, false)
}

/// `score dedup --cluster`: signatures and joins on the cluster, components here.
fn dedup_on_cluster(
    url: &str,
    settings: &crate::dedup::DedupSettings,
    source: &SourceArgs,
    io: &ScoreIo,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (url, settings, source, io, progress, start);
        bail!("this syllabus was built without the `cluster` feature")
    }
    #[cfg(feature = "cluster")]
    {
        settings.validate()?;
        let read = source.read_options()?;
        let files = expand_inputs(&io.raw)?;
        crate::sink::OutFormat::from_path(&io.out)?;
        let (report, dedup, rejects) = crate::cluster::jobs::run_dedup(
            url,
            settings,
            &files,
            &read,
            progress,
            &io.out,
            source.rejects.as_deref(),
        )?;
        crate::dedup::print_report("score dedup", &dedup);
        super::finish("score dedup", &io.out, report, Vec::new(), rejects, start, false)
    }
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
    // Finished seeds are kept beside the output; the tokenizer is an input too.
    let settings = format!("{kind:?} {spec:?} {source:?} {io:?}");
    let (opts, raw, work, mut rejects) =
        open_resumable(source, &io.raw, &io.out, "score proxy", settings, &spec.train_on, spec.tokenizer.as_deref())?;
    let keep = work.as_ref().map(Work::keep_seeds).transpose()?;
    let seeds = spec.model.resolve(spec.proxy)?.seeds;
    let kept = keep.map_or(0, |k| k.kept(spec.seed, seeds));
    let (scores, files) = spec.score(kind, &raw, &opts, rejects.as_mut(), progress, keep)?;
    scores.write(&io.out)?;
    if kept > 0 {
        eprintln!(
            "syllabus score {}: resumed an interrupted run: kept the scores of {kept} of {seeds} seeds",
            kind.column()
        );
    }
    work.map(Work::finish).transpose()?;
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

/// What [`open_resumable`] gives: how to read, the lake, the work directory, the rejects.
type Resumable = (ReadOptions, Vec<InputFile>, Option<Work>, Option<RejectWriter>);

/// The lake of a resumable command, its work directory and its rejects file
/// ([`Work::open`]); `target` and `extra_input` (a saved model, a tokenizer) are inputs of the
/// run's key besides the lake.
fn open_resumable(
    source: &SourceArgs,
    raw_inputs: &[String],
    out: &Path,
    command: &str,
    settings: String,
    target: &[String],
    extra_input: Option<&Path>,
) -> anyhow::Result<Resumable> {
    let opts = source.read_options()?;
    let (raw, work, rejects) =
        Work::open(raw_inputs, out, command, settings, target, extra_input, source.rejects.as_deref())?;
    Ok((opts, raw, work, rejects))
}

/// The `--cluster` paths of `score METHOD` and `select METHOD` ([`crate::cluster`]).
mod on_cluster {
    use std::path::Path;
    use std::process::ExitCode;
    use std::time::Instant;

    use super::super::SourceArgs;
    use crate::methods::Method;
    use crate::progress::Progress;

    /// Fit with the lake's counts made on the cluster, then score every row there (`select`:
    /// None) or keep k rows with the Gumbel seed (`select`: Some((k, seed))).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run<M: Method>(
        url: &str,
        settings: &M::Settings,
        select: Option<(u64, Option<u32>)>,
        source: &SourceArgs,
        raw: &[String],
        out: &Path,
        progress: &Progress,
        start: Instant,
    ) -> anyhow::Result<ExitCode> {
        let name = M::INFO.name;
        if !M::INFO.cluster {
            anyhow::bail!("{name} runs on one machine: drop --cluster");
        }
        #[cfg(not(feature = "cluster"))]
        {
            let _ = (url, settings, select, source, raw, out, progress, start);
            anyhow::bail!("this syllabus was built without the `cluster` feature")
        }
        #[cfg(feature = "cluster")]
        {
            let read = source.read_options()?;
            let files = crate::source::expand_inputs(raw)?;
            crate::sink::OutFormat::from_path(out)?;
            let rejects = source.rejects.as_deref();
            let (report, target_stats, rejects) =
                crate::cluster::jobs::run_method::<M>(url, settings, select, &files, &read, progress, out, rejects)?;
            let what = format!("{} {name}", if select.is_some() { "select" } else { "score" });
            super::super::finish(&what, out, report, target_stats, rejects, start, select.is_some())
        }
    }
}
