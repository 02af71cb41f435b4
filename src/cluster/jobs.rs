//! The scoring and selection stages as cluster jobs, each a map over the lake's files and a
//! small reduce, giving what the local passes of [`crate::passes::scored`] give:
//!
//! - DSIR fit: `syllabus_dsir_counts` over the lake, one partial state of bucket counts per
//!   file summed on one task (buckets x 8 bytes per file shipped);
//! - file stats: each file parsed (no scoring) for its counts, its jsonl fields (the columns a
//!   selection writes) and, with `--on-bad-record skip`, its bad records, which the client
//!   writes to the rejects file in lake order;
//! - eligible rows per file (DSIR: `n_words >= min_words`, a word count without hashing); one
//!   row per file to the client, whose prefix sums are the Gumbel offsets;
//! - score: the scorer as a scalar function, rows streamed to the client in lake order (a
//!   merge of the files, each already in order) and written in the local run's batches;
//! - select: the key (score, plus the row's numpy Gumbel draw) computed on the executors,
//!   top-k per file, the k best of all merged exactly on one task (ties to the earlier row);
//!   the client then reads the chosen rows from the lake and writes them as a local run does.
//!
//! Memory on the client: one output batch while scoring, the k chosen rows while selecting.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray, StructArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, ScalarUDFImpl};
use futures::StreamExt;

use super::lake::{LakeSpec, LakeTable};
use super::udf::{self, DsirCounts, GumbelKey, ScorerUdf};
use super::Cluster;
use crate::batch::COL_ID;
use crate::error::{Error, Result};
use crate::methods::{FitLake, LakeCounts, Method};
use crate::passes::{Keep, RunReport, ScoredLake};
use crate::progress::Progress;
use crate::score::dsir::{Counts, DsirParams};
use crate::score::Scorer;
use crate::select::Ranked;
use crate::sink::TableWriter;
use crate::source::{FileColumn, FileStats, InputFile, ReadOptions, RejectWriter};

const TABLE: &str = "syllabus_lake";
const INFO: &str = "syllabus_lake_info";

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn err(e: datafusion::error::DataFusionError) -> Error {
    Error::InvalidArgument(format!("cluster job failed: {}", readable(&e.to_string())))
}

/// A task's error as the client gets it is the debug text of the error chain; the message
/// syllabus raised on the executor is its innermost quoted string.
fn readable(msg: &str) -> String {
    let Some(at) = msg.find("Task failed due to runtime execution error") else { return msg.to_string() };
    let tail = &msg[at..];
    let Some(open) = tail.rfind("(\"") else { return msg.to_string() };
    let inner = &tail[open + 2..];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => break,
            },
            '"' => return out,
            c => out.push(c),
        }
    }
    msg.to_string()
}

fn column<T: 'static>(b: &RecordBatch, i: usize) -> Result<&T> {
    b.column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::InvalidArgument(format!("cluster result column {i} has an unexpected type")))
}

/// Rows streamed back in lake order, regrouped into the batches the local reader makes (a
/// group ends where `(__file, __batch)` changes), so that the client writes what a local run
/// writes, batch for batch.
struct Regroup {
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    key: Option<(u32, u32)>,
}

impl Regroup {
    fn new(schema: SchemaRef) -> Self {
        Regroup { schema, pending: Vec::new(), key: None }
    }

    /// Add `part` (rows with `schema`), whose rows are in files `file` and reader batches
    /// `batch`; `done(file, rows)` gets each finished group.
    fn push(
        &mut self,
        part: &RecordBatch,
        file: &UInt32Array,
        batch: &UInt32Array,
        done: &mut dyn FnMut(u32, RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut start = 0;
        for i in 0..part.num_rows() {
            let k = (file.value(i), batch.value(i));
            if self.key != Some(k) {
                if i > start {
                    self.pending.push(part.slice(start, i - start));
                }
                self.flush(done)?;
                start = i;
                self.key = Some(k);
            }
        }
        self.pending.push(part.slice(start, part.num_rows() - start));
        Ok(())
    }

    fn flush(&mut self, done: &mut dyn FnMut(u32, RecordBatch) -> Result<()>) -> Result<()> {
        let Some((file, _)) = self.key.filter(|_| !self.pending.is_empty()) else { return Ok(()) };
        let b = arrow::compute::concat_batches(&self.schema, self.pending.iter())
            .map_err(|e| Error::arrow("joining the cluster's rows", e))?;
        self.pending.clear();
        done(file, b)
    }
}

/// A lake registered with a cluster session.
pub struct ClusterLake<'a> {
    pub cluster: &'a Cluster,
    pub raw: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub progress: &'a Progress,
    /// A per-file column (the domain) added to the rows a selection writes.
    pub file_column: Option<FileColumn>,
    text: String,
}

