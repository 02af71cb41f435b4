//! `pipelines/*.toml`: the declarative form of what the CLI does, parsed and validated once.
//!
//! ```toml
//! name = "quickstart"
//! out_dir = "out/quickstart"
//! seed = 0
//!
//! [source]
//! paths = ["fixtures/lake"]
//! on_bad_record = "skip"
//!
//! [select]
//! method = "dsir"
//! target = ["fixtures/target/math.jsonl"]
//! k = 300
//! ```
//!
//! Unknown keys are errors that name the key; relative paths are relative to the directory
//! the command runs in.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::curriculum::prepare::DomainOf;
use crate::curriculum::{CurriculumSpec, OrderConfig, OutputConfig, ReweightConfig, ScheduleConfig, TokenizeConfig};
use crate::error::{Error, Result};
use crate::methods::{Method, Selecting};
use crate::proxy::{ProxySpec, ScoreKind};
use crate::select::rule::{Amount, Rule};
use crate::source::{expand_inputs, BadRecordPolicy, InputFile, ReadOptions};

/// The domain of every document when no domains are configured.
pub const DEFAULT_DOMAIN: &str = "all";

/// The shortest sequence an ordered `[eval]` candidate is packed into (longer where a context
/// is): eval cuts its windows from the sequences in order, never across two.
pub const CANDIDATE_SEQ_LEN: u32 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: String,
    /// Where outputs go (`--out` overrides it).
    pub out_dir: PathBuf,
    /// Seed of every random choice (u32, numpy's legacy seeding).
    #[serde(default)]
    pub seed: u32,
    /// Worker threads, 0 for one per core. Results do not depend on it.
    #[serde(default)]
    pub threads: usize,
    pub source: SourceConfig,
    /// `[decontaminate]`: rows that share an n-gram with a benchmark are removed before
    /// anything else (the contamination rule; `against`, `ngram`, `min_item_words`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decontaminate: Option<crate::methods::contamination::Settings>,
    /// `[dedup]`: all but the first row of each exact or near-duplicate cluster are removed
    /// before scoring and selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<crate::dedup::DedupSettings>,
    /// `[clusters]`: k-means clusters of the lake (after `[dedup]` and `[decontaminate]`),
    /// written to `OUT/clusters.parquet`: what `method = "cluster-balanced"` and `"d4"` use
    /// unless they name tables or settings of their own, and the domains of
    /// `source.domain_field = "cluster"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<crate::kmeans::ClusterSettings>,
    /// Scoring and selection; without it every document of the lake goes on.
    pub select: Option<SelectConfig>,
    /// The curriculum stages: they run when `[tokenize]` is there.
    pub reweight: Option<ReweightConfig>,
    pub schedule: Option<ScheduleConfig>,
    pub order: Option<OrderConfig>,
    pub tokenize: Option<TokenizeConfig>,
    pub output: Option<OutputConfig>,
    /// How `syllabus serve` steers the mixture from the trainer's reports (recorded in the
    /// manifest; serve's flags override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::loader::feedback::FeedbackConfig>,
    /// Train the same small model on candidates and compare (`syllabus eval`), written under
    /// `OUT/eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalConfig>,
    /// `[store]`: retries, timeouts and client options for lakes and outputs in object stores
    /// (the `--store-*` flags win over it). Not part of the run's identity: changing it never
    /// invalidates finished work.
    #[serde(default, skip_serializing)]
    pub store: Option<crate::store::StoreSettings>,
    /// `run --cluster df://HOST:PORT`: the DSIR or ZIP-FIT selection runs on that cluster (same
    /// outputs); the curriculum is built here. Not part of the run's identity.
    #[serde(skip)]
    pub cluster: Option<String>,
}

/// `[eval]`: the settings of `syllabus eval`, and the candidates as `[[eval.candidates]]`.
/// When the pipeline has its own stages, their output (the curriculum, or the selection) is
/// one more candidate, named after the pipeline, after the listed ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Default: `[tokenize].tokenizer`.
    pub tokenizer: Option<PathBuf>,
    /// Validation sets: name -> files, directories or globs.
    pub valid: IndexMap<String, Vec<String>>,
    pub tokens: u64,
    #[serde(default = "crate::eval::default_seeds")]
    pub seeds: u32,
    pub every: Option<u64>,
    #[serde(default = "crate::eval::default_valid_tokens")]
    pub valid_tokens: u64,
    /// KL reduction against the pipeline's source lake (true).
    #[serde(default = "default_true")]
    pub kl_against_source: bool,
    #[serde(default)]
    pub model: crate::proxy::ProxyParams,
    #[serde(default)]
    pub lr_schedule: crate::eval::train::LrSchedule,
    #[serde(default)]
    pub final_lr: Option<f64>,
    #[serde(default = "crate::eval::default_warmup")]
    pub warmup: f64,
    #[serde(default = "crate::eval::default_decay")]
    pub decay: f64,
    #[serde(default)]
    pub average_last: Option<u32>,
    /// Curriculum candidates' sequences in a seeded random order (false: manifest order).
    #[serde(default)]
    pub shuffle_sequences: bool,
    /// Model scales to run every candidate at, `"WIDTHxLAYERS[:context=N][:tokens=N]"`, and
    /// compare the rankings of (none: the one scale of `model`).
    #[serde(default)]
    pub scales: Vec<crate::eval::scales::Scale>,
    #[serde(default)]
    pub candidates: Vec<CandidateConfig>,
}

