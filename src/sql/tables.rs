//! Tables registered from paths: a syllabus output directory (its selections, scores,
//! curriculum, manifest and shards), or any jsonl(.gz/.zst) / Parquet file or directory.
//!
//! Parquet goes through DataFusion's own reader (projection and predicate pushdown, any size);
//! jsonl goes through syllabus's sources as a stream of batches (so compressed files, bad-record
//! handling and column typing are the same as everywhere else), one file at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Builder, Float64Builder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{Error, Result};
use crate::shard::manifest::{Manifest, MANIFEST_FILE};
use crate::source::{expand_inputs, lake_extras, Format, InputFile, LakeReader, ReadOptions};

fn df_err(e: datafusion::error::DataFusionError) -> Error {
    Error::InvalidArgument(e.to_string())
}

/// A table name from a file name: the stem before the first dot, lowercased, with anything
/// but letters, digits and `_` turned into `_`.
pub fn table_name(path: &Path) -> String {
    let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("t").split('.').next().unwrap_or("t").to_lowercase();
    let mut name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 't');
    }
    name
}

/// Rows and bytes read by the jsonl tables' scans, for the progress line of a running query.
pub static SCANNED_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static SCANNED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How `syllabus sql` learns the fields of a jsonl lake (jsonl has no schema): from the first
/// `rows` rows of at most `files` files spread over the lake (the first and the last among
/// them); `rows = 0` reads every row of every file first, as before a query can run.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSample {
    pub rows: usize,
    pub files: usize,
}

impl Default for SchemaSample {
    fn default() -> Self {
        SchemaSample { rows: 1000, files: 32 }
    }
}

/// A jsonl table's columns, shared by its scans: a field first seen by a scan (after the
/// sample) widens the table from the next statement on.
#[derive(Debug)]
struct LakeColumns {
    name: String,
    read: ReadOptions,
    extras: std::sync::RwLock<crate::source::Extras>,
}

impl LakeColumns {
    fn schema(&self) -> SchemaRef {
        crate::source::source_schema(&self.read, &self.extras.read().expect("not poisoned"))
    }

    /// Fields a scan found that the table does not have: added, each with a warning.
    fn widen(&self, files: &[InputFile], stats: &[crate::source::FileStats]) {
        let mut extras = self.extras.write().expect("not poisoned");
        for (f, st) in files.iter().zip(stats) {
            for name in &st.fields_seen {
                if self.read.is_id_or_text(name) || extras.fields.iter().any(|x| x.name() == name) {
                    continue;
                }
                eprintln!(
                    "warning: {}: field {name:?} is not in table {} (it was not in the rows sampled to learn the columns); \
                     the table has it from the next statement on (--schema-sample-rows 0 reads every row first)",
                    f.name, self.name
                );
                extras.fields.push(Field::new(name, DataType::Utf8, true));
            }
        }
    }
}

/// jsonl files as a streamed table: id, text and every other field (UTF-8), like `inspect`.
#[derive(Debug)]
struct LakeStream {
    files: Vec<InputFile>,
    extras: crate::source::Extras,
    schema: SchemaRef,
    columns: Arc<LakeColumns>,
}

impl PartitionStream for LakeStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (files, extras, columns) = (self.files.clone(), self.extras.clone(), self.columns.clone());
        blocking_stream(self.schema.clone(), move |send| {
            use std::sync::atomic::Ordering::Relaxed;
            let mut reader = LakeReader::new(&files, &columns.read, extras, None);
            let mut file = 0usize;
            for b in reader.by_ref() {
                if let Ok(b) = &b {
                    SCANNED_ROWS.fetch_add(b.batch.num_rows() as u64, Relaxed);
                    while file < b.file {
                        SCANNED_BYTES.fetch_add(
                            crate::store::stat(&files[file].path).ok().flatten().map_or(0, |m| m.len),
                            Relaxed,
                        );
                        file += 1;
                    }
                }
                if !send(b.map(|b| b.batch)) {
                    return;
                }
            }
            for f in &files[file..] {
                SCANNED_BYTES.fetch_add(crate::store::stat(&f.path).ok().flatten().map_or(0, |m| m.len), Relaxed);
            }
            columns.widen(&files, &reader.into_stats());
        })
    }
}