impl<'a> ClusterLake<'a> {
    pub fn new(
        cluster: &'a Cluster,
        raw: &'a [InputFile],
        read: &'a ReadOptions,
        progress: &'a Progress,
    ) -> Result<Self> {
        let spec = LakeSpec::new(raw, read)?;
        let ctx = &cluster.ctx;
        for t in [TABLE, INFO] {
            let _ = ctx.deregister_table(t);
        }
        ctx.register_table(INFO, Arc::new(LakeTable { spec: Arc::new(spec.info()) })).map_err(err)?;
        ctx.register_table(TABLE, Arc::new(LakeTable { spec: Arc::new(spec) })).map_err(err)?;
        Ok(ClusterLake { cluster, raw, read, progress, file_column: None, text: quoted(&read.text_field) })
    }

    /// Each file's counts and jsonl fields (what a local reader's stats hold), and its bad
    /// records (`--on-bad-record skip`) written to `rejects` in lake order: a pass that
    /// parses every row and scores none.
    pub fn file_stats(&self, mut rejects: Option<&mut RejectWriter>) -> Result<Vec<FileStats>> {
        let mut stats: Vec<FileStats> = self
            .raw
            .iter()
            .map(|f| FileStats { file: f.name.clone(), format: f.format.name().to_string(), ..Default::default() })
            .collect();
        let bar = self.progress.rows("read (cluster)");
        for b in self.collect(&format!("SELECT __file, __record, __stats FROM {INFO} ORDER BY __file, __loc"))? {
            let f: &UInt32Array = column(&b, 0)?;
            let r: &StringArray = column(&b, 1)?;
            let s: &StringArray = column(&b, 2)?;
            for i in 0..b.num_rows() {
                let st = stats
                    .get_mut(f.value(i) as usize)
                    .ok_or_else(|| Error::InvalidArgument("the cluster returned an unknown file".into()))?;
                if r.is_valid(i) {
                    if let Some(w) = rejects.as_deref_mut() {
                        w.append_line(r.value(i))?;
                    }
                }
                if s.is_valid(i) {
                    let info: super::lake::FileInfo = serde_json::from_str(s.value(i))
                        .map_err(|e| Error::InvalidArgument(format!("the cluster's file counts: {e}")))?;
                    st.read = info.read;
                    st.kept = info.kept;
                    st.rejected = info.rejected;
                    st.fields_seen = info.fields.into_iter().collect();
                    bar.inc(info.kept);
                }
            }
        }
        bar.finish_and_clear();
        Ok(stats)
    }