fn default_true() -> bool {
    true
}

/// One candidate of `[eval]`: exactly one of `path`, `select` or `pipeline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateConfig {
    pub name: String,
    /// An existing document table, syllabus output directory, or curriculum.
    pub path: Option<String>,
    /// Selected from this pipeline's `[source]` (with its seed) into `OUT/candidates/NAME`.
    pub select: Option<SelectConfig>,
    /// Another pipeline, run with its output in `OUT/candidates/NAME`.
    pub pipeline: Option<PathBuf>,
    /// With `select`: the selection in this order, as a curriculum (tokenized with eval's
    /// tokenizer), so that candidates can differ by order alone.
    pub order: Option<OrderConfig>,
    /// This candidate's own schedule and averaging, in place of `[eval]`'s.
    pub lr_schedule: Option<crate::eval::train::LrSchedule>,
    pub final_lr: Option<f64>,
    pub warmup: Option<f64>,
    pub decay: Option<f64>,
    pub average_last: Option<u32>,
}

impl CandidateConfig {
    pub fn train_override(&self) -> crate::eval::TrainOverride {
        crate::eval::TrainOverride {
            lr_schedule: self.lr_schedule,
            final_lr: self.final_lr,
            warmup: self.warmup,
            decay: self.decay,
            average_last: self.average_last,
        }
    }
}

impl EvalConfig {
    pub fn params(&self) -> crate::eval::EvalParams {
        crate::eval::EvalParams {
            tokens: self.tokens,
            seeds: self.seeds,
            every: self.every,
            valid_tokens: self.valid_tokens,
            model: self.model.clone(),
            lr_schedule: self.lr_schedule,
            final_lr: self.final_lr,
            warmup: self.warmup,
            decay: self.decay,
            average_last: self.average_last,
            shuffle_sequences: self.shuffle_sequences,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Inputs (files, directories, globs). May be left out when `domains` lists them.
    #[serde(default)]
    pub paths: Vec<String>,
    /// The domain of each document from this column.
    pub domain_field: Option<String>,
    /// The domain of each file: domain name -> its files, directories or globs (a file takes
    /// the first domain that lists it).
    #[serde(default)]
    pub domains: IndexMap<String, Vec<String>>,
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default = "default_id_field")]
    pub id_field: String,
    #[serde(default)]
    pub on_bad_record: BadRecordPolicy,
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// The longest jsonl record (line) in bytes; a longer one is a bad record.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_text_field() -> String {
    "text".into()
}
fn default_id_field() -> String {
    "id".into()
}
fn default_batch_rows() -> usize {
    crate::batch::DEFAULT_BATCH_ROWS
}
fn default_max_record_bytes() -> usize {
    crate::source::DEFAULT_MAX_RECORD_BYTES
}

