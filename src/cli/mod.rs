//! The command line: clap structs are parsed here and turned into validated library settings;
//! library code never sees clap types.
//!
//! One file per command family: `score.rs` (score and select), `curriculum.rs` (run,
//! curriculum, tokenizer, verify), `sql.rs`, `serve.rs`; shared arguments and the summary
//! printing live here.
//!
//! Exit codes: 0 success; 1 error; 2 usage error; 3 finished, but bad records were skipped
//! (`--on-bad-record skip`), see the summary and the rejects file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::passes::RunReport;
use crate::progress::Progress;
use crate::source::{expand_inputs, inspect_file, BadRecordPolicy, InputFile, ReadOptions, RejectWriter};
use crate::store::output::Outputs;

mod classifier;
#[cfg(feature = "cluster")]
mod cluster;
mod curriculum;
mod eval;
mod mix;
mod score;
mod serve;
mod sql;

use curriculum::{CurriculumArgs, TokenizerCommand};
use eval::EvalArgs;
use score::{ScoreCommand, SelectArgs};
use serve::ServeArgs;
use sql::SqlArgs;

#[derive(Parser)]
#[command(name = "syllabus", version, about = "Decide what a language model trains on, and in what order.")]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    /// With --cluster: seconds to wait for an executor to run a task before giving up (a
    /// scheduler with no executor would otherwise queue the job forever).
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS")]
    cluster_wait: u64,
    /// With --cluster: a file holding the cluster's token (read once, never printed); otherwise
    /// the SYLLABUS_CLUSTER_TOKEN environment variable.
    #[cfg(feature = "cluster")]
    #[arg(long, global = true, value_name = "PATH")]
    cluster_token_file: Option<std::path::PathBuf>,
    /// With --cluster: the cluster's CA certificate (PEM), for a cluster that serves TLS;
    /// otherwise the SYLLABUS_CLUSTER_CA environment variable.
    #[cfg(feature = "cluster")]
    #[arg(long, global = true, value_name = "PATH")]
    cluster_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
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
        /// Run the DSIR or ZIP-FIT selection on a cluster (`syllabus cluster`), df://HOST:PORT;
        /// same outputs, the curriculum is built here.
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
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
    /// fastText-compatible quality classifiers (score them with `score classifier`).
    #[command(subcommand)]
    Classifier(classifier::ClassifierCommand),
    /// SQL over documents, scores, selections and curricula (DataFusion): an interactive shell,
    /// or -c QUERY / -f FILE. Paths become tables: a syllabus output directory gives selected,
    /// scores, curriculum, rejects, phases, shards and sequences (and dedup, contamination,
    /// clusters and cluster_terms after those stages); any jsonl(.gz/.zst) or
    /// Parquet file or directory gives a table named after it.
    Sql(Box<SqlArgs>),
    /// Which selection trains the better model: the same small LM trained on each candidate
    /// for the same number of tokens, validation loss curves, KL reduction, a plot.
    Eval(Box<EvalArgs>),
    /// Which mixture of domains to train on: small equal-compute runs on sampled mixtures
    /// (RegMix), a regression from mixture to validation loss, the mixture it predicts best
    /// within a cap on passes over each domain, checked by training it beside the natural and
    /// uniform mixtures; writes a [schedule] block. `mix graph`: Skill-It's graph from data.
    Mix(Box<mix::MixArgs>),
    /// Serve a curriculum to the trainer ranks of this node: verify its shards, stage them
    /// once into shared memory, take the trainer's reports and steer the mixture (DUMP,
    /// Skill-It). Runs until SIGINT/SIGTERM, then removes the segment. Ranks attach with the
    /// Python client `syllabus_loader` (python/).
    Serve(Box<ServeArgs>),
    /// Cluster mode on Apache DataFusion Ballista: run a scheduler or an executor with
    /// syllabus's functions; `score|select dsir|zipfit` and `sql` take --cluster df://HOST:PORT.
    #[cfg(feature = "cluster")]
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

impl Command {
    /// False for the commands that can stay up for hours: a server, a cluster process, the SQL
    /// shell.
    fn runs_to_an_end(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Sql(_) => false,
            #[cfg(feature = "cluster")]
            Command::Cluster(_) => false,
            _ => true,
        }
    }
}