    async fn stream(&self, sql: &str) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
        let df = self.cluster.ctx.sql(sql).await.map_err(err)?;
        let plan = df.create_physical_plan().await.map_err(err)?;
        super::execute(&self.cluster.ctx, &self.cluster.host, self.cluster.port, plan).map_err(err)
    }

    fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        if std::env::var_os("SYLLABUS_EXPLAIN").is_some() {
            let plan = self.cluster.block_on(async {
                let df = self.cluster.ctx.sql(&format!("EXPLAIN {sql}")).await.map_err(err)?;
                df.collect().await.map_err(err)
            })?;
            eprintln!("{}", arrow::util::pretty::pretty_format_batches(&plan).unwrap());
        }
        self.cluster.block_on(async {
            let mut s = self.stream(sql).await?;
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                out.push(b.map_err(err)?);
            }
            Ok(out)
        })
    }

    fn register_udf(&self, f: ScalarUDF) {
        self.cluster.ctx.register_udf(f);
    }

    /// Register `scorer` as a function ([`ScorerUdf`]); its name.
    fn register_scorer(&self, scorer: Arc<dyn Scorer>) -> String {
        let f = ScorerUdf::new(scorer);
        let name = f.name().to_string();
        self.register_udf(ScalarUDF::new_from_impl(f));
        name
    }

    /// The raw counts of the DSIR fit: every file's documents, each file up to its budget.
    pub fn dsir_raw_counts(&self, params: &DsirParams, per_file_limit: Option<u64>) -> Result<Counts> {
        self.cluster.ctx.register_udaf(AggregateUDF::new_from_impl(DsirCounts::new(params.clone(), per_file_limit)));
        let bar = self.progress.rows("fit: raw (cluster)");
        let b = self.collect(&format!("SELECT {}(__file, {}) FROM {TABLE}", udf::DSIR_COUNTS, self.text))?;
        bar.finish_and_clear();
        let bytes = b
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| Error::InvalidArgument("the cluster returned no counts".into()))?;
        let a: &BinaryArray = column(bytes, 0)?;
        udf::decode_counts(a.value(0), params.buckets)
    }

    /// Per file, its rows that may be selected: the scorer's condition over the output of the
    /// cheaper scorer it names (DSIR: a word count without hashing), or every kept row.
    fn eligible_per_file(&self, scorer: &Arc<dyn Scorer>, files: &[FileStats]) -> Result<Vec<u64>> {
        let Some((condition, cheaper)) = scorer.eligible_sql() else {
            return Ok(files.iter().map(|f| f.kept).collect());
        };
        let name = self.register_scorer(cheaper.unwrap_or_else(|| scorer.clone()));
        let sql = format!(
            "SELECT __file, CAST(sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT) FROM (SELECT __file, {name}({}) AS s FROM {TABLE}) GROUP BY __file",
            self.text
        );
        let mut per_file = vec![0u64; self.raw.len()];
        for b in self.collect(&sql)? {
            let f: &UInt32Array = column(&b, 0)?;
            let e: &Int64Array = column(&b, 1)?;
            for i in 0..b.num_rows() {
                let slot = per_file
                    .get_mut(f.value(i) as usize)
                    .ok_or_else(|| Error::InvalidArgument("the cluster returned an unknown file".into()))?;
                *slot = e.value(i) as u64;
            }
        }
        Ok(per_file)
    }

    /// Score every row and write `id` and the score columns in lake order, in the batches a
    /// local run writes. `files`: [`ClusterLake::file_stats`], for the report.
    pub fn score_to(&self, scorer: &Arc<dyn Scorer>, files: Vec<FileStats>, out: &Path) -> Result<RunReport> {
        let name = self.register_scorer(scorer.clone());
        let sql = format!("SELECT __file, __batch, id, {name}({}) AS s FROM {TABLE} ORDER BY __file, __loc", self.text);
        let mut fields = vec![Field::new(COL_ID, DataType::Utf8, false)];
        fields.extend(scorer.output_fields());
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let mut writer = TableWriter::create(out, schema.clone())?;
        let bar = self.progress.rows("score (cluster)");
        let mut eligible = 0u64;
        let mut groups = Regroup::new(schema.clone());
        let mut write = |_: u32, b: RecordBatch| writer.write(&b);
        self.cluster.block_on(async {
            let mut s = self.stream(&sql).await?;
            while let Some(b) = s.next().await {
                let b = b.map_err(err)?;
                let ids: &StringArray = column(&b, 2)?;
                let scores = b
                    .column(3)
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or_else(|| Error::InvalidArgument("a scorer's result is not a struct".into()))?
                    .columns()
                    .to_vec();
                eligible += (0..b.num_rows()).filter(|&i| scorer.eligible(&scores, i)).count() as u64;
                let mut cols: Vec<ArrayRef> = vec![Arc::new(ids.clone())];
                cols.extend(scores);
                let part =
                    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("building scores", e))?;
                groups.push(&part, column(&b, 0)?, column(&b, 1)?, &mut write)?;
                bar.inc(part.num_rows() as u64);
            }
            groups.flush(&mut write)
        })?;
        bar.finish_and_clear();
        writer.finish()?;
        Ok(RunReport { selected_per_file: vec![0; files.len()], files, eligible, ..Default::default() })
    }

    /// Keep the k eligible rows with the greatest score (plus numpy's Gumbel draws with
    /// `seed`), and write them with all their columns and the score, as a local run does.
    /// `files`: [`ClusterLake::file_stats`] (the columns written come from it).
    pub fn select_to(
        &self,
        scorer: &Arc<dyn Scorer>,
        files: Vec<FileStats>,
        keep: Keep,
        seed: Option<u32>,
        out: &Path,
    ) -> Result<RunReport> {
        let per_file = self.eligible_per_file(scorer, &files)?;
        let eligible: u64 = per_file.iter().sum();
        let k = keep.k;
        if keep.require_fewer_than_eligible && k >= eligible {
            return Err(Error::InvalidArgument(format!(
                "k = {k} must be smaller than the number of eligible rows ({eligible} {})",
                scorer.eligibility()
            )));
        }
        let name = self.register_scorer(scorer.clone());
        let field = scorer.output_fields()[0].clone();
        let rank = format!("s['{}']", field.name());
        let filter = scorer.eligible_sql().map(|(c, _)| format!("WHERE {c}")).unwrap_or_default();
        let inner = format!(
            "SELECT __file, __loc, {rank} AS score FROM (SELECT __file, __loc, {name}({}) AS s FROM {TABLE}) {filter}",
            self.text
        );
        let key = match seed {
            Some(seed) => {
                let mut offsets = Vec::with_capacity(per_file.len());
                let mut total = 0u64;
                for n in &per_file {
                    offsets.push(total);
                    total += n;
                }
                self.register_udf(ScalarUDF::new_from_impl(GumbelKey::new(seed, offsets)));
                format!("{}(__file, __loc, score)", udf::GUMBEL)
            }
            None => "score".into(),
        };
        let sql = format!(
            "SELECT __file, __loc, score, {key} AS key FROM ({inner}) ORDER BY key DESC, __file, __loc LIMIT {k}"
        );
        let bar = self.progress.rows("select (cluster)");
        let mut chosen = Vec::with_capacity(usize::try_from(k.min(eligible)).unwrap_or(0));
        for b in self.collect(&sql)? {
            let file: &UInt32Array = column(&b, 0)?;
            let loc: &UInt64Array = column(&b, 1)?;
            let score: &Float64Array = column(&b, 2)?;
            let key: &Float64Array = column(&b, 3)?;
            for i in 0..b.num_rows() {
                chosen.push(Ranked {
                    key: key.value(i),
                    row: 0,
                    score: score.value(i),
                    file: file.value(i),
                    loc: loc.value(i),
                });
            }
        }
        bar.finish_and_clear();
        chosen.sort_by_key(|r| (r.file, r.loc));
        for (i, r) in chosen.iter_mut().enumerate() {
            r.row = i as u64;
        }
        let lake = ScoredLake {
            raw: self.raw,
            read: self.read,
            progress: self.progress,
            file_column: self.file_column.clone(),
            work: None,
        };
        let selected_per_file = lake.write_rows(&files, &chosen, field, out, &crate::source::StartPoints::default())?;
        Ok(RunReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() })
    }
}