impl SourceConfig {
    /// The input files, in order, and where each document's domain comes from.
    pub fn lake(&self) -> Result<(Vec<InputFile>, DomainOf)> {
        if self.domains.is_empty() {
            let files = expand_inputs(&self.paths)?;
            let domains = match &self.domain_field {
                Some(c) => DomainOf::Column(c.clone(), Vec::new()),
                None => DomainOf::Single(DEFAULT_DOMAIN.into()),
            };
            return Ok((files, domains));
        }
        let mut per_domain = Vec::with_capacity(self.domains.len());
        for (name, paths) in &self.domains {
            per_domain.push(expand_inputs(paths).map_err(|e| Error::Config(format!("source.domains.{name}: {e}")))?);
        }
        let files = if self.paths.is_empty() {
            let mut all: Vec<InputFile> = Vec::new();
            for f in per_domain.iter().flatten() {
                if !all.iter().any(|a| a.path == f.path) {
                    all.push(f.clone());
                }
            }
            all
        } else {
            expand_inputs(&self.paths)?
        };
        let of_file = files
            .iter()
            .map(|f| {
                per_domain
                    .iter()
                    .position(|d| d.iter().any(|x| x.path == f.path))
                    .ok_or_else(|| Error::Config(format!("source.domains: {} is in no domain", f.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((files, DomainOf::PerFile { names: self.domains.keys().cloned().collect(), of_file }))
    }

    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            batch_rows: self.batch_rows,
            on_bad_record: self.on_bad_record,
            max_record_bytes: self.max_record_bytes,
            read_text: true,
            exclude: None,
        }
    }
}

macro_rules! select_config {
    ($($variant:ident: $method:ty),* $(,)?) => {
        /// The selection stage, tagged by `method`: a scoring method of the registry
        /// ([`crate::methods`]) with `k` (and `top_k` where it samples), or a proxy's or a score
        /// table's rule.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "method", rename_all = "lowercase")]
        pub enum SelectConfig {
            $($variant(Selecting<$method>),)*
            /// Score with proxy models (EL2N, GraNd, loss), then keep by a rule.
            Proxy(ProxySelectConfig),
            /// Keep by a column of existing score tables (joined by id) and a rule.
            Scores(ScoresSelectConfig),
            /// k rows balanced over k-means clusters (Diversify and Conquer).
            #[serde(rename = "cluster-balanced")]
            ClusterBalanced(BalancedSelectConfig),
            /// Every row but the share of each cluster nearest its centroid (D4).
            D4(D4SelectConfig),
        }

        impl SelectConfig {
            /// The `method` key's value.
            pub fn method(&self) -> &'static str {
                match self {
                    $(SelectConfig::$variant(_) => <$method as Method>::INFO.name,)*
                    SelectConfig::Proxy(_) => "proxy",
                    SelectConfig::Scores(_) => "scores",
                    SelectConfig::ClusterBalanced(_) => "cluster-balanced",
                    SelectConfig::D4(_) => "d4",
                }
            }

            /// A scoring method's selection handed to `v`, generic over the method; None for
            /// the proxies' and score tables' rules.
            pub fn visit<'a, V: VisitSelecting<'a>>(&'a self, v: V) -> Option<V::Out> {
                match self {
                    $(SelectConfig::$variant(s) => Some(v.visit(s)),)*
                    SelectConfig::Proxy(_)
                    | SelectConfig::Scores(_)
                    | SelectConfig::ClusterBalanced(_)
                    | SelectConfig::D4(_) => None,
                }
            }
        }
    };
}
crate::methods::for_each_method!(select_config);

/// What runs a scoring method's selection, whichever method it is ([`SelectConfig::visit`]).
pub trait VisitSelecting<'a> {
    type Out;
    fn visit<M: Method>(self, s: &'a Selecting<M>) -> Self::Out;
}

impl SelectConfig {
    /// The data files a selection reads besides the lake (a target set, score tables, a
    /// proxy's training set, cluster tables): part of a run's key.
    pub fn inputs(&self) -> Vec<String> {
        struct Target;
        impl<'a> VisitSelecting<'a> for Target {
            type Out = &'a [String];
            fn visit<M: Method>(self, s: &'a Selecting<M>) -> &'a [String] {
                M::target(&s.settings)
            }
        }
        match self {
            SelectConfig::Proxy(p) => p.proxy.train_on.clone(),
            SelectConfig::Scores(s) => s.scores.clone(),
            SelectConfig::ClusterBalanced(b) => b.clusters.iter().chain(&b.scores).cloned().collect(),
            SelectConfig::D4(d) => d.clusters.clone(),
            other => other.visit(Target).unwrap_or(&[]).to_vec(),
        }
    }

    /// A saved k-means model the selection assigns with (`[select.cluster] model`): its bytes
    /// are part of a run's key.
    pub fn model_file(&self) -> Option<&std::path::Path> {
        self.cluster_source().and_then(|(_, own)| own?.model.as_deref())
    }

    /// Whether the selection writes every row's scores to `OUT/scores.parquet`.
    pub fn writes_scores(&self) -> bool {
        !matches!(self, SelectConfig::Scores(_) | SelectConfig::ClusterBalanced(_) | SelectConfig::D4(_))
    }

    /// The clusters a cluster selection uses: its tables, its own settings, or (None, None)
    /// for the pipeline's `[clusters]`.
    pub fn cluster_source(&self) -> Option<(&[String], Option<&crate::kmeans::ClusterSettings>)> {
        match self {
            SelectConfig::ClusterBalanced(b) => Some((&b.clusters, b.cluster.as_ref())),
            SelectConfig::D4(d) => Some((&d.clusters, d.cluster.as_ref())),
            _ => None,
        }
    }
}

/// `method = "cluster-balanced"`: k rows, a budget per cluster (`equal`, `size` with `alpha`,
/// or `mean` of `by`), within a cluster the highest `by` (from `scores`, or the cluster
/// tables) or a seeded draw. The clusters: `clusters` (tables `syllabus score cluster` wrote),
/// else `[select.cluster]` (settings: clustered here), else the pipeline's `[clusters]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancedSelectConfig {
    pub k: u64,
    #[serde(default = "default_budget")]
    pub budget: crate::kmeans::balance::BudgetRule,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    pub by: Option<String>,
    #[serde(default)]
    pub scores: Vec<String>,
    #[serde(default)]
    pub clusters: Vec<String>,
    pub cluster: Option<crate::kmeans::ClusterSettings>,
}

fn default_budget() -> crate::kmeans::balance::BudgetRule {
    crate::kmeans::balance::BudgetRule::Equal
}
fn default_alpha() -> f64 {
    1.0
}
fn default_drop() -> f64 {
    0.2
}

/// `method = "d4"`: drop the `drop` share of each cluster nearest its centroid. Clusters as
/// for `cluster-balanced`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct D4SelectConfig {
    #[serde(default = "default_drop")]
    pub drop: f64,
    #[serde(default)]
    pub clusters: Vec<String>,
    pub cluster: Option<crate::kmeans::ClusterSettings>,
}

/// `keep = { max = 0.5 }`: which rows a score keeps (counts, or fractions like 0.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepConfig {
    /// The highest (drop the easiest).
    pub max: Option<Amount>,
    /// The lowest.
    pub min: Option<Amount>,
    /// Skip this many highest (likely label noise), then keep `k`.
    pub offset: Option<Amount>,
    pub k: Option<Amount>,
    /// A quantile band [lo, hi) of the scores.
    pub band: Option<[f64; 2]>,
    /// Every row whose score is below this value.
    pub below: Option<f64>,
}

