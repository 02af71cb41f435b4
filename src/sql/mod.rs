//! `syllabus sql`: SQL (DataFusion) over everything syllabus reads and writes.
//!
//! Tables come from the paths given ([`tables`]); scorers are SQL functions ([`udf`]). Results
//! stream batch by batch to the chosen format; sorts, joins and aggregations that outgrow
//! `--memory-limit-mb` spill to disk. Interactive use has line editing, history, multi-line
//! statements ending in `;`, `\d`, `\d TABLE`, `\q`, and Ctrl-C cancels the running query,
//! not the shell.

pub mod tables;
pub mod udf;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::sink::TableWriter;
pub use tables::Registered;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// Aligned tables (chunks of at most 1,000 rows).
    Table,
    Csv,
    /// One JSON object per row.
    Json,
    /// Parquet (needs `-o`).
    Parquet,
}

/// Everything a SQL session needs.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    pub paths: Vec<PathBuf>,
    pub dsir_model: Option<PathBuf>,
    pub zipfit_target: Vec<String>,
    /// Benchmark items for `contam_frac(text)`.
    pub against: Vec<String>,
    /// A fastText classifier for `clf_prob(text)`.
    pub classifier_model: Option<PathBuf>,
    /// Memory for operators before they spill (MiB).
    pub memory_limit_mb: usize,
    /// How jsonl tables learn their columns.
    pub schema_sample: tables::SchemaSample,
    /// A progress line (rows and bytes read) on stderr for statements that run over a second.
    pub progress: bool,
}

impl SqlOptions {
    /// Whether these options can run on a remote (checked before connecting to one).
    pub fn check_remote(&self) -> Result<()> {
        if self.dsir_model.is_some()
            || !self.zipfit_target.is_empty()
            || !self.against.is_empty()
            || self.classifier_model.is_some()
        {
            return Err(Error::InvalidArgument("the scoring functions (dsir_logw, moore_lewis, zipfit, contam_frac, clf_prob) are not available with --cluster: score with `syllabus score METHOD --cluster` and query the scores".into()));
        }
        Ok(())
    }
}

