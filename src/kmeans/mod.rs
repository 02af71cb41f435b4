//! Clusters in the lake: `syllabus score cluster` (spherical k-means over TF-IDF vectors of
//! DSIR's hashed unigram and bigram features) and the selections that use clusters
//! (`select cluster-balanced`, `select d4`).
//!
//! Per row: `cluster` (0..k), `cluster_dist` (cosine distance to its centroid) and
//! `cluster_rank` (1 for the row nearest its centroid, by distance then lake order); all three
//! are null for a document without words. The fit ([`fit`]) and the vectors ([`vectors`]) say
//! how; the model file ([`model`]) assigns new files identically (`--model`).
//!
//! Memory: the fit's centre sums (`8 * dims * k` bytes) and sample; the ranks are an external
//! sort under `--memory-limit` (24 bytes a row, spilled past it). A killed run keeps in
//! `OUT.work` the fit's state after its last finished pass (or the fitted model) and the
//! finished files' assignments, and resumes from them.
//!
//! `--cluster`: the fit runs here (its mini-batch pass is sequential in lake order), the
//! assignment on the cluster's executors ([`crate::cluster::jobs::cluster_assign`]), the
//! ranks here with the same sort ([`rank_to`]): the same output, byte for byte. A killed
//! `--cluster` run keeps its fit; the assignment starts over.

pub mod balance;
pub mod fit;
pub mod model;
pub mod related;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int32Array, Int64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::batch::{RecordBatch, COL_ID};
use crate::error::{Error, Result};
use crate::extsort::{Entry, ExternalSort};
use crate::limits::{bytes_de, bytes_ser, parse_bytes};
use crate::passes::scored::Scored;
use crate::passes::{RunReport, ScoredLake};
use crate::score::Scorer;
use crate::sink::TableWriter;
use crate::source::{FileStats, RejectWriter};
pub use fit::FitReport;
pub use model::{Assign, KMeansModel, COL_CLUSTER, COL_DIST, COL_RANK};

/// The settings of `score cluster` (and of a pipeline's clustering).
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Number of clusters (required unless --model gives them).
    #[arg(long, value_name = "K")]
    pub k: Option<usize>,
    /// Hashed feature dimensions (unigrams and bigrams, xxh3 mod dims).
    #[arg(long, default_value_t = 1 << 15)]
    pub dims: u32,
    /// Documents k-means++ seeds from (a seeded uniform sample of the lake).
    #[arg(long, default_value_t = 20_000)]
    pub sample: usize,
    /// Passes over the lake: one mini-batch pass, then Lloyd passes.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Assign with this saved model instead of fitting one.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Save the fitted model here (to assign other files with --model).
    #[arg(long, value_name = "FILE")]
    pub save_model: Option<PathBuf>,
    /// Memory for the sort that ranks rows within their cluster (spills to disk past it).
    #[arg(long, default_value = "2GB", value_parser = parse_bytes)]
    #[serde(deserialize_with = "bytes_de", serialize_with = "bytes_ser")]
    pub memory_limit: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            k: None,
            dims: 1 << 15,
            sample: 20_000,
            passes: 3,
            seed: 0,
            model: None,
            save_model: None,
            memory_limit: 2 << 30,
        }
    }
}

/// Bounds that keep the centre sums and the model file within reason.
const MAX_DIMS: u32 = 1 << 24;
const MAX_CENTRE_FLOATS: u64 = 1 << 31;

impl ClusterSettings {
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::InvalidArgument(s));
        if self.model.is_some() {
            return Ok(());
        }
        let Some(k) = self.k else {
            return bad("give the number of clusters (--k), or a saved model (--model)".into());
        };
        if k == 0 {
            return bad("k must be at least 1".into());
        }
        if self.dims == 0 || self.dims > MAX_DIMS {
            return bad(format!("dims must be between 1 and {MAX_DIMS}"));
        }
        if u64::from(self.dims) * k as u64 > MAX_CENTRE_FLOATS {
            return bad(format!(
                "dims x k = {} numbers per centre table, more than {MAX_CENTRE_FLOATS}: use fewer dims or clusters",
                u64::from(self.dims) * k as u64
            ));
        }
        if self.sample < k {
            return bad(format!("the sample ({}) must hold at least k = {k} documents", self.sample));
        }
        if self.passes == 0 {
            return bad("passes must be at least 1".into());
        }
        Ok(())
    }

    fn fit_params(&self) -> fit::FitParams {
        fit::FitParams {
            k: self.k.unwrap_or(0),
            dims: self.dims,
            sample: self.sample,
            passes: self.passes,
            seed: self.seed,
        }
    }

    /// What decides the result (resume compares it): not where outputs go nor the memory.
    pub fn resume_key(&self) -> String {
        format!("{:?}", ClusterSettings { save_model: None, memory_limit: 0, ..self.clone() })
    }
}

