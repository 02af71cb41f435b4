//! `syllabus cluster scheduler|executor`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cluster::security::Settings;

#[derive(Subcommand)]
pub(super) enum ClusterCommand {
    /// Run a Ballista scheduler with syllabus's functions and codecs; clients connect with
    /// --cluster df://HOST:PORT. Listens on 127.0.0.1 unless --bind says otherwise; beyond
    /// loopback it requires the cluster's token (SYLLABUS_CLUSTER_TOKEN or --token-file).
    /// Runs until killed.
    Scheduler {
        /// Address to listen on, HOST or HOST:PORT (0.0.0.0 for every interface).
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Port to listen on, when --bind names none [default: 50050].
        #[arg(long)]
        port: Option<u16>,
        /// Seconds without a heartbeat after which an executor is lost and its tasks rerun.
        #[arg(long, default_value_t = 30)]
        executor_timeout: u64,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Run a Ballista executor for a scheduler: it polls the scheduler for tasks and serves
    /// results and shuffle files over Arrow Flight on --bind. Listens on 127.0.0.1 unless
    /// --bind says otherwise; beyond loopback it requires the cluster's token. Runs until killed.
    Executor {
        /// The scheduler, HOST:PORT (or df://HOST:PORT).
        #[arg(long)]
        scheduler: String,
        /// Address to serve on, HOST or HOST:PORT (0.0.0.0 for every interface).
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Port to serve on, when --bind names none [default: 50051].
        #[arg(long)]
        port: Option<u16>,
        /// The name or address the scheduler, clients and other executors reach this executor
        /// by (default: the --bind address; this machine's host name when bound to 0.0.0.0).
        /// With TLS, its certificate must name it.
        #[arg(long, value_name = "HOST")]
        advertise: Option<String>,
        /// Tasks run at once (default: the cores).
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
        /// Shuffle files and spills (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 5)]
        heartbeat: u64,
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// Who may call the server, and how the cluster's connections are encrypted (docs/cluster.md,
/// "Security").
#[derive(Args)]
pub(super) struct SecurityArgs {
    /// A file holding the cluster's token (read once, never printed); otherwise the
    /// SYLLABUS_CLUSTER_TOKEN environment variable. Every call to this server must carry it.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// This server's TLS certificate chain (PEM); it must name the host the others dial.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This server's TLS private key (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): the calls this process makes to the cluster's other
    /// servers go over TLS and check their certificates against it.
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<PathBuf>,
    /// Listen beyond loopback without a token: anyone who can connect can run jobs that read
    /// what this process can read. Warned about on every start.
    #[arg(long)]
    insecure: bool,
}

impl SecurityArgs {
    fn settings(self) -> Settings {
        Settings {
            token_file: self.token_file,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_ca: self.tls_ca,
            insecure: self.insecure,
        }
    }
}

pub(super) fn cluster_command(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    use crate::cluster::{bind_addr, DEFAULT_PORT};
    match cmd {
        ClusterCommand::Scheduler { bind, port, executor_timeout, security } => {
            crate::cluster::run_scheduler(crate::cluster::SchedulerOptions {
                bind: bind_addr(&bind, port, DEFAULT_PORT)?,
                executor_timeout_secs: executor_timeout,
                security: security.settings(),
            })?
        }
        ClusterCommand::Executor { scheduler, bind, port, advertise, concurrency, work_dir, heartbeat, security } => {
            crate::cluster::run_executor(crate::cluster::ExecutorOptions {
                scheduler,
                bind: bind_addr(&bind, port, DEFAULT_PORT + 1)?,
                advertise,
                concurrency,
                work_dir,
                heartbeat_secs: heartbeat,
                security: security.settings(),
            })?
        }
    }
    Ok(ExitCode::SUCCESS)
}
