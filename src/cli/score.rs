//! `syllabus score ...` and `syllabus select ...`: the scoring and selection commands.

use crate::passes::work::Work;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{finish, open_lake, SourceArgs};
use crate::passes::{self, DsirJob, DsirRowScorer, FeatureCache, Fitted, Keep, RunReport, ScoredLake, ZipfitRowScorer};
use crate::progress::Progress;
use crate::score::dsir::{DsirModel, DsirParams, FitBudget, NgramHash};
use crate::score::zipfit::{ZipCompressor, ZipfitParams};
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
            ScoreCommand::Dsir { dsir, source, io } => {
                o.stage_opt(&mut dsir.save_model)?;
                source.stage_outputs(o)?;
                o.stage_in_place(&mut io.out)
            }
            ScoreCommand::El2n { source, io, .. }
            | ScoreCommand::Grand { source, io, .. }
            | ScoreCommand::Loss { source, io, .. }
            | ScoreCommand::Zipfit { source, io, .. } => {
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
            Some(SelectCommand::Zipfit { source, io, .. }) | Some(SelectCommand::Random { source, io, .. }) => {
                source.stage_outputs(o)?;
                io.stage_outputs(o)
            }
            Some(SelectCommand::Dsir { dsir, source, io, .. }) => {
                o.stage_opt(&mut dsir.save_model)?;
                source.stage_outputs(o)?;
                io.stage_outputs(o)
            }
            None => Ok(()),
        }
    }

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
pub(super) enum SelectCommand {
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
    /// k documents drawn uniformly at random without replacement (Gumbel top-k on equal
    /// weights, numpy's draws): the baseline a selection method should beat.
    Random {
        #[command(flatten)]
        source: SourceArgs,
        /// Seed of the draws (0 <= S < 2^32).
        #[arg(long, default_value_t = 0)]
        seed: u32,
        #[command(flatten)]
        io: SelectIo,
    },
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

#[derive(Args, Debug)]
pub(super) struct DsirArgs {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1..)]
    pub(super) target: Vec<String>,
    /// Use a saved model (from --save-model) instead of fitting.
    #[arg(long, conflicts_with_all = ["target", "buckets", "ngrams", "hash", "target_smoothing", "fit_all"])]
    pub(super) model: Option<PathBuf>,
    /// Save the fitted model here (JSON), to score other files or machines identically.
    #[arg(long)]
    pub(super) save_model: Option<PathBuf>,
    /// Number of hash buckets.
    #[arg(long)]
    buckets: Option<u32>,
    /// Longest n-gram (2: unigrams and bigrams).
    #[arg(long)]
    ngrams: Option<usize>,
    /// Documents with fewer words are never selected.
    #[arg(long)]
    pub(super) min_words: Option<u64>,
    /// sha256: the reference's buckets; fast: xxh3, not reference-compatible.
    #[arg(long, value_enum)]
    hash: Option<NgramHash>,
    /// Pseudocount added to every target bucket count before normalising.
    #[arg(long)]
    target_smoothing: Option<f64>,
    /// Count every raw n-gram (the reference stops at 100000 * buckets).
    #[arg(long)]
    pub(super) fit_all: bool,
    /// Memory for keeping documents' features between the fit and the scoring pass (MiB);
    /// 0 re-tokenizes every document. Never changes a result.
    #[arg(long, default_value_t = crate::passes::dsir::DEFAULT_FEATURE_CACHE_MB)]
    feature_cache_mb: usize,
    /// Run on a cluster (`syllabus cluster`): df://HOST:PORT. Same output, byte for byte.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(super) cluster: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct ZipfitArgs {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1.., required = true)]
    pub(super) target: Vec<String>,
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
    /// Run on a cluster (`syllabus cluster`): df://HOST:PORT. Same output, byte for byte.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(super) cluster: Option<String>,
}

impl ZipfitArgs {
    pub(super) fn params(&self) -> ZipfitParams {
        ZipfitParams::with(self.compressor, self.level, self.fast)
    }
}

impl DsirArgs {
    /// The model of --model, with --min-words applied, if one is given.
    pub(super) fn saved_model(&self) -> anyhow::Result<Option<DsirModel>> {
        let Some(p) = self.model.as_deref() else { return Ok(None) };
        let m = DsirModel::load(p).with_context(|| format!("loading model {}", p.display()))?;
        let params = DsirParams { min_words: self.min_words.unwrap_or(m.params.min_words), ..m.params.clone() };
        Ok(Some(DsirModel::try_new(params, m.raw, m.target)?))
    }

    pub(super) fn budget(&self) -> FitBudget {
        if self.fit_all {
            FitBudget::All
        } else {
            FitBudget::Auto
        }
    }