/// Batches from blocking work (file reads) as a DataFusion stream: `produce` runs on a blocking
/// thread and hands each batch to `send`, over a channel of two, so memory is two batches
/// whatever the input; `send` returns false once the query is cancelled or done.
pub(crate) fn blocking_stream(
    schema: SchemaRef,
    produce: impl FnOnce(&mut dyn FnMut(Result<RecordBatch>) -> bool) + Send + 'static,
) -> SendableRecordBatchStream {
    let (mut tx, rx) = futures::channel::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
    tokio::task::spawn_blocking(move || {
        produce(&mut |b| {
            let item = b.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)));
            futures::executor::block_on(futures::SinkExt::send(&mut tx, item)).is_ok()
        })
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, rx))
}

/// jsonl files as a table that decodes only the columns a query uses: `count(*)` over a lake
/// with thousands of distinct keys decodes none of them.
#[derive(Debug)]
struct LakeTable {
    files: Vec<InputFile>,
    columns: Arc<LakeColumns>,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.columns.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let read = &self.columns.read;
        let table_extras = self.columns.extras.read().expect("not poisoned").clone();
        let all: Vec<usize> = (0..table_extras.fields.len() + 2).collect();
        let projection = projection.unwrap_or(&all);
        // Columns 0 and 1 (id, text) are always decoded; extras only when projected.
        let mut wanted: Vec<usize> = projection.iter().filter(|&&i| i >= 2).map(|&i| i - 2).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let extras = crate::source::Extras { fields: wanted.iter().map(|&i| table_extras.fields[i].clone()).collect() };
        let schema = crate::source::source_schema(read, &extras);
        let remapped: Vec<usize> = projection
            .iter()
            .map(|&i| if i < 2 { i } else { 2 + wanted.binary_search(&(i - 2)).expect("a projected extra") })
            .collect();
        // One partition per group of files, so the decoding runs on as many cores as DataFusion
        // has partitions (SQL promises no row order without ORDER BY).
        let n = self.files.len().clamp(1, state.config().target_partitions().max(1));
        let per = self.files.len().div_ceil(n).max(1);
        let partitions: Vec<Arc<dyn PartitionStream>> = self
            .files
            .chunks(per)
            .map(|files| {
                let s = LakeStream {
                    files: files.to_vec(),
                    extras: extras.clone(),
                    schema: schema.clone(),
                    columns: self.columns.clone(),
                };
                Arc::new(s) as Arc<dyn PartitionStream>
            })
            .collect();
        let exec = datafusion::physical_plan::streaming::StreamingTableExec::try_new(
            schema,
            partitions,
            Some(&remapped),
            Vec::<datafusion::physical_expr::LexOrdering>::new(),
            false,
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}

/// The files whose rows are sampled: all of them up to `n`, else `n` spread evenly over the
/// lake, the first and the last included.
fn sampled(count: usize, n: usize) -> Vec<usize> {
    if count <= n {
        return (0..count).collect();
    }
    let n = n.max(2);
    let mut picks: Vec<usize> = (0..n).map(|i| i * (count - 1) / (n - 1)).collect();
    picks.dedup();
    picks
}

fn register_lake(ctx: &SessionContext, name: &str, files: Vec<InputFile>, sample: SchemaSample) -> Result<()> {
    let read = ReadOptions::default();
    // Learn the fields from a sample (or every row): files are read in parallel (the fields
    // seen per file do not depend on the order).
    use rayon::prelude::*;
    let picks: Vec<usize> =
        if sample.rows == 0 { (0..files.len()).collect() } else { sampled(files.len(), sample.files) };
    let opts =
        ReadOptions { batch_rows: if sample.rows == 0 { read.batch_rows } else { sample.rows.max(1) }, ..read.clone() };
    let seen = picks
        .par_iter()
        .map(|&i| {
            let one = std::slice::from_ref(&files[i]);
            let mut r = LakeReader::new(one, &opts, crate::source::Extras::none(), None);
            for b in r.by_ref() {
                b?;
                if sample.rows > 0 {
                    // One batch of `rows` rows.
                    break;
                }
            }
            Ok((i, r.into_stats().pop().expect("one file, one stats")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut stats: Vec<crate::source::FileStats> = vec![Default::default(); files.len()];
    for (i, st) in seen {
        stats[i] = st;
    }
    let extras = lake_extras(&files, &stats, &read)?;
    let columns = Arc::new(LakeColumns { name: name.to_string(), read, extras: std::sync::RwLock::new(extras) });
    ctx.register_table(name, Arc::new(LakeTable { files, columns })).map_err(df_err)?;
    Ok(())
}

/// What was registered, for `\d` and for error messages.
#[derive(Debug, Clone)]
pub struct Registered {
    pub name: String,
    pub from: PathBuf,
}

/// Register the tables of `path`: a syllabus output directory, a directory of Parquet or jsonl
/// files (one table), or a file.
///
/// With `cluster`, a path of jsonl data is refused here, before any statement runs: the
/// cluster scans Parquet (DataFusion's listing tables travel in plans; syllabus's streamed
/// jsonl table does not).
pub async fn register_path(
    ctx: &SessionContext,
    path: &Path,
    sample: SchemaSample,
    cluster: bool,
    out: &mut Vec<Registered>,
) -> Result<()> {
    // A directory or a store prefix with a manifest or a summary is a syllabus output.
    if crate::store::is_file(&path.join(MANIFEST_FILE)) || crate::store::is_file(&path.join("summary.json")) {
        return register_output(ctx, path, out).await;
    }
    let name = unique(table_name(path), out);
    if cluster {
        let files = expand_inputs(&[path.display().to_string()])?;
        if let Some(f) = files.iter().find(|f| f.format != Format::Parquet) {
            return Err(Error::InvalidArgument(format!(
                "{}: {} is {}; with --cluster, syllabus sql runs over Parquet files and directories (and the selected, scores and curriculum tables of syllabus outputs). Query it without --cluster, or write it as Parquet first: syllabus sql -c \"COPY (SELECT * FROM {name}) TO '{name}.parquet'\" {}",
                path.display(),
                f.name,
                f.format.name(),
                path.display()
            )));
        }
    }
    register_data(ctx, &name, path, sample).await?;
    out.push(Registered { name, from: path.to_path_buf() });
    Ok(())
}

fn unique(name: String, out: &[Registered]) -> String {
    if !out.iter().any(|r| r.name == name) {
        return name;
    }
    (2..).map(|i| format!("{name}_{i}")).find(|n| !out.iter().any(|r| &r.name == n)).expect("a free name")
}

async fn register_data(ctx: &SessionContext, name: &str, path: &Path, sample: SchemaSample) -> Result<()> {
    let files = expand_inputs(&[path.display().to_string()])?;
    if files.iter().all(|f| f.format == Format::Parquet) {
        // DataFusion's footer decoding panics on some damaged files (a footer length past the
        // file's size, `PAR1PAR1`): check every footer with syllabus's reader first.
        for f in &files {
            crate::source::check_parquet(f)?;
        }
        let mut p = path.display().to_string();
        if crate::store::is_remote(path) && !crate::store::is_file(path) {
            // A prefix: DataFusion lists it as a directory when the URL ends with a slash.
            p = format!("{}/", p.trim_end_matches('/'));
        }
        ctx.register_parquet(name, &p, ParquetReadOptions::default()).await.map_err(df_err)?;
    } else {
        register_lake(ctx, name, files, sample)?;
    }
    Ok(())
}

/// A syllabus output directory: `selected`, `scores`, `curriculum`, `rejects`, `dedup`,
/// `contamination`, `clusters` and `cluster_terms` (a pipeline's `[dedup]`, `[decontaminate]`
/// and `[clusters]` tables), and from the manifest `phases` (one row per phase and domain), `shards` (one row per file) and
/// `sequences` (one row per sequence, read from the shards).
async fn register_output(ctx: &SessionContext, dir: &Path, out: &mut Vec<Registered>) -> Result<()> {
    for (file, name) in [
        ("selected.parquet", "selected"),
        ("scores.parquet", "scores"),
        ("curriculum.parquet", "curriculum"),
        ("dedup.parquet", "dedup"),
        ("contamination.parquet", "contamination"),
        ("clusters.parquet", "clusters"),
        ("cluster_terms.parquet", "cluster_terms"),
        ("rejects.jsonl", "rejects"),
    ] {
        let p = dir.join(file);
        if crate::store::is_file(&p) {
            if file == "rejects.jsonl" {
                register_rejects(ctx, &p)?;
            } else {
                // Parquet: the schema is in the file.
                register_data(ctx, name, &p, SchemaSample::default()).await?;
            }
            out.push(Registered { name: name.into(), from: p });
        }
    }
    if crate::store::is_file(&dir.join(MANIFEST_FILE)) {
        let m = Manifest::load(dir)?;
        let (phases, shards) = manifest_tables(&m)?;
        for (name, batch) in [("phases", phases), ("shards", shards)] {
            let t = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df_err)?;
            ctx.register_table(name, Arc::new(t)).map_err(df_err)?;
            out.push(Registered { name: name.into(), from: dir.join(MANIFEST_FILE) });
        }
        let seqs = SequenceStream { dir: dir.to_path_buf(), manifest: Arc::new(m), schema: sequence_schema() };
        let t = StreamingTable::try_new(seqs.schema.clone(), vec![Arc::new(seqs)]).map_err(df_err)?;
        ctx.register_table("sequences", Arc::new(t)).map_err(df_err)?;
        out.push(Registered { name: "sequences".into(), from: dir.join("shards") });
    }
    let mut logs: Vec<PathBuf> = crate::store::list_dir(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mixture_log") && n.ends_with(".jsonl"))
        })
        .collect();
    if !logs.is_empty() {
        logs.sort();
        register_mixture_log(ctx, &logs)?;
        out.push(Registered { name: "mixture_log".into(), from: logs[0].clone() });
    }
    Ok(())
}

/// The decisions `syllabus serve` logged (mixture_log.jsonl, mixture_log-RUN.jsonl): one row
/// per decision and domain.
fn register_mixture_log(ctx: &SessionContext, files: &[PathBuf]) -> Result<()> {
    use crate::loader::feedback::Decision;
    let (mut run, mut decision, mut rule, mut report_step, mut from_step, mut from_seq, mut g) = (
        StringBuilder::new(),
        UInt64Builder::new(),
        StringBuilder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
    );
    let (mut domain, mut reported, mut signal, mut count, mut mixture) = (
        StringBuilder::new(),
        UInt64Builder::new(),
        Float64Builder::new(),
        UInt64Builder::new(),
        Float64Builder::new(),
    );
    let (mut line_no, mut superseded_col) = (UInt64Builder::new(), arrow::array::BooleanBuilder::new());
    for path in files {
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
        let run_name = name.strip_prefix("mixture_log").unwrap_or_default().trim_start_matches('-');
        let text = crate::store::read_to_string(path)?;
        // A damaged line is reported and left out; the rest of the log stays queryable.
        let mut decisions: Vec<(usize, Decision)> = Vec::new();
        for (i, l) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<Decision>(l) {
                Ok(d) => decisions.push((i + 1, d)),
                Err(e) => {
                    eprintln!("warning: {}:{}: not a decision, left out of mixture_log: {e}", path.display(), i + 1)
                }
            }
        }
        // The log is append-only: a line is superseded by a later line of the same or a lower
        // decision number (a replaced decision).
        let mut superseded = vec![false; decisions.len()];
        let mut min_later = u64::MAX;
        for (k, (_, d)) in decisions.iter().enumerate().rev() {
            superseded[k] = min_later <= d.decision;
            min_later = min_later.min(d.decision);
        }
        for ((i, d), sup) in decisions.iter().zip(superseded) {
            let rule_name =
                serde_json::to_value(d.rule).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            for (dom, p) in &d.mixture {
                line_no.append_value(*i as u64);
                superseded_col.append_value(sup);
                run.append_value(run_name);
                decision.append_value(d.decision);
                rule.append_value(&rule_name);
                report_step.append_value(d.report_step);
                from_step.append_value(d.applies_from_step);
                from_seq.append_value(d.applies_from_sequence);
                g.append_value(d.global_batch_size);
                domain.append_value(dom);
                reported.append_value(d.report.get(dom).map_or(0, |v| v.len() as u64));
                signal.append_option(d.signal.get(dom).copied());
                count.append_option(d.count.get(dom).copied());
                mixture.append_value(*p);
            }
        }
    }
    let batch = RecordBatch::try_from_iter(vec![
        ("run", Arc::new(run.finish()) as ArrayRef),
        ("decision", Arc::new(decision.finish())),
        ("rule", Arc::new(rule.finish())),
        ("report_step", Arc::new(report_step.finish())),
        ("applies_from_step", Arc::new(from_step.finish())),
        ("applies_from_sequence", Arc::new(from_seq.finish())),
        ("global_batch_size", Arc::new(g.finish())),
        ("domain", Arc::new(domain.finish())),
        ("reported", Arc::new(reported.finish())),
        ("signal", Arc::new(signal.finish())),
        ("count", Arc::new(count.finish())),
        ("mixture", Arc::new(mixture.finish())),
        ("line", Arc::new(line_no.finish())),
        ("superseded", Arc::new(superseded_col.finish())),
    ])
    .map_err(|e| Error::arrow("mixture_log table", e))?;
    let t = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df_err)?;
    ctx.register_table("mixture_log", Arc::new(t)).map_err(df_err)?;
    Ok(())
}

/// The rejects file: file, line, row, byte_offset, reason, raw.
fn register_rejects(ctx: &SessionContext, path: &Path) -> Result<()> {
    let text = crate::store::read_to_string(path)?;
    let (mut file, mut line, mut row, mut off, mut reason, mut raw) = (
        StringBuilder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l)
            .map_err(|e| Error::InvalidArgument(format!("{}: not a rejects file: {e}", path.display())))?;
        file.append_option(v["file"].as_str());
        line.append_option(v["line"].as_u64());
        row.append_option(v["row"].as_u64());
        off.append_option(v["byte_offset"].as_u64());
        reason.append_option(v["reason"].as_str());
        raw.append_option(v["raw"].as_str());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(file.finish()),
        Arc::new(line.finish()),
        Arc::new(row.finish()),
        Arc::new(off.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::UInt64, true),
        Field::new("row", DataType::UInt64, true),
        Field::new("byte_offset", DataType::UInt64, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("rejects table", e))?;
    let t = MemTable::try_new(schema, vec![vec![batch]]).map_err(df_err)?;
    ctx.register_table("rejects", Arc::new(t)).map_err(df_err)?;
    Ok(())
}

/// `phases` and `shards` from a manifest.
fn manifest_tables(m: &Manifest) -> Result<(RecordBatch, RecordBatch)> {
    let (mut phase, mut start, mut end, mut domain, mut share, mut tokens, mut docs, mut passes) = (
        UInt32Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt32Builder::new(),
    );
    for (i, p) in m.phases.iter().enumerate() {
        for d in &m.domains {
            phase.append_value(i as u32);
            start.append_value(p.start_token);
            end.append_value(p.end_token);
            domain.append_value(d);
            share.append_value(p.mixture.get(d).copied().unwrap_or(0.0));
            tokens.append_value(p.tokens.get(d).copied().unwrap_or(0));
            docs.append_value(p.documents.get(d).copied().unwrap_or(0));
            passes.append_value(p.passes.get(d).copied().unwrap_or(0));
        }
    }
    let phases = RecordBatch::try_from_iter(vec![
        ("phase", Arc::new(phase.finish()) as ArrayRef),
        ("start_token", Arc::new(start.finish())),
        ("end_token", Arc::new(end.finish())),
        ("domain", Arc::new(domain.finish())),
        ("mixture", Arc::new(share.finish())),
        ("tokens", Arc::new(tokens.finish())),
        ("documents", Arc::new(docs.finish())),
        ("passes", Arc::new(passes.finish())),
    ])
    .map_err(|e| Error::arrow("phases table", e))?;
    let (mut path, mut format, mut bytes, mut stoks, mut seqs, mut first, mut sdocs, mut sum) = (
        StringBuilder::new(),
        StringBuilder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        StringBuilder::new(),
    );
    for s in &m.shards {
        path.append_value(&s.path);
        format.append_value(&s.format);
        bytes.append_value(s.bytes);
        stoks.append_value(s.tokens);
        seqs.append_value(s.sequences);
        first.append_value(s.first_sequence);
        sdocs.append_value(s.documents);
        sum.append_value(&s.checksum);
    }
    let shards = RecordBatch::try_from_iter(vec![
        ("path", Arc::new(path.finish()) as ArrayRef),
        ("format", Arc::new(format.finish())),
        ("bytes", Arc::new(bytes.finish())),
        ("tokens", Arc::new(stoks.finish())),
        ("sequences", Arc::new(seqs.finish())),
        ("first_sequence", Arc::new(first.finish())),
        ("documents", Arc::new(sdocs.finish())),
        ("checksum", Arc::new(sum.finish())),
    ])
    .map_err(|e| Error::arrow("shards table", e))?;
    Ok((phases, shards))
}

fn sequence_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sequence", DataType::UInt64, false),
        Field::new("shard", DataType::Utf8, false),
        Field::new("domain_id", DataType::UInt16, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("weight", DataType::Float32, false),
        Field::new("documents", DataType::UInt32, false),
    ]))
}

