//! Scoring methods, one module each, described once and reached by every surface through one
//! registry ([`for_each_method!`], [`REGISTRY`]).
//!
//! A method ([`Method`]) is: its settings (one struct that clap flattens into `syllabus score
//! NAME` and `select NAME`, and serde reads from a pipeline's `[select] method = "NAME"`,
//! with one validation), what it reads to fit (nothing, a target set, or a target set and
//! counts over the lake) and the [`Scorer`] the fit gives (a pure function of a batch; its
//! state is what resume keeps and the cluster's codec ships), its output columns and its name.
//! Generic adapters do the rest, for every method alike: the lake passes
//! ([`crate::passes::scored`]), the commands (`cli/score.rs`), `syllabus run` and eval's
//! candidates ([`crate::pipeline`]), SQL functions (`sql::udf::scorer_udf`) and the cluster's
//! function and codec (`cluster::udf::ScorerUdf`).
//!
//! Adding a method: a module here implementing [`Method`], one line in [`for_each_method!`],
//! its tests. `tests/methods.rs` walks the registry and checks that each method is reachable
//! from the command line, a pipeline, SQL (where it says so) and the cluster (where it says so).
//!
//! Not here: the proxy-model scores (`score el2n|grand|loss`, `[select] method = "proxy"`),
//! which train a model over the whole lake and score it in one pass of their own
//! ([`crate::proxy`]), and keeping by a score column (`select --scores`, `method = "scores"`),
//! a join of score tables ([`crate::select::rule`]).

pub mod classifier;
pub mod contamination;
pub mod dsir;
pub mod moore_lewis;
pub mod random;
pub mod zipfit;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::passes::work::Work;
use crate::progress::Progress;
use crate::score::dsir::{Counts, DsirParams};
use crate::score::Scorer;
use crate::source::{FileStats, InputFile, ReadOptions, RejectWriter};

/// Every method, one line each: the name the surfaces use (a variant of the commands' and the
/// pipeline's enums, lowercased: `score dsir`, `method = "dsir"`) and the type implementing
/// [`Method`]. `for_each_method!(m)` expands to `m! { Name: Type, ... }`.
macro_rules! for_each_method {
    ($callback:ident) => {
        $callback! {
            Dsir: $crate::methods::dsir::Dsir,
            Zipfit: $crate::methods::zipfit::Zipfit,
            Random: $crate::methods::random::Random,
            Moorelewis: $crate::methods::moore_lewis::MooreLewis,
            Contamination: $crate::methods::contamination::Contamination,
            Classifier: $crate::methods::classifier::Classifier,
        }
    };
}
pub(crate) use for_each_method;

/// What a method's fit reads before it can score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitPass {
    /// Nothing: the scorer is ready (random).
    None,
    /// A target set (ZIP-FIT).
    Target,
    /// A target set and counts over the lake itself, a map over files and a small reduce
    /// (DSIR's raw n-gram counts); on a cluster the counts run there.
    TargetAndLake,
    /// A model file the user brings (a fastText classifier), or a target set and a sample of
    /// the lake the method trains one on.
    Model,
}

/// How a selection by a method draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// The k highest scores (ZIP-FIT).
    TopK,
    /// Gumbel top-k with numpy's draws for the seed (importance resampling): DSIR, which may
    /// take the k highest instead (`--top-k`, `top_k = true`), and random.
    Gumbel { top_k_option: bool },
}

/// A method as every surface sees it.
#[derive(Debug)]
pub struct Info {
    /// `score NAME`, `select NAME`, `method = "NAME"`.
    pub name: &'static str,
    /// What `syllabus score NAME` does (its help).
    pub score_about: &'static str,
    /// What `syllabus select NAME` does (its help).
    pub select_about: &'static str,
    /// Whether `syllabus score NAME` is offered (the random baseline's score is 0).
    pub score_command: bool,
    /// The columns its scorer writes after `id`, in order; the first ranks.
    pub columns: &'static [&'static str],
    pub fit: FitPass,
    /// The option (and pipeline key) that names the set a fit reads: `target`, or the
    /// benchmark's `against`; empty when the method reads none.
    pub target_option: &'static str,
    pub sampling: Sampling,
    /// Whether k must be smaller than the eligible rows (DSIR's reference fails otherwise);
    /// if not, all eligible rows are kept when there are fewer.
    pub k_below_eligible: bool,
    /// The file a pipeline writes the fitted state to (`dsir_model.json`); the command line
    /// saves it where `Method::save_to` says (`--save-model`).
    pub model_file: Option<&'static str>,
    /// Whether `syllabus sql` offers the scorer as a function (named after its first column),
    /// and the option it is fitted from: a saved model file (`--dsir-model`: the method's
    /// `from_model_file` reads it) or a target set (`--zipfit-target`: `from_target`).
    pub sql: Option<&'static str>,
    /// Whether `--cluster` runs it (scoring is a map over files).
    pub cluster: bool,
}