impl LakeCounts for ClusterLake<'_> {
    fn dsir_counts(&self, params: &DsirParams, per_file_limit: Option<u64>) -> Result<Counts> {
        self.dsir_raw_counts(params, per_file_limit)
    }
}

impl ClusterLake<'_> {
    /// Fit `M`: what it reads of the target set here, its counts over the lake on the cluster.
    pub fn fit<M: Method>(
        &self,
        settings: &M::Settings,
        rejects: Option<&mut RejectWriter>,
    ) -> Result<crate::methods::Fitted> {
        let lake = FitLake { raw: self.raw, read: self.read, progress: self.progress, work: None, counts: Some(self) };
        crate::methods::fit::<M>(settings, &lake, rejects)
    }
}

/// `score METHOD --cluster` (`select`: None) and `select METHOD --cluster` (`select`: k and
/// the Gumbel seed): fit, then score or select on the cluster at `url`; bad records go to a
/// rejects file at `rejects`, made once the cluster is reached. Returns the report, the target
/// set's counts and the rejects file.
#[allow(clippy::too_many_arguments)]
pub fn run_method<M: Method>(
    url: &str,
    settings: &M::Settings,
    select: Option<(u64, Option<u32>)>,
    files: &[InputFile],
    read: &ReadOptions,
    progress: &Progress,
    out: &Path,
    rejects: Option<&Path>,
) -> Result<(RunReport, Vec<FileStats>, Option<RejectWriter>)> {
    let cluster = Cluster::connect(url)?;
    let lake = ClusterLake::new(&cluster, files, read, progress)?;
    let mut rejects = rejects.map(RejectWriter::create).transpose()?;
    let fitted = lake.fit::<M>(settings, rejects.as_mut())?;
    let stats = lake.file_stats(rejects.as_mut())?;
    let report = match select {
        None => lake.score_to(&fitted.scorer, stats, out)?,
        Some((k, seed)) => lake.select_to(&fitted.scorer, stats, M::INFO.keep(k), seed, out)?,
    };
    Ok((report, fitted.target_stats, rejects))
}

