//! `syllabus sql`: scripts and the interactive shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub(super) struct SqlArgs {
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
    /// Benchmark items for contam_frac(text), the overlap by the 13-gram rule (files,
    /// directories, globs).
    #[arg(long, num_args = 1..)]
    against: Vec<String>,
    /// A fastText classifier (.bin, .ftz) for clf_prob(text): its first label's probability.
    #[arg(long)]
    classifier_model: Option<PathBuf>,
    /// Memory for sorts, joins and aggregations before they spill to disk (MiB).
    #[arg(long, default_value_t = 2048)]
    memory_limit_mb: usize,
    /// jsonl tables learn their columns from this many rows of each sampled file (0: every
    /// row of every file, before the first statement). A field the sample missed is added,
    /// with a warning, when a scan first meets it, from the next statement on.
    #[arg(long, default_value_t = 1000)]
    schema_sample_rows: usize,
    /// ... in at most this many files, spread over the lake (the first and the last included).
    #[arg(long, default_value_t = 32)]
    schema_sample_files: usize,
    /// Run the statements on a Ballista cluster (`syllabus cluster`): df://HOST:PORT.
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
    /// Output directories, files or directories of data.
    paths: Vec<PathBuf>,
}

impl SqlArgs {
    pub(super) fn stage_outputs(&mut self, o: &mut crate::store::output::Outputs) -> crate::error::Result<()> {
        o.stage_opt(&mut self.output)
    }
}

pub(super) fn sql_command(args: SqlArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use crate::sql::{Output, Session, SqlOptions};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let opts = SqlOptions {
            paths: args.paths.clone(),
            dsir_model: args.dsir_model.clone(),
            zipfit_target: args.zipfit_target.clone(),
            against: args.against.clone(),
            classifier_model: args.classifier_model.clone(),
            memory_limit_mb: args.memory_limit_mb,
            schema_sample: crate::sql::tables::SchemaSample {
                rows: args.schema_sample_rows,
                files: args.schema_sample_files,
            },
            progress: crate::progress::Progress::new(quiet).enabled(),
        };
        let remote = match &args.cluster {
            None => None,
            Some(url) => {
                opts.check_remote()?;
                Some(remote(url).await?)
            }
        };
        let session = Session::with_remote(&opts, remote).await?;
        let mut out = Output::new(args.format, args.output.as_deref())?;
        let script = match (&args.command, &args.file) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(f)) => {
                Some(crate::store::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
            }
            (None, None) if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                Some(s)
            }
            _ => None,
        };
        match script {
            Some(script) => {
                // An interrupted script cancels its statement's job on the cluster.
                #[cfg(feature = "cluster")]
                if args.cluster.is_some() {
                    crate::cluster::watch_signals();
                }
                crate::sql::run_script(&session, &script, &mut out).await?;
                out.finish()?;
            }
            None => sql_shell(&session, &mut out, quiet).await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(feature = "cluster")]
async fn remote(url: &str) -> crate::error::Result<crate::sql::Remote> {
    crate::cluster::sql_remote(url).await
}

#[cfg(not(feature = "cluster"))]
async fn remote(_url: &str) -> crate::error::Result<crate::sql::Remote> {
    Err(crate::Error::InvalidArgument("this syllabus was built without the `cluster` feature".into()))
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
        eprintln!(
            "syllabus sql: {} tables; \\d lists them, \\d NAME describes one, \\q quits; end statements with ;",
            session.table_names().len()
        );
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
                        _ = tokio::signal::ctrl_c() => {
                            // A statement on a cluster is cancelled there too.
                            #[cfg(feature = "cluster")]
                            let _ = crate::cluster::cancel_live().await;
                            eprintln!("cancelled")
                        }
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
