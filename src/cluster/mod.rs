//! Cluster mode on Apache DataFusion Ballista: `syllabus cluster scheduler|executor` run
//! Ballista's scheduler and executor with syllabus's functions and codecs registered, and
//! `--cluster df://HOST:PORT` sends the scoring and selection stages to them.
//!
//! Every stage is a map over files and a small reduce ([`jobs`]): the DSIR fit is an
//! aggregate whose per-partition states (bucket counts) are summed; scores are scalar
//! functions; Gumbel top-k is a per-partition top-k merged exactly on one task. The state a
//! scorer needs (the DSIR model's counts, the ZIP-FIT target texts) travels inside the plan
//! ([`codec`]); the lake's files are opened by the executors themselves, so they must be where
//! every executor can read them (an object store, or a shared filesystem).
//!
//! What a run writes is written by the client, with the local writers, in the local order, so
//! a cluster run's files are byte-identical to a local run's.

pub mod codec;
pub mod jobs;
pub mod lake;
pub mod udf;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::extension::{SessionConfigExt, SessionContextExt};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// The scheduler's default port (Ballista's).
pub const DEFAULT_PORT: u16 = 50050;

fn ballista_err(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("cluster: {e}"))
}

/// `df://HOST:PORT` (or `HOST:PORT`) as host and port.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let rest = url.strip_prefix("df://").unwrap_or(url).trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| Error::InvalidArgument(format!("{url}: the port is not a number")))?),
        None => (rest, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(Error::InvalidArgument(format!("{url}: give the scheduler as df://HOST:PORT")));
    }
    Ok((host.to_string(), port))
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::InvalidArgument(format!("{s}: not a HOST:PORT address")))
}

/// The session settings every side uses: Ballista's, with no round-robin repartitioning (a
/// file's rows stay in order in one partition, which the DSIR fit's budget and the Gumbel
/// draws rely on).
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_round_robin_repartition(false)
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_logical_extension_codec(Arc::new(codec::LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(codec::PhysicalCodec::default()))
}

/// A runtime whose object stores are syllabus's (the same clients and settings as the readers).
fn runtime(temp: Option<&str>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut b = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(crate::store::Registry::default()));
    if let Some(t) = temp {
        b = b.with_temp_file_path(t);
    }
    b.build_arc()
}

/// A session state with syllabus's stateless SQL functions (the stateful ones travel in plans).
fn session_state(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let mut state = SessionStateBuilder::new().with_default_features().with_config(config).with_runtime_env(runtime(None)?).build();
    use datafusion::execution::FunctionRegistry;
    state.register_udf(Arc::new(crate::sql::udf::n_words()))?;
    state.register_udf(Arc::new(crate::sql::udf::ncd()))?;
    Ok(state)
}

/// Ballista's log messages on stderr, at `SYLLABUS_LOG` (error, warn, info, debug; warn by
/// default), with the time and the module.
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                eprintln!("{}.{:03} {} {}: {}", t.as_secs(), t.subsec_millis(), r.level(), r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    let level = std::env::var("SYLLABUS_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(log::LevelFilter::Warn);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}

/// Settings of `syllabus cluster scheduler`.
pub struct SchedulerOptions {
    pub bind: String,
    /// Seconds without a heartbeat before an executor is taken for lost and its tasks rerun.
    pub executor_timeout_secs: u64,
}

/// Run a scheduler until the process ends.
pub fn run_scheduler(opts: SchedulerOptions) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    init_log();
    let addr = parse_addr(&opts.bind)?;
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        override_config_producer: Some(Arc::new(session_config)),
        override_session_builder: Some(Arc::new(session_state)),
        override_logical_codec: Some(Arc::new(codec::LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(codec::PhysicalCodec::default())),
        executor_timeout_seconds: opts.executor_timeout_secs,
        expire_dead_executor_interval_seconds: opts.executor_timeout_secs.clamp(1, 15),
        no_executors_grace_period_seconds: opts.executor_timeout_secs,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(async move {
        let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_err)?;
        eprintln!("syllabus cluster scheduler: listening on {addr}");
        ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config)).await.map_err(ballista_err)
    })
}

/// Settings of `syllabus cluster executor`.
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// Where the executor serves its results (Arrow Flight), `HOST:PORT`; gRPC on PORT + 1.
    pub bind: String,
    /// Tasks run at once (default: the cores).
    pub concurrency: usize,
    /// Shuffle files and spills.
    pub work_dir: Option<String>,
    pub heartbeat_secs: u64,
}

/// Run an executor until the process ends.
pub fn run_executor(opts: ExecutorOptions) -> Result<()> {
    use ballista_core::registry::BallistaFunctionRegistry;
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    init_log();
    let addr = parse_addr(&opts.bind)?;
    let (scheduler_host, scheduler_port) = parse_url(&opts.scheduler)?;
    let mut registry = BallistaFunctionRegistry::default();
    for f in [crate::sql::udf::n_words(), crate::sql::udf::ncd()] {
        registry.scalar_functions.insert(f.name().to_string(), Arc::new(f));
    }
    let work_dir = opts.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: addr.ip().to_string(),
        external_host: Some(addr.ip().to_string()),
        port: addr.port(),
        grpc_port: addr.port().checked_add(1).ok_or_else(|| Error::InvalidArgument("the executor's port must leave PORT + 1 free".into()))?,
        scheduler_host,
        scheduler_port,
        vcores: opts.concurrency,
        work_dir: opts.work_dir.clone(),
        executor_heartbeat_interval_seconds: opts.heartbeat_secs,
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(Arc::new(move |_| runtime(work_dir.as_deref()))),
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(codec::LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(codec::PhysicalCodec::default())),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::io("tokio runtime", e))?;
    eprintln!("syllabus cluster executor: serving on {addr}, scheduler {}", opts.scheduler);
    rt.block_on(start_executor_process(Arc::new(config))).map_err(ballista_err)
}

/// A client's connection to a cluster, with its own runtime for the blocking commands.
pub struct Cluster {
    pub url: String,
    pub ctx: SessionContext,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub fn connect(url: &str) -> Result<Cluster> {
        let (host, port) = parse_url(url)?;
        // Ballista connects lazily; say plainly when the scheduler is not there.
        let addr = parse_addr(&format!("{host}:{port}"))?;
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
            .map_err(|e| Error::InvalidArgument(format!("cannot reach the cluster's scheduler at {url}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::io("tokio runtime", e))?;
        let ctx = rt.block_on(connect(&host, port))?;
        Ok(Cluster { url: url.to_string(), ctx, rt })
    }

    pub fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }
}

/// A session whose queries run on the cluster at `host:port`.
pub async fn connect(host: &str, port: u16) -> Result<SessionContext> {
    let state = session_state(session_config()).map_err(ballista_err)?;
    SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await.map_err(ballista_err)
}