impl KeepConfig {
    pub fn rule(&self) -> Result<Rule> {
        let rule = match (self.max, self.min, self.offset, self.band, self.below) {
            (Some(k), None, None, None, None) if self.k.is_none() => Rule::KeepMax(k),
            (None, Some(k), None, None, None) if self.k.is_none() => Rule::KeepMin(k),
            (None, None, Some(skip), None, None) => Rule::Offset {
                skip,
                keep: self.k.ok_or_else(|| Error::Config("select.keep.offset needs select.keep.k".into()))?,
            },
            (None, None, None, Some([lo, hi]), None) if self.k.is_none() => Rule::Band { lo, hi },
            (None, None, None, None, Some(x)) if self.k.is_none() => Rule::Below(x),
            _ => {
                return Err(Error::Config("select.keep: choose one of max, min, offset (with k), band or below".into()))
            }
        };
        rule.validate().map_err(|e| Error::Config(format!("select.keep: {e}")))?;
        Ok(rule)
    }
}

/// `method = "proxy"`: train proxies on the lake (or `train_on`), score every document, keep
/// by `keep`. The proxy is `[select.proxy]` (with `[select.proxy.model]`), as
/// `syllabus score el2n|grand|loss` takes it; its seed is the pipeline's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySelectConfig {
    /// el2n, grand or loss: the score the rule ranks by.
    pub score: ScoreKind,
    pub proxy: ProxySpec,
    pub keep: KeepConfig,
}

impl ProxySelectConfig {
    pub fn spec(&self, seed: u32) -> ProxySpec {
        ProxySpec { seed, ..self.proxy.clone() }
    }
}

/// `method = "scores"`: keep by a column of score tables written earlier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoresSelectConfig {
    pub scores: Vec<String>,
    pub by: String,
    pub keep: KeepConfig,
}