/// A row of the cluster's dedup join: its file and location, in lake order.
fn row_key(file: u32, loc: u64) -> u64 {
    (u64::from(file) << 40) | loc
}

const ROW_KEY_SQL: &str = "(CAST(__file AS BIGINT) * 1099511627776 + CAST(__loc AS BIGINT))";

impl ClusterLake<'_> {
    /// `score dedup --cluster`: the signatures where the files are (map), the band and exact
    /// joins as group-bys on the key (Ballista's hash-repartitioned shuffle: only rows that
    /// share a key come back), the components here, then every row's decision written in lake
    /// order in the local run's batches. `files`: [`ClusterLake::file_stats`].
    pub fn dedup_to(
        &self,
        settings: &crate::dedup::DedupSettings,
        files: Vec<FileStats>,
        out: &Path,
    ) -> Result<(RunReport, crate::dedup::DedupReport)> {
        use crate::dedup::{Columns, Decider, Found, Join};
        check_dedup(settings, self.raw.len())?;
        for f in &files {
            if f.read >= 1 << 40 {
                return Err(Error::InvalidArgument(format!("{}: more than 2^40 rows", f.file)));
            }
        }
        let name = self.register_scorer(crate::dedup::signature_scorer(settings)?);
        let sigs = format!("SELECT {ROW_KEY_SQL} AS r, {name}({}) AS s FROM {TABLE}", self.text);
        let rows_of = |b: &RecordBatch, i: usize| -> Result<Vec<u64>> {
            let lists: &arrow::array::ListArray = column(b, 0)?;
            let v = lists.value(i);
            let v = v
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| Error::InvalidArgument("the cluster's groups are not row numbers".into()))?;
            let mut rows: Vec<u64> = v.values().iter().map(|&r| r as u64).collect();
            rows.sort_unstable();
            Ok(rows)
        };
        let mut join = Join::new(true, false);
        let bar = self.progress.rows("join (cluster)");
        let bands = format!(
            "SELECT array_agg(r) FROM (SELECT r, unnest(s['bands']) AS k FROM ({sigs})) GROUP BY k HAVING count(*) > 1"
        );
        for b in self.collect(&bands)? {
            for i in 0..b.num_rows() {
                let rows = rows_of(&b, i)?;
                bar.inc(rows.len() as u64);
                join.band_group(rows.into_iter());
            }
        }
        // Exact groups, and the rows without shingles (alone or not) to count them.
        let exact = format!(
            "SELECT array_agg(r), CAST(sum(CASE WHEN s['bands'] IS NULL THEN 1 ELSE 0 END) AS BIGINT) FROM ({sigs}) \
             GROUP BY s['exact_hi'], s['exact_lo'] HAVING count(*) > 1 OR sum(CASE WHEN s['bands'] IS NULL THEN 1 ELSE 0 END) > 0"
        );
        let mut without_shingles = 0u64;
        for b in self.collect(&exact)? {
            let nulls: &Int64Array = column(&b, 1)?;
            for i in 0..b.num_rows() {
                without_shingles += nulls.value(i) as u64;
                let rows = rows_of(&b, i)?;
                if rows.len() > 1 {
                    join.exact_group(rows.into_iter());
                }
            }
        }
        bar.finish_and_clear();
        let found = Found::from_join(join, files, without_shingles);
        let mut per_file = found.per_file();
        let mut decider = Decider::new(&found);
        let mut writer = TableWriter::create(out, crate::dedup::output_schema())?;
        let mut columns = Columns::default();
        let bar = self.progress.rows("decide (cluster)");
        let sql = format!("SELECT __file, __batch, __loc, id FROM {TABLE} ORDER BY __file, __loc");
        self.cluster.block_on(async {
            let mut s = self.stream(&sql).await?;
            let mut key: Option<(u32, u32)> = None;
            while let Some(b) = s.next().await {
                let b = b.map_err(err)?;
                let file: &UInt32Array = column(&b, 0)?;
                let batch: &UInt32Array = column(&b, 1)?;
                let loc: &UInt64Array = column(&b, 2)?;
                let ids: &StringArray = column(&b, 3)?;
                for i in 0..b.num_rows() {
                    // Cut where the (file, batch) of the local reader changes.
                    let k = (file.value(i), batch.value(i));
                    if key != Some(k) && !columns.is_empty() {
                        writer.write(&columns.finish()?)?;
                    }
                    key = Some(k);
                    let d = decider.row(row_key(k.0, loc.value(i)), ids.value(i))?;
                    if !d.keep {
                        let f = per_file
                            .get_mut(k.0 as usize)
                            .ok_or_else(|| Error::InvalidArgument("the cluster returned an unknown file".into()))?;
                        if d.exact_copy {
                            f.removed_exact += 1;
                        } else {
                            f.removed_near += 1;
                        }
                    }
                    columns.push(ids.value(i), &d);
                }
                bar.inc(b.num_rows() as u64);
            }
            if !columns.is_empty() {
                writer.write(&columns.finish()?)?;
            }
            Ok::<(), Error>(())
        })?;
        bar.finish_and_clear();
        writer.finish()?;
        let report = found.report(per_file);
        Ok((report.run_report(found.files.clone()), report))
    }
}