/// What a clustering run found, for the summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterReport {
    pub k: u32,
    /// Rows per cluster.
    pub sizes: Vec<u64>,
    /// Rows without words (no cluster).
    pub without_words: u64,
    /// The fit's report (None: the model was given).
    pub fit: Option<FitReport>,
}

const MODEL_FILE: &str = "kmeans_model.bin";
const FIT_REPORT_FILE: &str = "kmeans_fit.json";
const FIT_STATE_FILE: &str = "kmeans_fit.state";

/// The model for a run: the given one, the one an interrupted run fitted, or a new fit (saved
/// in the work directory, and where `--save-model` says).
pub fn model_for(lake: &ScoredLake, s: &ClusterSettings) -> Result<(Arc<KMeansModel>, Option<FitReport>)> {
    if let Some(p) = &s.model {
        let m = KMeansModel::load(p)?;
        if let Some(k) = s.k.filter(|&k| k != m.k as usize) {
            return Err(Error::InvalidArgument(format!("--k {k}, but the model {} has k = {}", p.display(), m.k)));
        }
        return Ok((Arc::new(m), None));
    }
    let work = lake.work;
    if let Some(w) = work {
        let (m, r) = (w.dir().join(MODEL_FILE), w.dir().join(FIT_REPORT_FILE));
        if m.exists() && r.exists() {
            let report = std::fs::read(&r).map_err(|e| Error::io(&r, e)).and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| Error::InvalidArgument(format!("{}: {e}", r.display())))
            })?;
            eprintln!("syllabus: kept the k-means model an interrupted run fitted ({})", m.display());
            let model = KMeansModel::load(&m)?;
            if let Some(p) = &s.save_model {
                model.save(p)?;
            }
            return Ok((Arc::new(model), Some(report)));
        }
    }
    let fit_lake = fit::FitLake { raw: lake.raw, read: lake.read, progress: lake.progress };
    let checkpoint = work.map(|w| w.dir().join(FIT_STATE_FILE));
    if let Some(w) = work {
        w.ready()?;
    }
    let (model, report) = fit::fit(&fit_lake, &s.fit_params(), checkpoint.as_deref())?;
    if let Some(w) = work {
        w.ready()?;
        let json = serde_json::to_vec_pretty(&report).expect("plain struct");
        crate::sink::write_atomic(&w.dir().join(FIT_REPORT_FILE), &json)?;
        model.save(&w.dir().join(MODEL_FILE))?;
        let _ = std::fs::remove_file(w.dir().join(FIT_STATE_FILE));
    }
    if let Some(p) = &s.save_model {
        model.save(p)?;
    }
    Ok((Arc::new(model), Some(report)))
}

/// The assignment scorer a cluster's plan names (`kmeans`, its state the model's bytes).
pub fn decode_scorer(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
    (name == model::ASSIGN_SCORER).then(|| {
        let model = KMeansModel::from_bytes(state, "the k-means model in a cluster plan")?;
        Ok(Arc::new(Assign { model: Arc::new(model) }) as Arc<dyn Scorer>)
    })
}

/// A row's place in its cluster: ordered by cluster, distance, row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ByDistance {
    cluster: u32,
    /// The distance's bits: distances are >= 0, so their bits order as the numbers do.
    dist: u64,
    row: u64,
}