/// Runs a planned statement somewhere else.
pub type RemoteExecute = dyn Fn(
        &SessionContext,
        Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> datafusion::error::Result<datafusion::physical_plan::SendableRecordBatchStream>
    + Send
    + Sync;

/// Where a session's statements run when not in this process: a Ballista cluster registers
/// itself here (`crate::cluster::sql_remote`, called by the CLI); `sql` knows only this.
/// Tables travel in the plans: Parquet files and directories (DataFusion's listing tables)
/// can be sent; `dsir_logw` and `zipfit` are local only.
pub struct Remote {
    /// The remote's session, with its functions and codecs registered.
    pub ctx: SessionContext,
    pub execute: Arc<RemoteExecute>,
}

/// The progress line of a running statement: rows and bytes its scans have read (the jsonl
/// tables' counters, and the Parquet scans' metrics), shown once it has run for a second.
struct ScanProgress {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ScanProgress {
    fn start(plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> ScanProgress {
        use std::sync::atomic::Ordering::Relaxed;
        let (rows0, bytes0) = (tables::SCANNED_ROWS.load(Relaxed), tables::SCANNED_BYTES.load(Relaxed));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
                if started.elapsed().as_secs_f64() < 1.0 {
                    continue;
                }
                let (mut rows, mut bytes) =
                    (tables::SCANNED_ROWS.load(Relaxed) - rows0, tables::SCANNED_BYTES.load(Relaxed) - bytes0);
                scan_metrics(plan.as_ref(), &mut rows, &mut bytes);
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new_spinner();
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b
                });
                b.set_message(format!("{} rows, {} read", indicatif::HumanCount(rows), indicatif::HumanBytes(bytes)));
                b.tick();
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        ScanProgress { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Rows and bytes the leaves (scans) of a running plan have read, by their metrics.
fn scan_metrics(plan: &dyn datafusion::physical_plan::ExecutionPlan, rows: &mut u64, bytes: &mut u64) {
    if plan.children().is_empty() {
        if let Some(m) = plan.metrics() {
            *rows += m.output_rows().unwrap_or(0) as u64;
            *bytes += m.sum_by_name("bytes_scanned").map_or(0, |v| v.as_usize()) as u64;
        }
    }
    for c in plan.children() {
        scan_metrics(c.as_ref(), rows, bytes);
    }
}

fn df_err(e: datafusion::error::DataFusionError) -> Error {
    Error::InvalidArgument(e.to_string())
}

/// How the cluster's codec ends its refusal of a table it cannot send (syllabus's Parquet
/// tables travel; in-memory and streamed ones do not).
pub const NOT_SENDABLE: &str = "query it without --cluster";

/// A session with the tables of `opts.paths` and the scorer functions.
pub struct Session {
    pub ctx: SessionContext,
    pub tables: Vec<Registered>,
    progress: bool,
    /// Where statements run, when not here.
    remote: Option<Arc<RemoteExecute>>,
}

/// `fut`, with a panic inside it (DataFusion on some damaged inputs) turned into an error.
async fn caught<T>(what: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    let _quiet = crate::error::PanicGuard::new();
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => {
            let msg = crate::error::panic_message(p.as_ref());
            Err(Error::InvalidArgument(format!("{what}: the query engine failed on this input ({msg})")))
        }
    }
}

impl Session {
    /// A session that runs its statements here.
    pub async fn new(opts: &SqlOptions) -> Result<Session> {
        Self::with_remote(opts, None).await
    }

    /// A session whose statements run on `remote` (a cluster), or here.
    pub async fn with_remote(opts: &SqlOptions, remote: Option<Remote>) -> Result<Session> {
        let limit = opts.memory_limit_mb.max(16) << 20;
        // Object stores come from syllabus's own registry: the same clients and settings as the
        // readers, for the tables given and for `CREATE EXTERNAL TABLE ... LOCATION 's3://...'`.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .with_object_store_registry(Arc::new(crate::store::Registry::default()))
            .build_arc()
            .map_err(df_err)?;
        // What each sort keeps back for merging its spilled runs: DataFusion's 10 MB, or less
        // under a small limit, so a sort that outgrows memory spills instead of failing.
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_sort_spill_reservation_bytes((limit / 16).min(10 << 20));
        let (ctx, remote) = match remote {
            None => (SessionContext::new_with_config_rt(config, runtime), None),
            Some(r) => {
                opts.check_remote()?;
                (r.ctx, Some(r.execute))
            }
        };
        let mut tables = Vec::new();
        for p in &opts.paths {
            if !crate::store::exists(p) {
                return Err(Error::NotFound { path: p.clone() });
            }
            caught(
                &format!("reading {}", p.display()),
                tables::register_path(&ctx, p, opts.schema_sample, remote.is_some(), &mut tables),
            )
            .await?;
        }
        ctx.register_udf(udf::n_words());
        ctx.register_udf(udf::ncd());
        if remote.is_some() {
            return Ok(Session { ctx, tables, progress: opts.progress, remote });
        }
        // The scoring methods' functions ([`crate::methods`]): DSIR's from a model, given or the
        // one an output directory holds; ZIP-FIT's from a target set.
        let model = opts
            .dsir_model
            .clone()
            .or_else(|| opts.paths.iter().map(|p| p.join("dsir_model.json")).find(|p| crate::store::is_file(p)));
        let mut given = Vec::new();
        if let Some(m) = model {
            given.push(("--dsir-model", crate::methods::SqlInput::Model(m)));
        }
        if !opts.zipfit_target.is_empty() {
            let target = crate::source::expand_inputs(&opts.zipfit_target)?;
            given.push(("--zipfit-target", crate::methods::SqlInput::Target(target)));
        }
        if !opts.against.is_empty() {
            let items = crate::source::expand_inputs(&opts.against)?;
            given.push(("--against", crate::methods::SqlInput::Target(items)));
        }
        if let Some(m) = &opts.classifier_model {
            given.push(("--classifier-model", crate::methods::SqlInput::Model(m.clone())));
        }
        // Duplicates: exact keys and shingle similarity (here only: not in a cluster's plans).
        ctx.register_udf(udf::dedup_key());
        ctx.register_udf(udf::jaccard(false));
        ctx.register_udf(udf::jaccard(true));
        let read = crate::source::ReadOptions::default();
        let progress = crate::progress::Progress::new(true);
        for scorer in crate::methods::sql_scorers(&given, &read, &progress)? {
            ctx.register_udf(udf::scorer_udf(scorer));
        }
        Ok(Session { ctx, tables, progress: opts.progress, remote })
    }

    /// Every table name the session knows (registered and created), sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Run a planned statement: here, or on the remote (a cluster remembers the job, so that an
    /// interrupted statement is cancelled there too).
    fn execute(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> datafusion::error::Result<datafusion::physical_plan::SendableRecordBatchStream> {
        if let Some(remote) = &self.remote {
            return remote(&self.ctx, plan);
        }
        datafusion::physical_plan::execute_stream(plan, self.ctx.task_ctx())
    }

    /// A query's error, with the tables that exist when the problem is a missing one.
    fn explain(&self, e: datafusion::error::DataFusionError) -> Error {
        let msg = e.to_string();
        // A table the cluster cannot read: syllabus's own message, without the wrapping that
        // reads as an internal bug.
        if let Some(i) = msg.find("the table ").filter(|_| msg.contains(crate::sql::NOT_SENDABLE)) {
            let end =
                msg[i..].find(crate::sql::NOT_SENDABLE).map_or(msg.len(), |j| i + j + crate::sql::NOT_SENDABLE.len());
            return Error::InvalidArgument(msg[i..end].to_string());
        }
        if msg.contains("not found") && msg.to_lowercase().contains("table") {
            let names = self.table_names();
            let list =
                if names.is_empty() { "none (give paths to syllabus sql)".to_string() } else { names.join(", ") };
            Error::InvalidArgument(format!("{msg}\n  tables: {list}"))
        } else {
            Error::InvalidArgument(msg)
        }
    }

    /// Run one statement and write its result; returns the number of rows. A panic inside the
    /// query engine is an error, not a crash.
    pub async fn run(&self, sql: &str, out: &mut Output) -> Result<u64> {
        caught("running the statement", self.run_inner(sql, out)).await
    }

    async fn run_inner(&self, sql: &str, out: &mut Output) -> Result<u64> {
        let df = self.ctx.sql(sql).await.map_err(|e| self.explain(e))?;
        let plan = df.create_physical_plan().await.map_err(|e| self.explain(e))?;
        let mut stream = self.execute(plan.clone()).map_err(|e| self.explain(e))?;
        let ticker = self.progress.then(|| ScanProgress::start(plan));
        let mut rows = 0u64;
        let result = async {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| self.explain(e))?;
                rows += batch.num_rows() as u64;
                out.write(&batch)?;
            }
            out.finish_statement()
        }
        .await;
        if let Some(t) = ticker {
            t.stop().await;
        }
        result?;
        Ok(rows)
    }

    /// `\d`: the tables; `\d NAME`: a table's columns.
    pub async fn describe(&self, name: Option<&str>) -> Result<String> {
        match name {
            None => {
                let mut s = String::new();
                for n in self.table_names() {
                    let from = self
                        .tables
                        .iter()
                        .find(|r| r.name == n)
                        .map(|r| format!("  ({})", r.from.display()))
                        .unwrap_or_default();
                    s.push_str(&format!("{n}{from}\n"));
                }
                Ok(s)
            }
            Some(n) => {
                let t = self.ctx.table_provider(n).await.map_err(|e| self.explain(e))?;
                let mut s = String::new();
                for f in t.schema().fields() {
                    s.push_str(&format!(
                        "{:<24} {}{}\n",
                        f.name(),
                        f.data_type(),
                        if f.is_nullable() { "" } else { " not null" }
                    ));
                }
                Ok(s)
            }
        }
    }
}

/// Run a script: statements separated by `;`, and `\\d` / `\\d TABLE` lines.
pub async fn run_script(session: &Session, script: &str, out: &mut Output) -> Result<()> {
    let mut sql = String::new();
    let flush = |sql: &mut String| std::mem::take(sql);
    for line in script.lines() {
        let t = line.trim();
        if t.starts_with('\\') && split_statements(&sql).is_empty() {
            let mut parts = t.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("\\d"), name) => {
                    let text = session.describe(name).await?;
                    out.write_text(&text)?;
                }
                (Some("\\q"), _) => break,
                _ => return Err(Error::InvalidArgument(format!("unknown command {t}: \\d, \\d TABLE, \\q"))),
            }
            sql.clear();
            continue;
        }
        sql.push_str(line);
        sql.push('\n');
        if t.ends_with(';') {
            for stmt in split_statements(&flush(&mut sql)) {
                session.run(&stmt, out).await?;
            }
        }
    }
    for stmt in split_statements(&sql) {
        session.run(&stmt, out).await?;
    }
    Ok(())
}