impl ClusterLake<'_> {
    /// `score cluster --cluster`: every row's assignment to `model`'s centroids computed where
    /// its file is (the model travels with the plan), streamed back in lake order, handed to
    /// `each` and kept in `work` as a local pass keeps it, cut where the local reader's
    /// batches are ([`crate::kmeans::rank_to`] ranks them here).
    pub fn assign_rows(
        &self,
        model: Arc<crate::kmeans::KMeansModel>,
        work: &crate::passes::work::Work,
        each: &mut dyn FnMut(&crate::passes::scored::Scored) -> Result<()>,
    ) -> Result<()> {
        let scorer: Arc<dyn Scorer> = Arc::new(crate::kmeans::Assign { model });
        let name = self.register_scorer(scorer.clone());
        let sql = format!(
            "SELECT __file, __batch, __loc, id, {name}({}) AS s FROM {TABLE} ORDER BY __file, __loc",
            self.text
        );
        let fields = scorer.output_fields();
        let mut schema = vec![Field::new(COL_ID, DataType::Utf8, false)];
        schema.extend(fields.iter().cloned());
        schema.push(Field::new("__loc", DataType::UInt64, false));
        let schema: SchemaRef = Arc::new(Schema::new(schema));
        let mut parts = crate::passes::scored::KeptParts::new(work, self.raw.len(), &fields)?;
        let bar = self.progress.rows("assign (cluster)");
        let mut groups = Regroup::new(schema.clone());
        let mut keep = |file: u32, b: RecordBatch| {
            let n = b.num_columns();
            let ids: &StringArray = column(&b, 0)?;
            let locs: &UInt64Array = column(&b, n - 1)?;
            parts.push(file as usize, ids, &b.columns()[1..n - 1], locs.values(), each)
        };
        self.cluster.block_on(async {
            let mut s = self.stream(&sql).await?;
            while let Some(b) = s.next().await {
                let b = b.map_err(err)?;
                let scores = b
                    .column(4)
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or_else(|| Error::InvalidArgument("a scorer's result is not a struct".into()))?;
                let mut cols: Vec<ArrayRef> = vec![b.column(3).clone()];
                cols.extend(scores.columns().iter().cloned());
                cols.push(b.column(2).clone());
                let part =
                    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("building assignments", e))?;
                groups.push(&part, column(&b, 0)?, column(&b, 1)?, &mut keep)?;
                bar.inc(part.num_rows() as u64);
            }
            groups.flush(&mut keep)
        })?;
        bar.finish_and_clear();
        parts.finish()
    }
}

/// `score cluster --cluster` once the model is fitted (on the client) or given: the
/// assignment on `cluster`, the ranks and the tables written here; the report and the
/// clusters' counts. Bad records go to `rejects` in lake order.
pub fn cluster_assign(
    cluster: &Cluster,
    lake: &ScoredLake,
    model: Arc<crate::kmeans::KMeansModel>,
    memory_limit: u64,
    rejects: Option<&mut RejectWriter>,
    out: &Path,
    terms_out: Option<&Path>,
) -> Result<(RunReport, crate::kmeans::ClusterReport)> {
    let work = lake.work.ok_or_else(|| Error::InvalidArgument("clustering needs a work directory".into()))?;
    let remote = ClusterLake::new(cluster, lake.raw, lake.read, lake.progress)?;
    crate::kmeans::rank_to(lake, model.clone(), memory_limit, out, terms_out, |each| {
        let stats = remote.file_stats(rejects)?;
        remote.assign_rows(model, work, each)?;
        Ok(stats)
    })
}