impl Entry for ByDistance {
    const SIZE: usize = 20;
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.cluster.to_le_bytes());
        out[4..12].copy_from_slice(&self.dist.to_le_bytes());
        out[12..20].copy_from_slice(&self.row.to_le_bytes());
    }
    fn read(b: &[u8]) -> Self {
        ByDistance {
            cluster: u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            dist: u64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
            row: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.cluster == other.cluster
    }
    fn row(&self) -> u64 {
        self.row
    }
}

/// A row's rank, ordered by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RowRank {
    row: u64,
    rank: u64,
}

impl Entry for RowRank {
    const SIZE: usize = 16;
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.row.to_le_bytes());
        out[8..16].copy_from_slice(&self.rank.to_le_bytes());
    }
    fn read(b: &[u8]) -> Self {
        RowRank {
            row: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            rank: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.row == other.row
    }
    fn row(&self) -> u64 {
        self.row
    }
}

/// The columns `score cluster` writes.
pub fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(COL_ID, DataType::Utf8, false),
        Field::new(COL_CLUSTER, DataType::Int32, true),
        Field::new(COL_DIST, DataType::Float64, true),
        Field::new(COL_RANK, DataType::Int64, true),
    ]))
}

fn assignment_columns(columns: &[ArrayRef]) -> Result<(&Int32Array, &Float64Array)> {
    let c = columns.first().and_then(|c| c.as_any().downcast_ref::<Int32Array>());
    let d = columns.get(1).and_then(|c| c.as_any().downcast_ref::<Float64Array>());
    c.zip(d).ok_or_else(|| Error::InvalidArgument("not a cluster assignment: cluster (int32), cluster_dist".into()))
}

/// Assign every row of the lake to a cluster of `model` and write `id`, `cluster`,
/// `cluster_dist` and `cluster_rank` to `out`, in lake order. Needs the lake's work directory
/// (the assignments are kept there per file, and read back to add the ranks).
///
/// With `terms_out`, also a table of one row per cluster there: `cluster`, `size`,
/// `top_terms` (the ten features of greatest centroid weight, as words) and `nearest` (the ids
/// of its three rows nearest the centroid), so that a user can name the clusters.
pub fn assign_to(
    lake: &ScoredLake,
    model: Arc<KMeansModel>,
    memory_limit: u64,
    rejects: Option<&mut RejectWriter>,
    out: &Path,
    terms_out: Option<&Path>,
) -> Result<(RunReport, ClusterReport)> {
    let scorer = Assign { model: model.clone() };
    rank_to(lake, model, memory_limit, out, terms_out, |each| lake.score_pass(&scorer, rejects, each))
}