    pub(super) fn params(&self) -> DsirParams {
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

pub(super) fn score_command(cmd: ScoreCommand, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "cluster")]
    match &cmd {
        ScoreCommand::Dsir { dsir, source, io } if dsir.cluster.is_some() => {
            let url = dsir.cluster.as_deref().expect("checked");
            return on_cluster::run(
                url,
                on_cluster::Method::Dsir(dsir),
                on_cluster::Job::Score,
                source,
                &io.raw,
                &io.out,
                progress,
                start,
            );
        }
        ScoreCommand::Zipfit { zipfit, source, io } if zipfit.cluster.is_some() => {
            let url = zipfit.cluster.as_deref().expect("checked");
            return on_cluster::run(
                url,
                on_cluster::Method::Zipfit(zipfit),
                on_cluster::Job::Score,
                source,
                &io.raw,
                &io.out,
                progress,
                start,
            );
        }
        _ => {}
    }
    match cmd {
        ScoreCommand::Dsir { dsir, source, io } => {
            let settings = format!("{dsir:?} {source:?} {io:?}");
            let (opts, raw, work, mut rejects) =
                open_resumable(&source, &io.raw, &io.out, "score dsir", settings, &dsir.target, dsir.model.as_deref())?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
            let Fitted { model, target_stats, cache } =
                fit_dsir(&dsir, &opts, &raw, progress, work.as_ref(), rejects.as_mut())?;
            let mut report = lake.score_to(&DsirRowScorer::new(Arc::new(model), &cache), &io.out, rejects.as_mut())?;
            report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
            work.map(Work::finish).transpose()?;
            finish("score dsir", &io.out, report, target_stats, rejects, start, false)
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
        ScoreCommand::Zipfit { zipfit, source, io } => {
            let settings = format!("{zipfit:?} {source:?} {io:?}");
            let (opts, raw, work, mut rejects) =
                open_resumable(&source, &io.raw, &io.out, "score zipfit", settings, &zipfit.target, None)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
            let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, progress, work.as_ref(), rejects.as_mut())?;
            let mut report = lake.score_to(&scorer, &io.out, rejects.as_mut())?;
            report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
            work.map(Work::finish).transpose()?;
            finish("score zipfit", &io.out, report, target_stats, rejects, start, false)
        }
    }
}