/// Split a script into statements at `;` outside quotes and comments.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    // A comment runs to the end of the line.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Where results go, in a format.
pub struct Output {
    format: SqlFormat,
    sink: Sink,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    csv_header_done: bool,
}

enum Sink {
    Stream(Box<dyn Write + Send>),
    Parquet(PathBuf, Option<Box<TableWriter>>),
}

impl Output {
    /// Write to `path` (`-o`), or to stdout.
    pub fn new(format: SqlFormat, path: Option<&Path>) -> Result<Output> {
        let sink = match (format, path) {
            (SqlFormat::Parquet, Some(p)) => Sink::Parquet(p.to_path_buf(), None),
            (SqlFormat::Parquet, None) => return Err(Error::InvalidArgument("--format parquet needs -o FILE".into())),
            (_, Some(p)) => {
                Sink::Stream(Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?)))
            }
            (_, None) => Sink::Stream(Box::new(std::io::stdout())),
        };
        Ok(Output { format, sink, pending: Vec::new(), pending_rows: 0, csv_header_done: false })
    }

    fn stream(&mut self) -> &mut Box<dyn Write + Send> {
        match &mut self.sink {
            Sink::Stream(w) => w,
            Sink::Parquet(..) => unreachable!("parquet output has no stream"),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let io = |e: std::io::Error| Error::io("(output)", e);
        match self.format {
            SqlFormat::Table => {
                self.pending_rows += batch.num_rows();
                self.pending.push(batch.clone());
                if self.pending_rows >= 1000 {
                    self.flush_table()?;
                }
            }
            SqlFormat::Csv => {
                let header = !self.csv_header_done;
                self.csv_header_done = true;
                let mut buf = Vec::new();
                {
                    let mut w = arrow::csv::WriterBuilder::new().with_header(header).build(&mut buf);
                    w.write(batch).map_err(|e| Error::arrow("writing CSV", e))?;
                }
                self.stream().write_all(&buf).map_err(io)?;
            }
            SqlFormat::Json => {
                let mut buf = Vec::new();
                {
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                    w.write(batch).map_err(|e| Error::arrow("writing JSON", e))?;
                    w.finish().map_err(|e| Error::arrow("writing JSON", e))?;
                }
                self.stream().write_all(&buf).map_err(io)?;
            }
            SqlFormat::Parquet => {
                let Sink::Parquet(path, w) = &mut self.sink else { unreachable!("parquet sink") };
                if w.is_none() {
                    *w = Some(Box::new(TableWriter::create(path, batch.schema())?));
                }
                w.as_mut().expect("writer").write(batch)?;
            }
        }
        Ok(())
    }

    fn flush_table(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text =
            arrow::util::pretty::pretty_format_batches(&self.pending).map_err(|e| Error::arrow("formatting", e))?;
        self.pending.clear();
        self.pending_rows = 0;
        writeln!(self.stream(), "{text}").map_err(|e| Error::io("(output)", e))
    }

    /// Text as it is (`\\d`), in table and CSV output alike.
    pub fn write_text(&mut self, text: &str) -> Result<()> {
        match &mut self.sink {
            Sink::Stream(w) => w.write_all(text.as_bytes()).map_err(|e| Error::io("(output)", e)),
            Sink::Parquet(..) => Ok(()),
        }
    }

    /// End of a statement's result.
    fn finish_statement(&mut self) -> Result<()> {
        if self.format == SqlFormat::Table {
            self.flush_table()?;
        }
        self.csv_header_done = false;
        if let Sink::Stream(w) = &mut self.sink {
            w.flush().map_err(|e| Error::io("(output)", e))?;
        }
        Ok(())
    }

    /// Close the output (Parquet is written atomically here).
    pub fn finish(self) -> Result<()> {
        if let Sink::Parquet(path, w) = self.sink {
            match w {
                Some(w) => {
                    w.finish()?;
                }
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: the query returned no batches to write",
                        path.display()
                    )))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let s = split_statements("select 1; select ';' as x -- a; comment\n; \n select \"a;b\" from t");
        assert_eq!(
            s,
            ["select 1", "select ';' as x \n", "select \"a;b\" from t"]
                .iter()
                .map(|x| x.trim().to_string())
                .collect::<Vec<_>>()
        );
        assert!(split_statements("  ;; ").is_empty());
    }

    #[test]
    fn table_names_from_files() {
        assert_eq!(tables::table_name(Path::new("a/prose.jsonl.zst")), "prose");
        assert_eq!(tables::table_name(Path::new("my-scores.parquet")), "my_scores");
        assert_eq!(tables::table_name(Path::new("2024.jsonl")), "t2024");
    }
}