/// What [`assign_to`] does once the rows are assigned: `assigned` hands every row's
/// assignment ([`Assign`]'s columns) to its argument in lake order, keeps it in the lake's
/// work directory for [`ScoredLake::replay`], and returns the files' counts. `score cluster
/// --cluster` assigns on the cluster and ranks here.
pub fn rank_to(
    lake: &ScoredLake,
    model: Arc<KMeansModel>,
    memory_limit: u64,
    out: &Path,
    terms_out: Option<&Path>,
    assigned: impl FnOnce(&mut dyn FnMut(&Scored) -> Result<()>) -> Result<Vec<FileStats>>,
) -> Result<(RunReport, ClusterReport)> {
    let work = lake.work.ok_or_else(|| Error::InvalidArgument("clustering needs a work directory".into()))?;
    let spill = work.dir().join("spill");
    if spill.exists() {
        std::fs::remove_dir_all(&spill).map_err(|e| Error::io(&spill, e))?;
    }
    let k = model.k;
    let scorer = Assign { model: model.clone() };
    let budget = (memory_limit / 2) as usize;
    let mut by_distance: ExternalSort<ByDistance> = ExternalSort::new(&spill, "dist", budget);
    let mut report = ClusterReport { k, sizes: vec![0; k as usize], ..Default::default() };
    let files = assigned(&mut |b: &Scored| {
        let (cluster, dist) = assignment_columns(b.columns)?;
        for i in 0..b.ids.len() {
            if cluster.is_null(i) {
                report.without_words += 1;
                continue;
            }
            let c = cluster.value(i) as u32;
            report.sizes[c as usize] += 1;
            by_distance.push(ByDistance { cluster: c, dist: dist.value(i).to_bits(), row: b.first_row + i as u64 })?;
        }
        Ok(())
    })?;
    // Ranks in cluster order, then sorted back into row order.
    let mut by_row: ExternalSort<RowRank> = ExternalSort::new(&spill, "rank", budget);
    let mut merged = by_distance.merged()?;
    let (mut cluster, mut rank) = (u32::MAX, 0u64);
    // The rows nearest each centroid, whose ids the terms table shows.
    let mut nearest: rustc_hash::FxHashMap<u64, (u32, u64)> = Default::default();
    while let Some(e) = merged.next_entry()? {
        if e.cluster != cluster {
            (cluster, rank) = (e.cluster, 0);
        }
        rank += 1;
        if rank <= NEAREST {
            nearest.insert(e.row, (e.cluster, rank));
        }
        by_row.push(RowRank { row: e.row, rank })?;
    }
    let mut nearest_ids: Vec<Vec<(u64, String)>> = vec![Vec::new(); k as usize];
    drop(merged);
    let mut ranks = by_row.merged()?;
    let schema = output_schema();
    let mut writer = TableWriter::create(out, schema.clone())?;
    lake.replay(&scorer.output_fields(), |b| {
        let (cluster, _) = assignment_columns(b.columns)?;
        let mut col = Int64Builder::with_capacity(b.ids.len());
        for i in 0..b.ids.len() {
            if cluster.is_null(i) {
                col.append_null();
                continue;
            }
            let row = b.first_row + i as u64;
            if let Some(&(c, r)) = nearest.get(&row) {
                nearest_ids[c as usize].push((r, b.ids.value(i).to_string()));
            }
            match ranks.next_entry()? {
                Some(r) if r.row == row => col.append_value(r.rank as i64),
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "ranks out of step at row {row} ({other:?}): remove {} and run again",
                        work.dir().display()
                    )))
                }
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(b.ids.clone())];
        columns.extend(b.columns.iter().cloned());
        columns.push(Arc::new(col.finish()));
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow("a cluster batch", e))?;
        writer.write(&batch)
    })?;
    drop(ranks);
    writer.finish()?;
    let _ = std::fs::remove_dir_all(&spill);
    if let Some(path) = terms_out {
        write_terms(&model, &report.sizes, nearest_ids, path)?;
    }
    let eligible = report.sizes.iter().sum();
    let run = RunReport { selected_per_file: vec![0; files.len()], files, eligible, ..Default::default() };
    Ok((run, report))
}

/// Rows per cluster whose ids the terms table shows.
const NEAREST: u64 = 3;
/// Terms per cluster in the terms table.
const TOP_TERMS: usize = 10;

/// The columns of the terms table.
pub fn terms_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(COL_CLUSTER, DataType::Int32, false),
        Field::new("size", DataType::Int64, false),
        Field::new("top_terms", DataType::Utf8, false),
        Field::new("nearest", DataType::Utf8, false),
    ]))
}

fn write_terms(model: &KMeansModel, sizes: &[u64], mut nearest: Vec<Vec<(u64, String)>>, path: &Path) -> Result<()> {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    let k = model.k as usize;
    let top: Vec<String> = (0..k).map(|c| model.top_terms(c, TOP_TERMS).join(", ")).collect();
    let near: Vec<String> = nearest
        .iter_mut()
        .map(|v| {
            v.sort();
            v.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>().join(", ")
        })
        .collect();
    let schema = terms_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(0..k as i32)),
        Arc::new(Int64Array::from_iter_values(sizes.iter().map(|&n| n as i64))),
        Arc::new(StringArray::from(top)),
        Arc::new(StringArray::from(near)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow("the terms table", e))?;
    let mut w = TableWriter::create(path, schema)?;
    w.write(&batch)?;
    w.finish().map(|_| ())
}

/// Print what a clustering run found.
pub fn print_report(r: &ClusterReport) {
    let mut sizes: Vec<u64> = r.sizes.clone();
    sizes.sort_unstable();
    let (min, max) = (sizes.first().copied().unwrap_or(0), sizes.last().copied().unwrap_or(0));
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let empty = sizes.iter().filter(|&&s| s == 0).count();
    eprintln!(
        "  {} clusters: sizes {min} to {max} (median {median}, {empty} empty); {} rows without words (no cluster)",
        r.k, r.without_words
    );
    if let Some(f) = &r.fit {
        let d: Vec<String> = f.mean_dist.iter().map(|d| format!("{d:.4}")).collect();
        eprintln!("  fit: seeded from {} sampled rows; mean cosine distance per pass: {}", f.sample, d.join(", "));
    }
}