impl Info {
    /// How many rows a selection by this method keeps, and what happens with fewer eligible.
    pub fn keep(&self, k: u64) -> crate::passes::Keep {
        crate::passes::Keep { k, require_fewer_than_eligible: self.k_below_eligible }
    }
}

/// One scoring method: see the module doc.
pub trait Method: Send + Sync + 'static {
    const INFO: Info;
    /// The settings of the command line and of a pipeline's `[select]`.
    type Settings: clap::Args + clap::FromArgMatches + Serialize + DeserializeOwned + Debug + Clone + Send + Sync;

    /// Check the settings before any work.
    fn validate(s: &Self::Settings) -> Result<()>;

    /// The target set (files, directories, globs), if the method reads one.
    fn target(_s: &Self::Settings) -> &[String] {
        &[]
    }

    /// A file besides the lake and the target whose bytes decide the result (a saved model).
    fn model(_s: &Self::Settings) -> Option<&Path> {
        None
    }

    /// Where to save the fitted state (`--save-model`), if the settings say.
    fn save_to(_s: &Self::Settings) -> Option<&Path> {
        None
    }

    /// The files the settings name as outputs (`--save-model`), so that a store URL there is
    /// written locally first and uploaded when the command is done.
    fn outputs(_s: &mut Self::Settings) -> Vec<&mut Option<PathBuf>> {
        Vec::new()
    }

    /// Fit: read what the method needs and give its scorer, with the target set's counts.
    fn fit(s: &Self::Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted>;

    /// A scorer this method's fits give, from its name and state (the cluster's codec): None
    /// when the name is not one of this method's.
    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>>;

    /// The scorer from a saved state file (`syllabus sql --NAME-model`), if the method has one.
    fn from_model_file(_path: &Path) -> Option<Result<Arc<dyn Scorer>>> {
        None
    }

    /// The scorer fitted on a target set alone with default settings (`syllabus sql
    /// --NAME-target`), if the method can be.
    fn from_target(
        _target: &[InputFile],
        _read: &ReadOptions,
        _progress: &Progress,
    ) -> Option<Result<Arc<dyn Scorer>>> {
        None
    }
}

/// The lake a fit reads.
pub struct FitLake<'a> {
    pub raw: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub progress: &'a Progress,
    /// Keep the fit's progress here, and resume from it.
    pub work: Option<&'a Work>,
    /// Counts over the lake made elsewhere (on a cluster) instead of here.
    pub counts: Option<&'a dyn LakeCounts>,
}

/// Counts over a lake that a cluster makes, for fits that need them ([`FitPass::TargetAndLake`]).
pub trait LakeCounts {
    /// DSIR's raw bucket counts: every file's documents, each file up to `per_file_limit`.
    fn dsir_counts(&self, params: &DsirParams, per_file_limit: Option<u64>) -> Result<Counts>;
}

/// A fitted method.
pub struct Fitted {
    pub scorer: Arc<dyn Scorer>,
    /// The target set's per-file counts, for the report.
    pub target_stats: Vec<FileStats>,
}

/// Fit `M` and save its state where the settings say (`--save-model`).
pub fn fit<M: Method>(s: &M::Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
    let fitted = M::fit(s, lake, rejects)?;
    if let Some(p) = M::save_to(s) {
        crate::sink::write_atomic(p, &fitted.scorer.saved()?)?;
    }
    Ok(fitted)
}

/// The Gumbel seed of a selection by `info` (None: the k highest), from a seed (the
/// command's `--seed`, default 0, or the pipeline's) and whether the k highest were asked for.
pub fn draw(info: &Info, seed: Option<u32>, top_k: bool) -> Result<Option<u32>> {
    match info.sampling {
        Sampling::TopK if seed.is_some() || top_k => Err(Error::InvalidArgument(format!(
            "{} keeps the k highest scores: --seed and --top-k do not apply",
            info.name
        ))),
        Sampling::TopK => Ok(None),
        Sampling::Gumbel { top_k_option: false } if top_k => {
            Err(Error::InvalidArgument(format!("{}: --top-k does not apply", info.name)))
        }
        Sampling::Gumbel { .. } if top_k => Ok(None),
        Sampling::Gumbel { .. } => Ok(Some(seed.unwrap_or(0))),
    }
}

/// The Gumbel seed of a pipeline's selection by `info`: the pipeline's seed where the method
/// samples and `top_k` is not set, else None.
pub fn pipeline_draw(info: &Info, seed: u32, top_k: bool) -> Result<Option<u32>> {
    let seed = matches!(info.sampling, Sampling::Gumbel { .. }).then_some(seed);
    draw(info, seed, top_k)
}

/// How many rows a selection keeps: at least one.
pub fn check_k(k: u64) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidArgument("k: must be at least 1".into()));
    }
    Ok(())
}

/// What `syllabus sql` was given for a method's function ([`Info::sql`]).
pub enum SqlInput {
    /// A saved model file.
    Model(PathBuf),
    /// A target set.
    Target(Vec<InputFile>),
}