/// How object stores (s3://, gs://, az://, http(s)://) are reached; a pipeline's `[store]`
/// table sets the same, and these flags win over it.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct StoreArgs {
    /// Object stores: retries of a failed request, with backoff (10; 0 turns them off).
    #[arg(long, global = true, value_name = "N")]
    store_retries: Option<usize>,
    /// Object stores: seconds one request may take, from connecting to its last byte (60).
    #[arg(long, global = true, value_name = "SECS")]
    store_timeout: Option<f64>,
    /// Object stores: no retry starts later than this many seconds after the first try (180).
    #[arg(long, global = true, value_name = "SECS")]
    store_retry_timeout: Option<f64>,
    /// Object stores: a client option as KEY=VALUE, object_store's keys (e.g.
    /// aws_virtual_hosted_style_request=true, aws_region=eu-west-1); repeatable.
    #[arg(long = "store-option", global = true, value_name = "KEY=VALUE")]
    store_options: Vec<String>,
}

impl StoreArgs {
    /// `base` (the defaults, or a pipeline's `[store]`) with these flags over it.
    pub(super) fn settings(
        &self,
        base: Option<crate::store::StoreSettings>,
    ) -> anyhow::Result<crate::store::StoreSettings> {
        let mut s = base.unwrap_or_default();
        if let Some(n) = self.store_retries {
            s.retries = n;
        }
        if let Some(t) = self.store_timeout {
            s.timeout_s = t;
        }
        if let Some(t) = self.store_retry_timeout {
            s.retry_timeout_s = t;
        }
        for kv in &self.store_options {
            let (k, v) = kv.split_once('=').with_context(|| format!("--store-option {kv:?}: expected KEY=VALUE"))?;
            s.options.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(s)
    }
}

#[derive(Args, Debug)]
pub(super) struct SourceArgs {
    /// Field (jsonl) or column (Parquet) holding the text.
    #[arg(long, default_value = "text")]
    pub(super) text_field: String,
    /// Field holding the id; rows without one get FILE:LINE (jsonl) or FILE:ROW (Parquet).
    #[arg(long, default_value = "id")]
    pub(super) id_field: String,
    /// What to do with a record that cannot be read.
    #[arg(long, value_enum, default_value = "fail")]
    pub(super) on_bad_record: BadRecordPolicy,
    /// With --on-bad-record skip: write each rejected record here (jsonl).
    #[arg(long)]
    pub(super) rejects: Option<PathBuf>,
    /// Rows per batch.
    #[arg(long, default_value_t = crate::batch::DEFAULT_BATCH_ROWS)]
    pub(super) batch_rows: usize,
    /// The longest jsonl record (line) in bytes; a longer one is a bad record, and its bytes
    /// past the limit are never held in memory.
    #[arg(long, default_value_t = crate::source::DEFAULT_MAX_RECORD_BYTES)]
    pub(super) max_record_bytes: usize,
}

impl SourceArgs {
    pub(super) fn stage_outputs(&mut self, o: &mut Outputs) -> crate::error::Result<()> {
        o.stage_opt(&mut self.rejects)
    }

    pub(super) fn read_options(&self) -> anyhow::Result<ReadOptions> {
        crate::limits::check_read(self.batch_rows, self.max_record_bytes)
            .map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
        if self.rejects.is_some() && self.on_bad_record == BadRecordPolicy::Fail {
            bail!("--rejects needs --on-bad-record skip");
        }
        Ok(ReadOptions {
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            batch_rows: self.batch_rows,
            on_bad_record: self.on_bad_record,
            max_record_bytes: self.max_record_bytes,
            read_text: true,
            exclude: None,
        })
    }
}

/// Parse arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    main_with(|| {})
}