/// A cluster table (`score cluster`'s output), by id: `cluster` and the other columns asked for.
pub type ClusterTable = std::collections::HashMap<String, Box<[Option<f64>]>>;

/// Read `cluster` and `cols` of cluster (or score) tables by id; nulls are kept as None.
pub fn read_cluster_table(files: &[crate::source::InputFile], cols: &[&str]) -> Result<ClusterTable> {
    let mut all = vec![COL_CLUSTER];
    all.extend_from_slice(cols);
    crate::select::rule::read_score_columns(files, &all, true)
}

/// The table `select cluster-balanced` reads: `cluster` from `clusters`, and with `by` that
/// column from the `scores` tables (files, directories, globs; when there are none, from the
/// cluster tables).
pub fn balanced_table(
    clusters: &[crate::source::InputFile],
    by: Option<&str>,
    scores: &[String],
) -> Result<ClusterTable> {
    let Some(by) = by else { return read_cluster_table(clusters, &[]) };
    if scores.is_empty() {
        return read_cluster_table(clusters, &[by]);
    }
    let mut table = read_cluster_table(clusters, &[])?;
    let s = crate::select::rule::read_score_columns(&crate::source::expand_inputs(scores)?, &[by], true)?;
    for (id, v) in table.iter_mut() {
        let x = s.get(id).and_then(|x| x[0]);
        *v = vec![v[0], x].into_boxed_slice();
    }
    Ok(table)
}

/// The table `select d4` reads: `cluster`, `cluster_rank` and `cluster_dist`.
pub fn d4_table(clusters: &[crate::source::InputFile]) -> Result<ClusterTable> {
    read_cluster_table(clusters, &[COL_RANK, COL_DIST])
}

/// Clusters as a curriculum's domains: each id's cluster from the table (rows without words:
/// the domain "none"). Memory: every id of the table.
pub fn cluster_domains(table: &Path) -> Result<crate::curriculum::prepare::DomainOf> {
    let t = read_cluster_table(&[crate::source::InputFile::new(table)?], &[])?;
    let by_id = t
        .into_iter()
        .map(|(id, v)| Ok((id, cluster_of(v[0])?.map_or_else(|| "none".to_string(), |c| c.to_string()))))
        .collect::<Result<_>>()?;
    let what = format!("the cluster table {}", table.display());
    Ok(crate::curriculum::prepare::DomainOf::ById { what, by_id: Arc::new(by_id) })
}

/// Why a lake row the cluster table lacks is a bad record.
fn not_in_table(id: &str) -> String {
    format!("the document {id:?} is not in the cluster table")
}

/// The largest cluster number a selection takes (its tables are per cluster).
const MAX_CLUSTER: f64 = (1u32 << 24) as f64;

fn cluster_of(v: Option<f64>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(c) if (0.0..MAX_CLUSTER).contains(&c) && c.fract() == 0.0 => Ok(Some(c as u32)),
        Some(c) => Err(Error::InvalidArgument(format!(
            "cluster {c} is not a cluster number (0 to {}, as score cluster writes them)",
            MAX_CLUSTER as u64 - 1
        ))),
    }
}

/// How `select cluster-balanced` chooses.
#[derive(Debug, Clone)]
pub struct Balanced {
    pub k: u64,
    pub budget: balance::BudgetRule,
    pub alpha: f64,
    /// Within a cluster, the highest of this column first (else a seeded uniform draw).
    pub by: Option<String>,
    pub seed: u64,
}