impl PipelineConfig {
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: PipelineConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{}: {}", origin.display(), e.to_string().trim_end())))?;
        cfg.validate().map_err(|e| Error::Config(format!("{}: {e}", origin.display())))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::store::read_to_string(path)?;
        Self::from_toml(&text, path)
    }

    /// The curriculum stages, when `[tokenize]` is there.
    pub fn curriculum(&self) -> Option<CurriculumSpec> {
        Some(CurriculumSpec {
            seed: self.seed,
            reweight: self.reweight.clone(),
            schedule: self.schedule.clone(),
            order: self.order.clone().unwrap_or_default(),
            tokenize: self.tokenize.clone()?,
            output: self.output.clone().unwrap_or_default(),
        })
    }

    /// The settings a manifest records: everything but where the output goes and the thread
    /// count, neither of which changes a result.
    pub fn manifest_config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("configs serialize");
        if let Some(m) = v.as_object_mut() {
            m.remove("out_dir");
            m.remove("threads");
            // Memory changes where the dedup join and the cluster ranks sort, never the result.
            for stage in ["dedup", "clusters"] {
                if let Some(d) = m.get_mut(stage).and_then(|d| d.as_object_mut()) {
                    d.remove("memory_limit");
                    d.remove("save_model");
                }
            }
        }
        v
    }

    /// The pipeline that makes one `[eval]` candidate from this pipeline's source: its
    /// selection and, with an order, the curriculum of it in that order.
    pub fn candidate_pipeline(
        &self,
        c: &CandidateConfig,
        select: &SelectConfig,
        out_dir: PathBuf,
    ) -> Result<PipelineConfig> {
        let (tokenize, output) = match &c.order {
            None => (None, None),
            Some(_) => {
                let tokenizer = match (self.eval.as_ref().and_then(|e| e.tokenizer.clone()), &self.tokenize) {
                    (Some(t), _) => t,
                    (None, Some(t)) => t.tokenizer.clone(),
                    (None, None) => {
                        return Err(Error::Config(format!(
                            "eval.candidates {}: an order needs eval's tokenizer (eval.tokenizer)",
                            c.name
                        )))
                    }
                };
                // Sequences at least one window long at every scale eval trains at, so that an
                // ordered candidate's windows are as long as a table's.
                let contexts = self.eval.iter().flat_map(|e| {
                    let base = e.params().resolve().map_or(64, |r| r.model.context);
                    std::iter::once(base).chain(e.scales.iter().map(move |s| s.context.unwrap_or(base)))
                });
                let seq_len = contexts.map(|c| c as u32 + 1).fold(CANDIDATE_SEQ_LEN, u32::max);
                let tokenize = TokenizeConfig { tokenizer, seq_len, eos: None, pad: None, packing: Default::default() };
                (Some(tokenize), Some(OutputConfig::default()))
            }
        };
        Ok(PipelineConfig {
            name: format!("{}-{}", self.name, c.name),
            out_dir,
            seed: self.seed,
            threads: self.threads,
            source: self.source.clone(),
            decontaminate: self.decontaminate.clone(),
            dedup: self.dedup.clone(),
            clusters: self.clusters.clone(),
            select: Some(select.clone()),
            reweight: None,
            schedule: None,
            order: c.order.clone(),
            tokenize,
            output,
            feedback: None,
            eval: None,
            store: self.store.clone(),
            cluster: self.cluster.clone(),
        })
    }

    fn validate_eval(&self, e: &EvalConfig) -> Result<()> {
        let err = |m: String| Err(Error::Config(format!("eval: {m}")));
        if e.tokenizer.is_none() && self.tokenize.is_none() {
            return err("a tokenizer is needed (eval.tokenizer, or a [tokenize] stage)".into());
        }
        if e.valid.is_empty() {
            return err("at least one validation set is needed (eval.valid = { NAME = [PATHS] })".into());
        }
        e.params().resolve().map_err(|x| Error::Config(x.to_string()))?;
        if e.scales.len() == 1 {
            return err("scales: at least two to compare (or none)".into());
        }
        for s in &e.scales {
            let r =
                s.params(&e.params()).resolve().map_err(|x| Error::Config(format!("eval.scales {}: {x}", s.label)))?;
            for c in &e.candidates {
                r.for_candidate(&c.train_override())
                    .map_err(|x| Error::Config(format!("eval.scales {}, candidate {}: {x}", s.label, c.name)))?;
            }
        }
        let own = self.select.is_some() || self.tokenize.is_some();
        if e.candidates.is_empty() && !own {
            return err("no candidates: add [[eval.candidates]], or stages whose output to evaluate".into());
        }
        for (i, c) in e.candidates.iter().enumerate() {
            let ok_name = !c.name.is_empty() && c.name.chars().all(|ch| ch.is_alphanumeric() || "-_.".contains(ch));
            if !ok_name || c.name.starts_with('.') {
                return err(format!("candidate name {:?}: letters, digits, '-', '_' and '.' only", c.name));
            }
            if e.candidates[..i].iter().any(|o| o.name == c.name) || (own && c.name == self.name) {
                return err(format!("two candidates are named {:?}", c.name));
            }
            match (&c.path, &c.select, &c.pipeline) {
                (Some(_), None, None) | (None, None, Some(_)) => {}
                (None, Some(sel), None) => {
                    self.candidate_pipeline(c, sel, self.out_dir.clone())?
                        .validate()
                        .map_err(|x| Error::Config(format!("eval.candidates {}: {x}", c.name)))?;
                }
                _ => return err(format!("candidate {}: give exactly one of path, select or pipeline", c.name)),
            }
            if c.order.is_some() && c.select.is_none() {
                return err(format!("candidate {}: order applies to a select candidate", c.name));
            }
            e.params()
                .resolve()
                .and_then(|r| r.for_candidate(&c.train_override()))
                .map_err(|x| Error::Config(format!("eval.candidates {}: {x}", c.name)))?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if let Some(store) = &self.store {
            store.check()?;
        }
        if self.source.paths.is_empty() && self.source.domains.is_empty() {
            return Err(Error::Config("source.paths: at least one input is needed".into()));
        }
        if self.source.domain_field.is_some() && !self.source.domains.is_empty() {
            return Err(Error::Config("source.domain_field and source.domains: choose one".into()));
        }
        if self.source.domain_field.as_deref() == Some(crate::kmeans::COL_CLUSTER) && self.clusters.is_none() {
            return Err(Error::Config("source.domain_field = \"cluster\" needs a [clusters] stage".into()));
        }
        if let Some(c) = &self.clusters {
            c.validate().map_err(|e| Error::Config(format!("clusters: {e}")))?;
        }
        if self.order.as_ref().is_some_and(|o| o.method == crate::curriculum::OrderMethod::Related)
            && self.clusters.is_none()
        {
            return Err(Error::Config(
                "order.method = \"related\" needs a [clusters] stage (its model's vectors)".into(),
            ));
        }
        if self.tokenize.is_none() {
            for (key, there) in [
                ("reweight", self.reweight.is_some()),
                ("schedule", self.schedule.is_some()),
                ("order", self.order.is_some()),
                ("output", self.output.is_some()),
            ] {
                if there {
                    return Err(Error::Config(format!("[{key}] needs a [tokenize] stage to write a curriculum")));
                }
            }
        }
        if let Some(f) = &self.feedback {
            if self.tokenize.is_none() {
                return Err(Error::Config("[feedback] needs a [tokenize] stage to write a curriculum".into()));
            }
            // Domain names are known here only when the source lists them.
            let names: Vec<String> = self.source.domains.keys().cloned().collect();
            let mut check = f.clone();
            if names.is_empty() {
                (check.graph, check.prior) = (None, None);
            }
            check.validate(&names)?;
        }
        crate::limits::THREADS.check(self.threads as u64).map_err(Error::Config)?;
        if self.select.is_none()
            && self.tokenize.is_none()
            && self.eval.is_none()
            && self.dedup.is_none()
            && self.decontaminate.is_none()
            && self.clusters.is_none()
        {
            return Err(Error::Config(
                "nothing to do: add a [dedup], [decontaminate], [clusters], [select], [tokenize] or [eval] stage"
                    .into(),
            ));
        }
        if let Some(d) = &self.dedup {
            d.validate().map_err(|e| Error::Config(e.to_string()))?;
        }
        if let Some(c) = &self.decontaminate {
            use crate::methods::Method;
            crate::methods::contamination::Contamination::validate(c)
                .map_err(|e| Error::Config(format!("decontaminate: {e}")))?;
        }
        if let Some(e) = &self.eval {
            self.validate_eval(e)?;
        }
        if let Some(spec) = self.curriculum() {
            spec.validate()?;
        }
        crate::limits::check_read(self.source.batch_rows, self.source.max_record_bytes)
            .map_err(|e| Error::Config(format!("source.{e}")))?;
        match &self.select {
            None => {}
            Some(SelectConfig::Proxy(p)) => {
                p.keep.rule()?;
                p.spec(self.seed).validate().map_err(|e| Error::Config(format!("select: {e}")))?;
            }
            Some(SelectConfig::Scores(sc)) => {
                sc.keep.rule()?;
                if sc.scores.is_empty() {
                    return Err(Error::Config("select.scores: at least one score table is needed".into()));
                }
            }
            Some(sel @ (SelectConfig::ClusterBalanced(_) | SelectConfig::D4(_))) => {
                let (tables, own) = sel.cluster_source().expect("a cluster selection");
                if let Some(c) = own {
                    c.validate().map_err(|e| Error::Config(format!("select.cluster: {e}")))?;
                }
                if own.is_some() && self.clusters.is_some() {
                    return Err(Error::Config(
                        "[select.cluster] and a [clusters] stage: choose one (both would write clusters.parquet)"
                            .into(),
                    ));
                }
                if tables.is_empty() && own.is_none() && self.clusters.is_none() {
                    return Err(Error::Config(format!(
                        "select method {:?} needs clusters: `clusters = [tables]`, `[select.cluster]` settings, or a [clusters] stage",
                        sel.method()
                    )));
                }
                if let SelectConfig::D4(d) = sel {
                    if !(0.0..1.0).contains(&d.drop) {
                        return Err(Error::Config(format!("select.drop {}: a share in [0, 1)", d.drop)));
                    }
                }
                if let SelectConfig::ClusterBalanced(b) = sel {
                    if b.budget == crate::kmeans::balance::BudgetRule::Mean && b.by.is_none() {
                        return Err(Error::Config("select.budget = \"mean\" needs select.by".into()));
                    }
                }
            }
            Some(sel) => {
                struct Check;
                impl VisitSelecting<'_> for Check {
                    type Out = Result<()>;
                    fn visit<M: Method>(self, s: &Selecting<M>) -> Result<()> {
                        s.validate()
                    }
                }
                sel.visit(Check).transpose()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "t"
out_dir = "out/t"
[source]
paths = ["fixtures/lake"]
[select]
method = "dsir"
target = ["fixtures/target/math.jsonl"]
k = 10
buckets = 5000
"#;

    #[test]
    fn parses_and_fills_defaults() {
        let c = PipelineConfig::from_toml(OK, Path::new("t.toml")).unwrap();
        let Some(SelectConfig::Dsir(d)) = &c.select else { panic!("dsir expected") };
        assert_eq!(d.settings.params().buckets, 5000);
        assert_eq!(d.settings.params().ngrams, 2);
        assert_eq!(c.source.text_field, "text");
    }

    #[test]
    fn unknown_keys_are_named() {
        let bad = OK.replace("k = 10", "k = 10\nbukets = 3");
        let e = PipelineConfig::from_toml(&bad, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("bukets"), "{e}");
        let bad = OK.replace("[source]", "[source]\ntext_feild = \"x\"");
        let e = PipelineConfig::from_toml(&bad, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("text_feild"), "{e}");
    }

    #[test]
    fn store_settings_parse_are_checked_and_stay_out_of_the_run_identity() {
        let c = PipelineConfig::from_toml(&format!("{OK}[store]\nretries = 0\ntimeout_s = 5\n"), Path::new("t.toml"))
            .unwrap();
        let store = c.store.as_ref().unwrap();
        assert_eq!((store.retries, store.timeout_s, store.retry_timeout_s), (0, 5.0, 180.0));
        // Not serialized: changing retries never invalidates a run's finished work.
        assert!(serde_json::to_value(&c).unwrap().get("store").is_none());
        let e = PipelineConfig::from_toml(&format!("{OK}[store]\ntimeout_s = 0\n"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_s"), "{e}");
        let e = PipelineConfig::from_toml(&format!("{OK}[store]\nretires = 1\n"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("retires"), "{e}");
    }

    #[test]
    fn impossible_settings_are_errors() {
        let bad = OK.replace("k = 10", "k = 0");
        assert!(PipelineConfig::from_toml(&bad, Path::new("t.toml")).unwrap_err().to_string().contains("select.k"));
        let bad = OK.replace("buckets = 5000", "buckets = 0");
        assert!(PipelineConfig::from_toml(&bad, Path::new("t.toml")).unwrap_err().to_string().contains("buckets"));
    }
}

/// `docs/pipeline.md` lists every key of every table, and only keys that exist: its tables are
/// checked against the structs serde reads (their field names, as serde sees them).
#[cfg(test)]
mod reference_doc {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::de::DeserializeOwned;

    use super::*;

    fn keys<T: DeserializeOwned>() -> BTreeSet<String> {
        let k = crate::methods::field_names::<T>();
        assert!(!k.is_empty(), "{} has fields", std::any::type_name::<T>());
        k.into_iter().map(str::to_string).collect()
    }

    fn selecting<M: Method>() -> BTreeSet<String> {
        Selecting::<M>::keys().into_iter().map(str::to_string).collect()
    }

    fn with_method(mut k: BTreeSet<String>) -> BTreeSet<String> {
        k.insert("method".into());
        k
    }

    /// The documented keys per section: `## \`ID\`` headings, then rows "| `key` | ...".
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc = include_str!("../docs/pipeline.md");
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut section = None;
        for line in doc.lines() {
            if let Some(h) = line.strip_prefix("## `") {
                let id = h.split('`').next().unwrap().to_string();
                assert!(out.insert(id.clone(), BTreeSet::new()).is_none(), "{id} is documented twice");
                section = Some(id);
            } else if line.starts_with("## ") {
                section = None;
            } else if let (Some(s), Some(row)) = (&section, line.strip_prefix("| `")) {
                let key = row.split('`').next().unwrap().to_string();
                assert!(out.get_mut(s).unwrap().insert(key.clone()), "{s}.{key} is documented twice");
            }
        }
        out
    }

    /// The methods `[select]` knows, as serde's error for an unknown one lists them.
    fn methods() -> BTreeSet<String> {
        let e = toml::from_str::<SelectConfig>("method = \"?\"").unwrap_err().to_string();
        let list = &e[e.find("expected one of").expect(&e)..];
        list.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    #[test]
    fn every_pipeline_key_is_documented_and_every_documented_key_exists() {
        // Every method of the registry has its table, with its settings, `k` and `top_k` where
        // it samples.
        macro_rules! method_keys {
            ($($variant:ident: $method:ty),* $(,)?) => {
                vec![$((<$method as Method>::INFO.name, with_method(selecting::<$method>()))),*]
            };
        }
        let tables: Vec<(&str, BTreeSet<String>)> = crate::methods::for_each_method!(method_keys);
        let select = |prefix: &str| -> Vec<(String, BTreeSet<String>)> {
            let mut v = vec![
                (format!("{prefix}:proxy"), with_method(keys::<ProxySelectConfig>())),
                (format!("{prefix}.proxy"), keys::<ProxySpec>()),
                (format!("{prefix}.proxy.model"), keys::<crate::proxy::ProxyParams>()),
                (format!("{prefix}:scores"), with_method(keys::<ScoresSelectConfig>())),
                (format!("{prefix}.keep"), keys::<KeepConfig>()),
                (format!("{prefix}:cluster-balanced"), with_method(keys::<BalancedSelectConfig>())),
                (format!("{prefix}:d4"), with_method(keys::<D4SelectConfig>())),
                (format!("{prefix}.cluster"), keys::<crate::kmeans::ClusterSettings>()),
            ];
            v.extend(tables.iter().map(|(name, keys)| (format!("{prefix}:{name}"), keys.clone())));
            v
        };
        let any = || BTreeSet::from(["*".to_string()]);
        let mut want: BTreeMap<String, BTreeSet<String>> = [
            ("(top)".to_string(), keys::<PipelineConfig>()),
            ("source".into(), keys::<SourceConfig>()),
            ("source.domains".into(), any()),
            ("decontaminate".into(), keys::<crate::methods::contamination::Settings>()),
            ("dedup".into(), keys::<crate::dedup::DedupSettings>()),
            ("clusters".into(), keys::<crate::kmeans::ClusterSettings>()),
            ("order".into(), keys::<OrderConfig>()),
            ("schedule".into(), keys::<ScheduleConfig>()),
            ("schedule.phases".into(), keys::<crate::curriculum::PhaseConfig>()),
            ("schedule.phases.mixture".into(), any()),
            ("reweight".into(), keys::<ReweightConfig>()),
            ("tokenize".into(), keys::<TokenizeConfig>()),
            ("output".into(), keys::<OutputConfig>()),
            ("feedback".into(), keys::<crate::loader::feedback::FeedbackConfig>()),
            ("feedback.prior".into(), any()),
            ("eval".into(), keys::<EvalConfig>()),
            ("eval.valid".into(), any()),
            ("eval.model".into(), keys::<crate::proxy::ProxyParams>()),
            ("eval.candidates".into(), keys::<CandidateConfig>()),
            ("store".into(), keys::<crate::store::StoreSettings>()),
            ("store.options".into(), any()),
        ]
        .into_iter()
        .collect();
        want.extend(select("select"));
        want.extend(select("eval.candidates.select"));
        let doc = documented();
        let sections: BTreeSet<&String> = want.keys().collect();
        assert_eq!(doc.keys().collect::<BTreeSet<_>>(), sections, "docs/pipeline.md's sections");
        for (id, keys) in &want {
            assert_eq!(&doc[id], keys, "docs/pipeline.md, section `{id}`");
        }
        // Every method has its section.
        let documented_methods: BTreeSet<String> =
            doc.keys().filter_map(|id| id.strip_prefix("select:")).map(str::to_string).collect();
        assert_eq!(documented_methods, methods());
    }

    /// The check reads what it should: a struct's serde names, and the documented rows.
    #[test]
    fn the_check_sees_fields_and_rows() {
        assert!(selecting::<crate::methods::dsir::Dsir>().contains("feature_cache_mb"));
        assert!(documented()["select:dsir"].contains("k"));
        assert!(methods().contains("random"), "{:?}", methods());
    }
}
