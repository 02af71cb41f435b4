//! `syllabus serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// The curriculum's directory (where manifest.json is).
    dir: PathBuf,
    /// Serve under syllabus-<uid>-NAME instead of a name derived from the manifest (to serve
    /// one curriculum to two trainers at once).
    #[arg(long)]
    name: Option<String>,
    /// The feedback rule (default: the pipeline's [feedback] rule, else none).
    #[arg(long, value_enum)]
    feedback: Option<crate::loader::feedback::Rule>,
    /// Reports are due every N global batches.
    #[arg(long)]
    every: Option<u64>,
    /// A decision applies this many global batches after its report.
    #[arg(long)]
    lag: Option<u64>,
    /// DUMP's softmax temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Skill-It's step size.
    #[arg(long)]
    eta: Option<f64>,
    /// The decision log (default: mixture_log.jsonl in the curriculum's directory).
    #[arg(long)]
    log: Option<PathBuf>,
    /// File mode of the shared-memory segment, its lock and its socket (octal).
    #[arg(long, default_value = "600")]
    mode: String,
    /// copy: the tokens into shared memory; map: ranks map the (verified) shard files, for
    /// curricula larger than shared memory.
    #[arg(long, value_enum, default_value = "copy")]
    stage: crate::loader::segment::StageMode,
}

pub(super) fn serve_command(mut a: ServeArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use crate::loader::feedback::FeedbackConfig;
    if crate::store::is_remote(&a.dir) {
        // A curriculum in a store is copied to this node's disk once (kept while its manifest
        // is unchanged), then verified and staged into shared memory as a local one.
        let url = a.dir.display().to_string();
        a.dir = crate::store::output::download_dir(&a.dir)?;
        if !quiet {
            eprintln!("syllabus serve: {url} copied to {}", a.dir.display());
        }
    }
    let manifest = crate::shard::manifest::Manifest::load(&a.dir)?;
    let mut fb: FeedbackConfig = match manifest.config.get("feedback") {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone())
            .map_err(|e| anyhow::anyhow!("{}: manifest's [feedback]: {e}", a.dir.display()))?,
        _ => FeedbackConfig::default(),
    };
    if let Some(r) = a.feedback {
        fb.rule = r;
    }
    fb.every = a.every.unwrap_or(fb.every);
    fb.lag = a.lag.unwrap_or(fb.lag);
    fb.temperature = a.temperature.unwrap_or(fb.temperature);
    fb.eta = a.eta.unwrap_or(fb.eta);
    let mode = u32::from_str_radix(&a.mode, 8).ok().filter(|m| *m <= 0o777 && m & 0o600 == 0o600).ok_or_else(|| {
        anyhow::anyhow!("--mode {}: an octal file mode that lets the owner read and write, e.g. 600 or 660", a.mode)
    })?;
    let opts =
        crate::loader::serve::ServeOptions { dir: a.dir, name: a.name, feedback: fb, log: a.log, mode, stage: a.stage };
    crate::loader::serve::serve(opts, |r| {
        // One JSON line on stdout says it is ready (scripts and tests wait for it).
        println!("{}", serde_json::to_string(r).expect("ready serializes"));
        if !quiet {
            eprintln!(
                "syllabus serve: {} sequences ({} MB) in {}; feedback {}{}; stop with Ctrl-C",
                r.sequences,
                r.bytes >> 20,
                r.segment.display(),
                serde_json::to_value(r.rule).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                r.replaced_stale_pid.map(|p| format!("; replaced a stale segment of pid {p}")).unwrap_or_default()
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