/// `select cluster-balanced`: k rows, a budget per cluster, written with all their columns.
pub fn select_balanced(
    lake: &ScoredLake,
    table: &ClusterTable,
    b: &Balanced,
    rejects: Option<&mut RejectWriter>,
    out: &Path,
) -> Result<(RunReport, Vec<u64>)> {
    if b.budget == balance::BudgetRule::Mean && b.by.is_none() {
        return Err(Error::InvalidArgument("--budget mean needs a score to average (--by)".into()));
    }
    if !(b.alpha.is_finite() && b.alpha >= 0.0) {
        return Err(Error::InvalidArgument("--alpha must be a finite number >= 0".into()));
    }
    let mut rows: Vec<balance::Member> = Vec::new();
    let mut bad = None;
    let (files, points) =
        lake.join_by_id(table, not_in_table, rejects, |row, file, loc, v| match cluster_of(v[0]) {
            Ok(Some(cluster)) => {
                let (key, score) = match &b.by {
                    Some(_) => match v[1] {
                        Some(s) => (s, s),
                        None => {
                            bad.get_or_insert_with(|| format!("row {row} has a cluster but no {:?} score", b.by));
                            return;
                        }
                    },
                    None => (
                        (xxhash_rust::xxh3::xxh3_64_with_seed(&row.to_le_bytes(), b.seed) >> 11) as f64,
                        f64::from(cluster),
                    ),
                };
                rows.push(balance::Member { cluster, key, score, row, file, loc });
            }
            Ok(None) => {}
            Err(e) => {
                bad.get_or_insert_with(|| e.to_string());
            }
        })?;
    if let Some(why) = bad {
        return Err(Error::InvalidArgument(why));
    }
    let k_clusters = rows.iter().map(|m| m.cluster as usize + 1).max().unwrap_or(0);
    let (sizes, means) = balance::cluster_stats(&rows, k_clusters);
    let weights = balance::weights(b.budget, b.alpha, &sizes, &means)?;
    let budgets = balance::budgets(&sizes, &weights, b.k);
    let eligible = rows.len() as u64;
    let chosen = balance::choose(rows, &budgets);
    let field = Field::new(b.by.as_deref().unwrap_or(COL_CLUSTER), DataType::Float64, false);
    let selected_per_file = lake.write_rows(&files, &chosen, field, out, &points)?;
    let run = RunReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() };
    Ok((run, budgets))
}

/// `select d4`: every row but the `drop` share of each cluster nearest its centroid.
pub fn select_d4(
    lake: &ScoredLake,
    table: &ClusterTable,
    drop: f64,
    rejects: Option<&mut RejectWriter>,
    out: &Path,
) -> Result<RunReport> {
    if !(0.0..1.0).contains(&drop) {
        return Err(Error::InvalidArgument(format!("--drop {drop}: a share in [0, 1)")));
    }
    // (cluster, rank, dist) per row; sizes counted over the lake's rows.
    let mut rows: Vec<(u32, u64, crate::select::Ranked)> = Vec::new();
    let mut bad = None;
    let (files, points) =
        lake.join_by_id(table, not_in_table, rejects, |row, file, loc, v| match (cluster_of(v[0]), v[1], v[2]) {
            (Ok(Some(c)), Some(rank), Some(dist)) => {
                rows.push((c, rank as u64, crate::select::Ranked { key: dist, row, score: dist, file, loc }));
            }
            (Ok(None), _, _) => {}
            (Ok(Some(_)), _, _) => {
                bad.get_or_insert_with(|| format!("row {row} has a cluster but no {COL_RANK} or {COL_DIST}"));
            }
            (Err(e), _, _) => {
                bad.get_or_insert_with(|| e.to_string());
            }
        })?;
    if let Some(why) = bad {
        return Err(Error::InvalidArgument(why));
    }
    let k = rows.iter().map(|r| r.0 as usize + 1).max().unwrap_or(0);
    let mut sizes = vec![0u64; k];
    for r in &rows {
        sizes[r.0 as usize] += 1;
    }
    let eligible = rows.len() as u64;
    let chosen: Vec<crate::select::Ranked> = rows
        .into_iter()
        .filter(|(c, rank, _)| balance::d4_keeps(*rank, sizes[*c as usize], drop))
        .map(|r| r.2)
        .collect();
    let field = Field::new(COL_DIST, DataType::Float64, false);
    let selected_per_file = lake.write_rows(&files, &chosen, field, out, &points)?;
    Ok(RunReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() })
}
