//! `syllabus cluster scheduler|executor`.

use std::process::ExitCode;

use clap::Subcommand;

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