macro_rules! registry {
    ($($variant:ident: $method:ty),* $(,)?) => {
        /// Every method's [`Info`], in [`for_each_method!`]'s order.
        pub const REGISTRY: &[&Info] = &[$(&<$method as Method>::INFO),*];

        /// The scorer named `name` from its state, whichever method gives it (the cluster's
        /// codec).
        pub fn decode(name: &str, state: &[u8]) -> Result<Arc<dyn Scorer>> {
            $(
                if let Some(r) = <$method as Method>::decode(name, state) {
                    return r;
                }
            )*
            Err(Error::InvalidArgument(format!("no scoring method gives a scorer named {name}")))
        }

        /// The SQL functions' scorers: for each method that offers one, fitted from the file
        /// given with its option (`Info::sql`): a saved model, or a target set.
        pub fn sql_scorers(
            given: &[(&str, SqlInput)],
            read: &ReadOptions,
            progress: &Progress,
        ) -> Result<Vec<Arc<dyn Scorer>>> {
            let mut out = Vec::new();
            $(
                let info = &<$method as Method>::INFO;
                if let Some((_, input)) = given.iter().find(|(option, _)| Some(*option) == info.sql) {
                    let scorer = match input {
                        SqlInput::Model(p) => <$method as Method>::from_model_file(p),
                        SqlInput::Target(files) => <$method as Method>::from_target(files, read, progress),
                    };
                    if let Some(s) = scorer {
                        out.push(s?);
                    }
                }
            )*
            Ok(out)
        }
    };
}
for_each_method!(registry);

/// The method named `name`.
pub fn info(name: &str) -> Option<&'static Info> {
    REGISTRY.iter().copied().find(|i| i.name == name)
}

/// A method's settings in a pipeline's `[select]`, with what selecting adds: `k` and, for
/// methods that sample and may not (DSIR), `top_k`. Read from one table: the keys that are not
/// `k` or `top_k` are the settings' (unknown keys are errors, as everywhere in a pipeline).
pub struct Selecting<M: Method> {
    pub k: u64,
    /// The k highest instead of Gumbel top-k.
    pub top_k: bool,
    pub settings: M::Settings,
}

impl<M: Method> Clone for Selecting<M> {
    fn clone(&self) -> Self {
        Selecting { k: self.k, top_k: self.top_k, settings: self.settings.clone() }
    }
}

impl<M: Method> Debug for Selecting<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selecting")
            .field("k", &self.k)
            .field("top_k", &self.top_k)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<M: Method> Selecting<M> {
    /// The keys of the table: the settings' and the selection's.
    pub fn keys() -> Vec<&'static str> {
        let mut k = field_names::<M::Settings>();
        k.push("k");
        if Self::has_top_k() {
            k.push("top_k");
        }
        k
    }

    fn has_top_k() -> bool {
        matches!(M::INFO.sampling, Sampling::Gumbel { top_k_option: true })
    }

    pub fn validate(&self) -> Result<()> {
        // `top_k` is read only where the method may take it (`keys`), so it needs no check here.
        check_k(self.k).map_err(|e| Error::Config(format!("select.{e}")))?;
        M::validate(&self.settings).map_err(|e| match e {
            Error::Config(m) => Error::Config(m),
            e => Error::Config(format!("select: {e}")),
        })
    }
}

impl<M: Method> Serialize for Selecting<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut v = serde_json::to_value(&self.settings).map_err(S::Error::custom)?;
        let map = v.as_object_mut().ok_or_else(|| S::Error::custom("a method's settings are a table"))?;
        map.insert("k".into(), self.k.into());
        if Self::has_top_k() {
            map.insert("top_k".into(), self.top_k.into());
        }
        v.serialize(s)
    }
}

impl<'de, M: Method> Deserialize<'de> for Selecting<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let known = Self::keys();
        if let Some(bad) = table.keys().find(|k| !known.contains(&k.as_str())) {
            let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            return Err(D::Error::custom(format!("unknown field `{bad}`, expected one of {}", expected.join(", "))));
        }
        let k = match table.remove("k") {
            Some(v) => u64::deserialize(v).map_err(|e| D::Error::custom(format!("k: {e}")))?,
            None => return Err(D::Error::missing_field("k")),
        };
        let top_k = match table.remove("top_k") {
            Some(v) => bool::deserialize(v).map_err(|e| D::Error::custom(format!("top_k: {e}")))?,
            None => false,
        };
        let settings = M::Settings::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(Selecting { k, top_k, settings })
    }
}

/// The field names serde reads for a struct `T` (after renames; skipped fields left out).
pub fn field_names<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut f = FieldNames(None);
    let _ = T::deserialize(&mut f);
    f.0.map(<[&str]>::to_vec).unwrap_or_default()
}

/// A deserializer that only notes the field names a struct asks for.
struct FieldNames(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}
impl std::error::Error for Stop {}
impl serde::de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = Stop;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.0 = Some(fields);
        Err(Stop)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}