/// One row per sequence of the syllabus shards, read shard by shard.
#[derive(Debug)]
struct SequenceStream {
    dir: PathBuf,
    manifest: Arc<Manifest>,
    schema: SchemaRef,
}

impl PartitionStream for SequenceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (dir, m, schema) = (self.dir.clone(), self.manifest.clone(), self.schema.clone());
        blocking_stream(self.schema.clone(), move |send| {
            for e in m.shards.iter().filter(|e| e.format == "syllabus") {
                if !send(shard_rows(&dir, &m, e, &schema)) {
                    break;
                }
            }
        })
    }
}

fn shard_rows(
    dir: &Path,
    m: &Manifest,
    e: &crate::shard::manifest::ShardEntry,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    // What verify refuses, SQL refuses: the path, size and checksum, then every header field.
    let (_, s) = crate::shard::read_listed(dir, m, e)
        .map_err(|what| Error::InvalidArgument(format!("{}: {what}", dir.join(&e.path).display())))?;
    let seq_len = s.seq_len as u64;
    let (mut seq, mut shard, mut did, mut dom, mut w, mut nd) = (
        UInt64Builder::new(),
        StringBuilder::new(),
        UInt16Builder::new(),
        StringBuilder::new(),
        Float32Builder::new(),
        UInt32Builder::new(),
    );
    // Document pieces are in token order: sweep them once.
    let mut first_doc = 0usize;
    for (i, meta) in s.seqs.iter().enumerate() {
        let (lo, hi) = (i as u64 * seq_len, (i as u64 + 1) * seq_len);
        while first_doc < s.docs.len() && s.docs[first_doc].start + s.docs[first_doc].len as u64 <= lo {
            first_doc += 1;
        }
        let docs = s.docs[first_doc..].iter().take_while(|d| d.start < hi).count();
        seq.append_value(s.first_seq + i as u64);
        shard.append_value(&e.path);
        did.append_value(meta.domain);
        dom.append_value(m.domains.get(meta.domain as usize).map(String::as_str).unwrap_or("?"));
        w.append_value(meta.weight);
        nd.append_value(docs as u32);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(seq.finish()),
        Arc::new(shard.finish()),
        Arc::new(did.finish()),
        Arc::new(dom.finish()),
        Arc::new(w.finish()),
        Arc::new(nd.finish()),
    ];
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("sequences table", e))
}
