//! `syllabus cluster scheduler|executor`, and the `--cluster` paths of `score` and `select`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use clap::Subcommand;

use super::score::{DsirArgs, ZipfitArgs};
use super::{finish, SourceArgs};
use crate::cluster::jobs::{ClusterLake, Scoring};
use crate::cluster::Cluster;
use crate::pipeline::Keep;
use crate::progress::Progress;
use crate::source::{expand_inputs, FileStats, RejectWriter};

#[derive(Subcommand)]
pub(super) enum ClusterCommand {
    /// Run a Ballista scheduler with syllabus's functions and codecs; clients connect with
    /// --cluster df://HOST:PORT. Runs until killed.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: String,
        /// Seconds without a heartbeat after which an executor is lost and its tasks rerun.
        #[arg(long, default_value_t = 30)]
        executor_timeout: u64,
    },
    /// Run a Ballista executor for a scheduler; it serves results on --bind's port and takes
    /// tasks over gRPC on the port after it. Runs until killed.
    Executor {
        /// The scheduler, HOST:PORT (or df://HOST:PORT).
        #[arg(long)]
        scheduler: String,
        /// Address to serve on (PORT and PORT + 1 are used).
        #[arg(long, default_value = "0.0.0.0:50051")]
        bind: String,
        /// Tasks run at once (default: the cores).
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
        /// Shuffle files and spills (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 5)]
        heartbeat: u64,
    },
}

pub(super) fn cluster_command(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Scheduler { bind, executor_timeout } => {
            crate::cluster::run_scheduler(crate::cluster::SchedulerOptions {
                bind,
                executor_timeout_secs: executor_timeout,
            })?
        }
        ClusterCommand::Executor { scheduler, bind, concurrency, work_dir, heartbeat } => {
            crate::cluster::run_executor(crate::cluster::ExecutorOptions {
                scheduler,
                bind,
                concurrency,
                work_dir,
                heartbeat_secs: heartbeat,
            })?
        }
    }
    Ok(ExitCode::SUCCESS)
}

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
                crate::pipeline::zipfit::load_target(&target, lake.read, args.params(), progress, rejects)?;
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