/// What `score dedup --cluster` cannot run, refused before the cluster is reached.
fn check_dedup(settings: &crate::dedup::DedupSettings, files: usize) -> Result<()> {
    settings.validate()?;
    if settings.min_jaccard.is_some() {
        return Err(Error::InvalidArgument(
            "--min-jaccard runs on one machine (it reads the signatures of every candidate): drop --cluster".into(),
        ));
    }
    if settings.compat != crate::dedup::Compat::Syllabus {
        return Err(Error::InvalidArgument(
            "--compat datatrove runs on one machine (its pairs follow each band's sorted order): drop --cluster".into(),
        ));
    }
    // A row's number is its file's index above 40 bits of its location, in a BIGINT.
    if files >= 1 << 23 {
        return Err(Error::InvalidArgument(format!("dedup --cluster takes at most 2^23 files, not {files}")));
    }
    Ok(())
}

/// `score dedup --cluster`: the report, the dedup counts and the rejects file.
pub fn run_dedup(
    url: &str,
    settings: &crate::dedup::DedupSettings,
    files: &[InputFile],
    read: &ReadOptions,
    progress: &Progress,
    out: &Path,
    rejects: Option<&Path>,
) -> Result<(RunReport, crate::dedup::DedupReport, Option<RejectWriter>)> {
    check_dedup(settings, files.len())?;
    let cluster = Cluster::connect(url)?;
    let lake = ClusterLake::new(&cluster, files, read, progress)?;
    let mut rejects = rejects.map(RejectWriter::create).transpose()?;
    let stats = lake.file_stats(rejects.as_mut())?;
    let (report, dedup) = lake.dedup_to(settings, stats, out)?;
    Ok((report, dedup, rejects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_error_reads_as_its_message() {
        let m = r#"Execution error: Job 1 failed: Job failed due to stage 1 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(InvalidArgument("/l/b.jsonl: line 2: malformed \"x\""))))"#;
        assert_eq!(readable(m), "/l/b.jsonl: line 2: malformed \"x\"");
        assert_eq!(readable("no executors"), "no executors");
    }
    use crate::passes::dsir::DsirJob;
    use crate::score::dsir::FitBudget;

    fn fixture_lake() -> Vec<InputFile> {
        crate::source::expand_inputs(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lake")]).unwrap()
    }

    /// The fit's aggregate, planned and run by DataFusion in this process, gives the local
    /// fit's raw counts (with the reference's per-file budget and without one).
    #[test]
    fn the_counts_aggregate_is_the_local_fit() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let files = fixture_lake();
        let read = ReadOptions::default();
        let progress = Progress::new(true);
        for budget in [FitBudget::All, FitBudget::Tokens(40_000)] {
            let params = DsirParams::default();
            let limit = params.per_file_budget(budget, files.len());
            let ctx = datafusion::prelude::SessionContext::new_with_config(
                super::super::session_config().with_target_partitions(3),
            );
            ctx.register_table(TABLE, Arc::new(LakeTable { spec: Arc::new(LakeSpec::new(&files, &read).unwrap()) }))
                .unwrap();
            ctx.register_udaf(AggregateUDF::new_from_impl(DsirCounts::new(params.clone(), limit)));
            let sql = format!("SELECT {}(__file, \"text\") FROM {TABLE}", udf::DSIR_COUNTS);
            let batches = rt.block_on(async { ctx.sql(&sql).await.unwrap().collect().await }).unwrap_or_else(|e| {
                let plan =
                    rt.block_on(async { ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap() });
                panic!("{e}\n{}", arrow::util::pretty::pretty_format_batches(&plan).unwrap())
            });
            let a = batches[0].column(0).as_any().downcast_ref::<BinaryArray>().unwrap();
            let got = udf::decode_counts(a.value(0), params.buckets).unwrap();
            let target =
                crate::source::expand_inputs(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/target")]).unwrap();
            let job = DsirJob {
                raw: &files,
                target: &target,
                read: &read,
                params,
                budget,
                feature_cache_bytes: 0,
                progress: &progress,
            };
            assert_eq!(got, job.fit_in(None, None).unwrap().model.raw, "{budget:?}");
        }
    }
}