pub(super) fn select_command(args: SelectArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    if args.method.is_none() {
        let rule = args.rule()?;
        let by = args.by.clone().expect("required");
        let out = args.out.clone().expect("required");
        let (opts, raw, mut rejects) = open_lake(&args.source, &args.raw)?;
        let scores = crate::select::rule::read_scores(&expand_inputs(&args.scores)?, &by)?;
        let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: None };
        let report = lake.select_by_rule(&scores, &by, rule, &out, rejects.as_mut())?;
        return finish(&format!("select by {by}"), &out, report, Vec::new(), rejects, start, true);
    }
    #[cfg(feature = "cluster")]
    match args.method.as_ref().expect("a method") {
        SelectCommand::Dsir { dsir, source, seed, top_k, io } if dsir.cluster.is_some() => {
            if io.scores_out.is_some() {
                bail!("--scores-out is not available with --cluster: run `syllabus score dsir --cluster` for every row's scores");
            }
            let url = dsir.cluster.as_deref().expect("checked");
            let seed = (!top_k).then_some(*seed);
            let job = on_cluster::Job::Select { k: io.k, seed };
            return on_cluster::run(
                url,
                on_cluster::Method::Dsir(dsir),
                job,
                source,
                &io.raw,
                &io.out,
                progress,
                start,
            );
        }
        SelectCommand::Zipfit { zipfit, source, io } if zipfit.cluster.is_some() => {
            if io.scores_out.is_some() {
                bail!("--scores-out is not available with --cluster: run `syllabus score zipfit --cluster` for every row's scores");
            }
            let url = zipfit.cluster.as_deref().expect("checked");
            let job = on_cluster::Job::Select { k: io.k, seed: None };
            return on_cluster::run(
                url,
                on_cluster::Method::Zipfit(zipfit),
                job,
                source,
                &io.raw,
                &io.out,
                progress,
                start,
            );
        }
        _ => {}
    }
    match args.method.expect("a method") {
        SelectCommand::Dsir { dsir, source, seed, top_k, io } => {
            let settings = format!("{dsir:?} {source:?} {io:?} {seed} {top_k}");
            let (opts, raw, work, mut rejects) = open_resumable(
                &source,
                &io.raw,
                &io.out,
                "select dsir",
                settings,
                &dsir.target,
                dsir.model.as_deref(),
            )?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
            let Fitted { model, target_stats, cache } =
                fit_dsir(&dsir, &opts, &raw, progress, work.as_ref(), rejects.as_mut())?;
            let noise = if top_k { Noise::None } else { Noise::gumbel(seed) };
            let keep = Keep { k: io.k, require_fewer_than_eligible: true };
            let scorer = DsirRowScorer::new(Arc::new(model), &cache);
            let mut report =
                lake.select_to(&scorer, keep, noise, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
            report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
            work.map(Work::finish).transpose()?;
            finish("select dsir", &io.out, report, target_stats, rejects, start, true)
        }
        SelectCommand::Zipfit { zipfit, source, io } => {
            let settings = format!("{zipfit:?} {source:?} {io:?}");
            let (opts, raw, work, mut rejects) =
                open_resumable(&source, &io.raw, &io.out, "select zipfit", settings, &zipfit.target, None)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
            let (scorer, target_stats) = zipfit_scorer(&zipfit, &opts, progress, work.as_ref(), rejects.as_mut())?;
            let keep = Keep { k: io.k, require_fewer_than_eligible: false };
            let mut report =
                lake.select_to(&scorer, keep, Noise::None, &io.out, io.scores_out.as_deref(), rejects.as_mut())?;
            report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
            work.map(Work::finish).transpose()?;
            finish("select zipfit", &io.out, report, target_stats, rejects, start, true)
        }
        SelectCommand::Random { source, seed, io } => {
            let settings = format!("{source:?} {io:?} {seed}");
            let (opts, raw, work, mut rejects) =
                open_resumable(&source, &io.raw, &io.out, "select random", settings, &[], None)?;
            let lake = ScoredLake { raw: &raw, read: &opts, progress, file_column: None, work: work.as_ref() };
            let keep = Keep { k: io.k, require_fewer_than_eligible: false };
            let scorer = crate::passes::RandomRowScorer;
            let mut report = lake.select_to(
                &scorer,
                keep,
                Noise::gumbel(seed),
                &io.out,
                io.scores_out.as_deref(),
                rejects.as_mut(),
            )?;
            report.resumed = work.as_ref().and_then(|w| w.resumed.clone());
            work.map(Work::finish).transpose()?;
            finish("select random", &io.out, report, Vec::new(), rejects, start, true)
        }
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

/// The lake of a resumable command, its work directory ([`crate::passes::work`]) and its
/// rejects file (cut back to what the work kept, when resuming). `target` and `extra_input`
/// (a saved model, a tokenizer) are inputs of the run's key besides the lake.
fn open_resumable(
    source: &SourceArgs,
    raw_inputs: &[String],
    out: &Path,
    command: &str,
    mut settings: String,
    target: &[String],
    extra_input: Option<&Path>,
) -> anyhow::Result<Resumable> {
    let opts = source.read_options()?;
    let raw = expand_inputs(raw_inputs)?;
    // Refuse an output that cannot be written before anything is done.
    crate::sink::output_target(out)?;
    crate::sink::OutFormat::from_path(out)?;
    if raw.iter().any(|f| f.name == "-") {
        // stdin cannot be read again: such a run starts over when interrupted.
        let rejects = source.rejects.as_deref().map(RejectWriter::create).transpose()?;
        return Ok((opts, raw, None, rejects));
    }
    let target = if target.is_empty() { Vec::new() } else { expand_inputs(target)? };
    if let Some(f) = extra_input {
        let meta = crate::store::stat(f).ok().flatten();
        settings.push_str(&format!(" {} {:?}", f.display(), meta.map(|m| (m.len, m.mtime_ns))));
    }
    let work = Work::begin(out, command, settings, &[&raw, &target])?;
    let rejects = work.rejects(source.rejects.as_deref())?;
    Ok((opts, raw, Some(work), rejects))
}

/// Fit (or load) a DSIR model; with it, the target's per-file counts and the features kept
/// for the scoring pass.
fn fit_dsir(
    args: &DsirArgs,
    opts: &ReadOptions,
    raw: &[InputFile],
    progress: &Progress,
    work: Option<&Work>,
    rejects: Option<&mut RejectWriter>,
) -> anyhow::Result<Fitted> {
    if args.model.is_none() && args.target.is_empty() {
        bail!("DSIR needs a target set (--target) or a saved model (--model)");
    }
    let target = if args.target.is_empty() { Vec::new() } else { expand_inputs(&args.target)? };
    let feature_cache_bytes = args.feature_cache_mb << 20;
    let job = DsirJob {
        raw,
        target: &target,
        read: opts,
        params: args.params(),
        budget: args.budget(),
        feature_cache_bytes,
        progress,
    };
    let fitted = match args.saved_model()? {
        Some(model) => Fitted { model, target_stats: Vec::new(), cache: FeatureCache::default() },
        None => job.fit_in(work, rejects)?,
    };
    if let Some(p) = &args.save_model {
        fitted.model.save(p)?;
    }
    Ok(fitted)
}

/// Read and compress the ZIP-FIT target set (kept in `work`, see [`passes::zipfit::load_target_in`]).
fn zipfit_scorer(
    args: &ZipfitArgs,
    opts: &ReadOptions,
    progress: &Progress,
    work: Option<&Work>,
    rejects: Option<&mut RejectWriter>,
) -> anyhow::Result<(ZipfitRowScorer, Vec<crate::source::FileStats>)> {
    let target = expand_inputs(&args.target)?;
    let (target, stats) = passes::zipfit::load_target_in(&target, opts, args.params(), progress, work, rejects)?;
    Ok((ZipfitRowScorer::new(Arc::new(target)), stats))
}

/// The `--cluster` paths of `score` and `select` ([`crate::cluster`]).
#[cfg(feature = "cluster")]
mod on_cluster {
    use std::path::Path;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Instant;

    use anyhow::bail;

    use super::super::{finish, SourceArgs};
    use super::{DsirArgs, ZipfitArgs};
    use crate::cluster::jobs::{ClusterLake, Scoring};
    use crate::cluster::Cluster;
    use crate::passes::Keep;
    use crate::progress::Progress;
    use crate::source::{expand_inputs, FileStats, RejectWriter};

    /// What `score|select dsir|zipfit --cluster` need: what to score with and the target's counts.
    pub(super) enum Method<'a> {
        Dsir(&'a DsirArgs),
        Zipfit(&'a ZipfitArgs),
    }

    /// Fit (or load) the scorer: the target set is read here, the raw lake's counts on the cluster.
    fn scoring(
        lake: &ClusterLake,
        method: &Method,
        rejects: Option<&mut RejectWriter>,
        progress: &Progress,
    ) -> anyhow::Result<(Scoring, Vec<FileStats>)> {
        match method {
            Method::Dsir(args) => {
                if args.model.is_none() && args.target.is_empty() {
                    bail!("DSIR needs a target set (--target) or a saved model (--model)");
                }
                let (model, stats) = match args.saved_model()? {
                    Some(model) => (model, Vec::new()),
                    None => lake.fit_dsir(args.params(), args.budget(), &expand_inputs(&args.target)?, rejects)?,
                };
                if let Some(p) = &args.save_model {
                    model.save(p)?;
                }
                Ok((Scoring::Dsir(Arc::new(model)), stats))
            }
            Method::Zipfit(args) => {
                let target = expand_inputs(&args.target)?;
                let (target, stats) =
                    crate::passes::zipfit::load_target(&target, lake.read, args.params(), progress, rejects)?;
                Ok((Scoring::Zipfit(Arc::new(target)), stats))
            }
        }
    }

    /// What `score` or `select` does once the lake is on the cluster and the scorer fitted.
    pub(super) enum Job {
        Score,
        /// k, and the Gumbel seed (None: plain top-k).
        Select {
            k: u64,
            seed: Option<u32>,
        },
    }

    /// `score|select dsir|zipfit --cluster URL`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        url: &str,
        method: Method,
        job: Job,
        source: &SourceArgs,
        raw: &[String],
        out: &Path,
        progress: &Progress,
        start: Instant,
    ) -> anyhow::Result<ExitCode> {
        let read = source.read_options()?;
        let files = expand_inputs(raw)?;
        crate::sink::OutFormat::from_path(out)?;
        let cluster = Cluster::connect(url)?;
        let lake = ClusterLake::new(&cluster, &files, &read, progress)?;
        let mut rejects = source.rejects.as_deref().map(RejectWriter::create).transpose()?;
        let (scoring, target_stats) = scoring(&lake, &method, rejects.as_mut(), progress)?;
        let files = lake.file_stats(rejects.as_mut())?;
        let name = match method {
            Method::Dsir(_) => "dsir",
            Method::Zipfit(_) => "zipfit",
        };
        let (report, what, selecting) = match job {
            Job::Score => (lake.score_to(&scoring, files, out)?, format!("score {name}"), false),
            Job::Select { k, seed } => {
                // DSIR's reference needs fewer than the eligible rows; ZIP-FIT keeps all if fewer.
                let keep = Keep { k, require_fewer_than_eligible: matches!(method, Method::Dsir(_)) };
                (lake.select_to(&scoring, files, keep, seed, out)?, format!("select {name}"), true)
            }
        };
        finish(&what, out, report, target_stats, rejects, start, selecting)
    }
}