/// [`main`], calling `batch` once the command line is parsed when the command runs to an end
/// (everything but `serve`, `sql` and `cluster`, which can stay up for hours): the binary sets
/// its allocator's policy for such commands there.
pub fn main_with(batch: impl FnOnce()) -> ExitCode {
    // A panic that a guarded section turns into an error is not shown as a crash.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::error::panics_are_caught() {
            default_hook(info)
        }
    }));
    let cli = Cli::parse();
    if cli.command.runs_to_an_end() {
        batch();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // An interrupt cancels the cluster's jobs, which fails them here: the signal's
            // watcher ends the process as the signal would (130 or 143) once they are
            // cancelled, not this error.
            #[cfg(feature = "cluster")]
            crate::cluster::wait_if_interrupted();
            // Whatever raised it, no credential inside a URL reaches the terminal.
            eprintln!("error: {}", crate::store::redact(&error_chain(&e)));
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
fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    crate::limits::THREADS.check(cli.threads as u64).map_err(|e| anyhow::anyhow!("--{e}"))?;
    crate::par::init_threads(cli.threads);
    #[cfg(feature = "cluster")]
    crate::cluster::set_wait(cli.cluster_wait);
    #[cfg(feature = "cluster")]
    crate::cluster::security::set_client(crate::cluster::security::Settings {
        token_file: cli.cluster_token_file.clone(),
        tls_ca: cli.cluster_ca.clone(),
        ..Default::default()
    });
    crate::store::configure(cli.store.settings(None)?)?;
    let progress = Progress::new(cli.quiet);
    let start = Instant::now();
    // Outputs that are store URLs are written to local staging paths, and uploaded once the
    // command has finished (a pipeline stages its own output directory).
    let mut outs = Outputs::default();
    match &mut cli.command {
        Command::Score(cmd) => cmd.stage_outputs(&mut outs)?,
        Command::Select(args) => args.stage_outputs(&mut outs)?,
        Command::Curriculum(args) => args.stage_outputs(&mut outs)?,
        Command::Tokenizer(cmd) => cmd.stage_outputs(&mut outs)?,
        Command::Eval(args) => args.stage_outputs(&mut outs)?,
        Command::Mix(args) => args.stage_outputs(&mut outs)?,
        Command::Sql(args) => args.stage_outputs(&mut outs)?,
        Command::Run { .. }
        | Command::Serve(_)
        | Command::Verify { .. }
        | Command::Inspect { .. }
        | Command::Classifier(_) => {}
        #[cfg(feature = "cluster")]
        Command::Cluster(_) => {}
    }
    let code = match cli.command {
        Command::Run { pipeline, out, cluster } => {
            curriculum::run_pipeline(&pipeline, out.as_deref(), cluster, cli.threads, &cli.store, &progress, start)
        }
        Command::Curriculum(args) => curriculum::curriculum_command(&args, &progress, start),
        Command::Eval(args) => eval::eval_command(*args, &progress, start),
        Command::Mix(args) => mix::mix_command(*args, &progress, start),
        Command::Sql(args) => sql::sql_command(*args, cli.quiet),
        Command::Serve(args) => serve::serve_command(*args, cli.quiet),
        #[cfg(feature = "cluster")]
        Command::Cluster(cmd) => cluster::cluster_command(cmd),
        Command::Verify { dir } => curriculum::verify_command(&dir),
        Command::Tokenizer(cmd) => curriculum::tokenizer_command(cmd, start),
        Command::Classifier(cmd) => classifier::classifier_command(cmd, &progress, start),
        Command::Inspect { source, paths } => {
            let opts = source.read_options()?;
            for f in expand_inputs(&paths)? {
                print!("{}", inspect_file(&f, &opts)?.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(cmd) => score::score_command(cmd, &progress, start),
        Command::Select(args) => score::select_command(*args, &progress, start),
    };
    let code = code.map_err(|e| with_kept(e, &outs))?;
    outs.commit()?;
    Ok(code)
}

/// A failed command's error, with where its store outputs' staged work is kept (a run started
/// again resumes from it).
pub(super) fn with_kept(e: anyhow::Error, outs: &Outputs) -> anyhow::Error {
    let kept: Vec<String> = outs
        .kept()
        .into_iter()
        .map(|(url, dir)| {
            format!(
                "\n  {url} is staged in {}: run the same command again to resume, or remove that directory",
                dir.display()
            )
        })
        .collect();
    if kept.is_empty() {
        e
    } else {
        anyhow::anyhow!("{}{}", error_chain(&e), kept.concat())
    }
}

/// Validated read options, the expanded raw files and the rejects file of a command.
pub(super) fn open_lake(
    source: &SourceArgs,
    raw: &[String],
) -> anyhow::Result<(ReadOptions, Vec<InputFile>, Option<RejectWriter>)> {
    let opts = source.read_options()?;
    let raw = expand_inputs(raw)?;
    let rejects = source.rejects.as_deref().map(RejectWriter::create).transpose()?;
    Ok((opts, raw, rejects))
}

/// Print the summary of a finished command and choose its exit code.
pub(super) fn finish(
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
    eprintln!("syllabus {what}: wrote {}", crate::store::output::shown(out));
    print_report(&report, start, selecting);
    Ok(exit_code(&report))
}

pub(super) fn exit_code(report: &RunReport) -> ExitCode {
    if report.rejected() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

pub(super) fn print_totals(what: &str, t: &crate::shard::manifest::Totals, start: Instant) {
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

pub(super) fn print_report(r: &RunReport, start: Instant, selecting: bool) {
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
    if let Some(w) = &r.resumed {
        let fit = match w.fit_files {
            0 => String::new(),
            usize::MAX => "the fitted model, ".to_string(),
            n => format!("the fit of {n} file{}, ", if n == 1 { "" } else { "s" }),
        };
        let target = if w.prologue { "the target set, " } else { "" };
        eprintln!(
            "  resumed an interrupted run: kept {target}{fit}the scores of {} of {} files",
            w.scored_files,
            r.files.len()
        );
    }
}
