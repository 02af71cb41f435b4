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
pub mod security;
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

/// `df://HOST:PORT` (or `HOST:PORT`) as host and port. The port is required: a scheduler on
/// another port than the one assumed would be a silent wrong connection.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let rest = url.strip_prefix("df://").unwrap_or(url).trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            (h, p.parse::<u16>().map_err(|_| Error::InvalidArgument(format!("{url}: the port is not a number")))?)
        }
        None => {
            return Err(Error::InvalidArgument(format!(
                "{url}: give the scheduler's port too, as df://HOST:PORT (the scheduler's default is {DEFAULT_PORT})"
            )))
        }
    };
    if host.is_empty() {
        return Err(Error::InvalidArgument(format!("{url}: give the scheduler as df://HOST:PORT")));
    }
    Ok((host.to_string(), port))
}

/// How long a client waits for an executor before it gives up (`--cluster-wait`), in seconds.
pub const DEFAULT_WAIT_SECS: u64 = 60;
static WAIT_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_WAIT_SECS);

/// Set how long clients wait for an executor (`--cluster-wait`).
pub fn set_wait(secs: u64) {
    WAIT_SECS.store(secs, std::sync::atomic::Ordering::Relaxed);
}

fn wait() -> std::time::Duration {
    std::time::Duration::from_secs(WAIT_SECS.load(std::sync::atomic::Ordering::Relaxed))
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::InvalidArgument(format!("{s}: not a HOST:PORT address")))
}

/// Where a server listens: `--bind HOST[:PORT]` (an address or a host name), with `--port` or
/// `default_port` when the bind names no port. Loopback unless the user says otherwise.
pub fn bind_addr(bind: &str, port: Option<u16>, default_port: u16) -> Result<SocketAddr> {
    use std::net::{IpAddr, ToSocketAddrs};
    let with_port = |a: SocketAddr| match port {
        Some(p) if p != a.port() => {
            Err(Error::InvalidArgument(format!("--bind {bind} and --port {p} name different ports")))
        }
        _ => Ok(a),
    };
    if let Ok(a) = bind.parse::<SocketAddr>() {
        return with_port(a);
    }
    let port = port.unwrap_or(default_port);
    if let Ok(ip) = bind.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if bind.contains(':') {
        let a = parse_addr(bind)?;
        return with_port(a);
    }
    (bind, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::InvalidArgument(format!("--bind {bind}: not an address or a host name of this machine")))
}

/// The session settings every side uses: Ballista's, with no round-robin repartitioning (a
/// file's rows stay in order in one partition, which the DSIR fit's budget and the Gumbel
/// draws rely on), and the process's token and TLS on every client Ballista builds from them
/// ([`security`]).
pub fn session_config() -> SessionConfig {
    let config = SessionConfig::new_with_ballista()
        .with_round_robin_repartition(false)
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_logical_extension_codec(Arc::new(codec::LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(codec::PhysicalCodec::default()));
    let Some(sec) = security::loaded() else { return config };
    let config = config.with_ballista_use_tls(sec.tls());
    match sec.endpoint_override() {
        Some(f) => config.with_ballista_override_create_grpc_client_endpoint(f),
        None => config,
    }
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
    let mut state =
        SessionStateBuilder::new().with_default_features().with_config(config).with_runtime_env(runtime(None)?).build();
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
    pub bind: SocketAddr,
    /// Seconds without a heartbeat before an executor is taken for lost and its tasks rerun.
    pub executor_timeout_secs: u64,
    pub security: security::Settings,
}

/// Run a scheduler until the process ends. Its gRPC service is served by syllabus's own tonic
/// server, which checks each call's token ([`security`]); executors are pulled (they poll it).
pub fn run_scheduler(opts: SchedulerOptions) -> Result<()> {
    use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
    use ballista_core::utils::GrpcServerConfig;
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
    init_log();
    let addr = opts.bind;
    let sec = security::activate(security::Security::load(&opts.security)?);
    security::check_bind(addr, sec, "scheduler")?;
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        scheduling_policy: ballista_core::config::TaskSchedulingPolicy::PullStaged,
        override_config_producer: Some(Arc::new(session_config)),
        override_session_builder: Some(Arc::new(session_state)),
        override_logical_codec: Some(Arc::new(codec::LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(codec::PhysicalCodec::default())),
        override_create_grpc_client_endpoint: sec.endpoint_override(),
        executor_timeout_seconds: opts.executor_timeout_secs,
        expire_dead_executor_interval_seconds: (opts.executor_timeout_secs / 2).clamp(1, 15),
        no_executors_grace_period_seconds: opts.executor_timeout_secs,
        ..Default::default()
    };
    config.validate().map_err(ballista_err)?;
    let (max_enc, max_dec) =
        (config.grpc_server_max_encoding_message_size as usize, config.grpc_server_max_decoding_message_size as usize);
    // Ballista's own scheduler server has no request timeout; planning a large lake takes time.
    let server_config = GrpcServerConfig { timeout_seconds: 24 * 3600, ..Default::default() };
    let mut server = sec.server(&server_config)?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(async move {
        let incoming = ballista_core::utils::create_grpc_server_incoming(addr, &server_config)
            .map_err(|e| Error::InvalidArgument(format!("the scheduler cannot listen on {addr}: {e}")))?;
        let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_err)?;
        let scheduler = ballista_scheduler::scheduler_process::create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(
            cluster,
            Arc::new(config),
        )
        .await
        .map_err(ballista_err)?;
        let service = tonic::service::interceptor::InterceptedService::new(
            SchedulerGrpcServer::new(scheduler).max_encoding_message_size(max_enc).max_decoding_message_size(max_dec),
            sec.guard("scheduler"),
        );
        eprintln!(
            "syllabus cluster scheduler: listening on {addr}{}{}",
            if sec.token.is_some() { ", token required" } else { "" },
            if sec.tls() { ", TLS" } else { "" }
        );
        server.add_service(service).serve_with_incoming(incoming).await.map_err(ballista_err)
    })
}

/// Settings of `syllabus cluster executor`.
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// Where the executor serves its results and shuffle files (Arrow Flight).
    pub bind: SocketAddr,
    /// The host name or address the scheduler, clients and other executors reach it by
    /// (default: the bound address, or this machine's host name when bound to all interfaces).
    pub advertise: Option<String>,
    /// Tasks run at once (default: the cores).
    pub concurrency: usize,
    /// Shuffle files and spills.
    pub work_dir: Option<String>,
    pub heartbeat_secs: u64,
    pub security: security::Settings,
}

/// This machine's host name, as an executor bound to all interfaces advertises itself.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Run an executor until the process ends. It polls the scheduler for tasks (no gRPC server of
/// its own) and serves results over Arrow Flight, from syllabus's own tonic server, which
/// checks each call's token ([`security`]).
pub fn run_executor(opts: ExecutorOptions) -> Result<()> {
    use ballista_core::registry::BallistaFunctionRegistry;
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    init_log();
    let addr = opts.bind;
    let (scheduler_host, scheduler_port) = parse_url(&opts.scheduler)?;
    let sec = security::activate(security::Security::load(&opts.security)?);
    security::check_bind(addr, sec, "executor")?;
    let advertise = match &opts.advertise {
        Some(h) => h.clone(),
        None if addr.ip().is_unspecified() => host_name().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "bound to {addr}, the executor must say under which name the others reach it: give --advertise HOST"
            ))
        })?,
        None => addr.ip().to_string(),
    };
    let mut registry = BallistaFunctionRegistry::default();
    for f in [crate::sql::udf::n_words(), crate::sql::udf::ncd()] {
        registry.scalar_functions.insert(f.name().to_string(), Arc::new(f));
    }
    let work_dir = opts.work_dir.clone();
    let flight_sec = sec.clone();
    let flight: Arc<ballista_executor::ArrowFlightServerProvider> =
        Arc::new(move |work_dir, address, mut shutdown, server_config| {
            let sec = flight_sec.clone();
            tokio::spawn(async move {
                use arrow_flight::flight_service_server::FlightServiceServer;
                use ballista_core::error::BallistaError;
                let service = tonic::service::interceptor::InterceptedService::new(
                    FlightServiceServer::new(ballista_executor::flight_service::BallistaFlightService::new(work_dir))
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX),
                    sec.guard("executor"),
                );
                let incoming = ballista_core::utils::create_grpc_server_incoming(address, &server_config)
                    .map_err(|e| BallistaError::General(format!("the executor cannot listen on {address}: {e}")))?;
                let mut server = sec.server(&server_config).map_err(|e| BallistaError::General(e.to_string()))?;
                server
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, shutdown.recv())
                    .await
                    .map_err(BallistaError::TonicError)
            })
        });
    let config = ExecutorProcessConfig {
        bind_host: addr.ip().to_string(),
        external_host: Some(advertise.clone()),
        port: addr.port(),
        // Pulled executors serve no task gRPC service; the port is only reported.
        grpc_port: addr.port(),
        scheduler_host,
        scheduler_port,
        task_scheduling_policy: ballista_core::config::TaskSchedulingPolicy::PullStaged,
        vcores: opts.concurrency,
        work_dir: opts.work_dir.clone(),
        executor_heartbeat_interval_seconds: opts.heartbeat_secs,
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(Arc::new(move |_| runtime(work_dir.as_deref()))),
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(codec::LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(codec::PhysicalCodec::default())),
        override_arrow_flight_service: Some(flight),
        override_create_grpc_client_endpoint: sec.endpoint_override(),
        ..Default::default()
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::io("tokio runtime", e))?;
    // A wrong token would only show as failed polls in the log, forever: ask once, and stop.
    rt.block_on(check_admitted(&opts.scheduler, sec))?;
    eprintln!("syllabus cluster executor: serving on {addr} as {advertise}, scheduler {}", opts.scheduler);
    rt.block_on(start_executor_process(Arc::new(config))).map_err(ballista_err)
}

/// Ask the scheduler at `url` whether it takes this process's token and speaks its TLS (a
/// job-status question about no job): otherwise Ballista's poll loop would only log failed
/// polls, forever. A scheduler that cannot be reached at all is left to Ballista's own error.
async fn check_admitted(url: &str, sec: &security::Security) -> Result<()> {
    let (host, port) = parse_url(url)?;
    let Ok(mut client) = scheduler_client(&host, port, sec).await else { return Ok(()) };
    let asked =
        client.get_job_status(ballista_core::serde::protobuf::GetJobStatusParams { job_id: String::new() }).await;
    let refused =
        |why: String| Err(Error::InvalidArgument(format!("the scheduler at {url} refused this executor: {why}")));
    match asked {
        Err(s) if s.code() == tonic::Code::Unauthenticated => refused(if sec.token.is_some() {
            "its cluster token is not the scheduler's (check SYLLABUS_CLUSTER_TOKEN or --token-file)".into()
        } else {
            "the cluster requires a token; set SYLLABUS_CLUSTER_TOKEN (or --token-file PATH)".into()
        }),
        Err(s) if std::error::Error::source(&s).is_some_and(|e| e.is::<tonic::transport::Error>()) => {
            Err(Error::InvalidArgument(format!(
                "cannot talk to the scheduler at {url} ({}): {}",
                s.message(),
                if sec.tls() {
                    "this executor speaks TLS (--tls-ca); was the scheduler started with --tls-cert, and does its certificate name the host?"
                } else {
                    "if the scheduler serves TLS, give this executor --tls-cert, --tls-key and --tls-ca"
                }
            )))
        }
        _ => Ok(()),
    }
}

/// A scheduler client of this process (its token and TLS).
async fn scheduler_client(
    host: &str,
    port: u16,
    sec: &security::Security,
) -> Result<ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
        .and_then(|e| sec.configure(e.connect_timeout(std::time::Duration::from_secs(10))))
        .map_err(ballista_err)?;
    let channel = endpoint.connect().await.map_err(ballista_err)?;
    Ok(ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient::new(channel))
}

/// A client's connection to a cluster, with its own runtime for the blocking commands.
pub struct Cluster {
    /// The scheduler, as parsed from the URL.
    pub host: String,
    pub port: u16,
    pub ctx: SessionContext,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub fn connect(url: &str) -> Result<Cluster> {
        let (host, port) = parse_url(url)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        watch_signals();
        let ctx = rt.block_on(connect(&host, port))?;
        Ok(Cluster { host, port, ctx, rt })
    }

    pub fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }
}

/// A session whose queries run on the cluster at `host:port`, once an executor has shown
/// that it runs tasks ([`await_executor`]).
pub async fn connect(host: &str, port: u16) -> Result<SessionContext> {
    // Ballista connects lazily; say plainly when the scheduler is not there.
    let addr = parse_addr(&format!("{host}:{port}"))?;
    let url = format!("df://{host}:{port}");
    tokio::task::spawn_blocking(move || {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
    })
    .await
    .map_err(|e| Error::InvalidArgument(format!("cluster: {e}")))?
    .map_err(|e| Error::InvalidArgument(format!("cannot reach the cluster's scheduler at {url}: {e}")))?;
    security::active()?;
    // The client polls its jobs' status (instead of a pushed stream) so that it knows each
    // job's id as soon as the scheduler accepts it, and can cancel it ([`cancel_jobs`]).
    let config = session_config().set_bool(ballista_core::config::BALLISTA_CLIENT_PULL, true);
    let state = session_state(config).map_err(ballista_err)?;
    let ctx = SessionContext::remote_with_state(&url, state).await.map_err(ballista_err)?;
    await_executor(&ctx, host, port, wait()).await.map_err(|e| match security::explain(&url, &e.to_string()) {
        Some(why) => Error::InvalidArgument(why),
        None => e,
    })?;
    Ok(ctx)
}

/// Run a trivial job and wait at most `wait` for it: a scheduler with no executor queues jobs
/// forever (it fails them only when executors it had are lost), so without this a command
/// against an empty cluster would hang silently. Says after two seconds that it is waiting;
/// on giving up, cancels the job on the scheduler and fails with an error that says what to do.
async fn await_executor(ctx: &SessionContext, host: &str, port: u16, wait: std::time::Duration) -> Result<()> {
    use std::time::{Duration, Instant};
    let df = ctx.sql("SELECT 1 AS syllabus_probe").await.map_err(ballista_err)?;
    let plan = df.create_physical_plan().await.map_err(ballista_err)?;
    let mut job = tokio::spawn(datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()));
    let start = Instant::now();
    let mut told = false;
    loop {
        tokio::select! {
            r = &mut job => {
                if told {
                    eprintln!("syllabus: an executor is there; going on");
                }
                return r.map_err(|e| Error::InvalidArgument(format!("cluster: {e}")))?.map(|_| ()).map_err(ballista_err);
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let waited = start.elapsed();
        if !told && waited >= Duration::from_secs(2).min(wait) {
            eprintln!(
                "syllabus: waiting for an executor of the cluster at df://{host}:{port} to run tasks (up to {} s; --cluster-wait)",
                wait.as_secs()
            );
            told = true;
        }
        if waited >= wait {
            job.abort();
            let _ = cancel_jobs(host, port, &[plan]).await;
            return Err(Error::InvalidArgument(format!(
                "no executor of the cluster at df://{host}:{port} ran a task within {} s: start one with `syllabus cluster executor --scheduler {host}:{port}`, or wait longer with --cluster-wait SECONDS",
                wait.as_secs()
            )));
        }
    }
}

/// The jobs this process has sent to a scheduler, to cancel when it is interrupted.
type Live = std::sync::Mutex<Vec<(String, u16, Arc<dyn datafusion::physical_plan::ExecutionPlan>)>>;

fn live() -> &'static Live {
    static LIVE: std::sync::OnceLock<Live> = std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// A SQL session's remote ([`crate::sql::Remote`]): statements planned by `syllabus sql` run
/// as jobs on the scheduler at `url`, each remembered so that an interrupted statement is
/// cancelled there too ([`cancel_live`]).
pub async fn sql_remote(url: &str) -> Result<crate::sql::Remote> {
    let (host, port) = parse_url(url)?;
    let ctx = connect(&host, port).await?;
    Ok(crate::sql::Remote { ctx, execute: Arc::new(move |ctx, plan| execute(ctx, &host, port, plan)) })
}

/// Run `plan` (planned by a cluster session) as a stream, and remember it so that an
/// interrupted client cancels its job on the scheduler.
pub fn execute(
    ctx: &SessionContext,
    host: &str,
    port: u16,
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> datafusion::error::Result<datafusion::physical_plan::SendableRecordBatchStream> {
    live().lock().unwrap_or_else(|p| p.into_inner()).push((host.to_string(), port, plan.clone()));
    datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())
}

/// Ask the scheduler to cancel the jobs of `plans` (those that have a job id); returns how many
/// it took. Errors are reported, not returned: the caller is already failing.
async fn cancel_jobs(host: &str, port: u16, plans: &[Arc<dyn datafusion::physical_plan::ExecutionPlan>]) -> usize {
    use ballista_core::execution_plans::DistributedQueryExec;
    use ballista_core::serde::protobuf::CancelJobParams;
    use datafusion_proto::protobuf::LogicalPlanNode;
    let jobs: Vec<&DistributedQueryExec<LogicalPlanNode>> = plans
        .iter()
        .filter_map(|p| {
            let any: &dyn std::any::Any = p.as_ref();
            any.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
        })
        .collect();
    // A job sent a moment ago may not have its id yet (the scheduler's answer is on its way,
    // and tasks may already run): wait a little for it.
    let t = std::time::Instant::now();
    while jobs.iter().any(|d| d.job_id().is_none()) && t.elapsed() < std::time::Duration::from_secs(2) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ids: Vec<String> = jobs.iter().filter_map(|d| d.job_id()).map(Into::into).collect();
    if ids.is_empty() {
        return 0;
    }
    let client = match security::active() {
        Ok(sec) => scheduler_client(host, port, sec).await,
        Err(e) => Err(e),
    };
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("syllabus: could not cancel the cluster's jobs {}: {e}", ids.join(", "));
            return 0;
        }
    };
    let mut cancelled = 0;
    for job_id in ids {
        match client.cancel_job(CancelJobParams { job_id: job_id.clone() }).await {
            Ok(_) => cancelled += 1,
            Err(e) => eprintln!("syllabus: could not cancel the cluster's job {job_id}: {}", e.message()),
        }
    }
    cancelled
}

/// Cancel every job this process sent to a scheduler that has not ended (cancelling an ended
/// job does nothing), and forget them.
pub async fn cancel_live() -> usize {
    let jobs: Vec<_> = std::mem::take(&mut *live().lock().unwrap_or_else(|p| p.into_inner()));
    type Plans = Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>;
    let mut by_scheduler: Vec<((String, u16), Plans)> = Vec::new();
    for (h, p, plan) in jobs {
        match by_scheduler.iter_mut().find(|(k, _)| k.0 == h && k.1 == p) {
            Some((_, v)) => v.push(plan),
            None => by_scheduler.push(((h, p), vec![plan])),
        }
    }
    let mut cancelled = 0;
    for ((h, p), plans) in &by_scheduler {
        cancelled += cancel_jobs(h, *p, plans).await;
    }
    cancelled
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// If an interrupt is being handled ([`watch_signals`]), wait for its watcher to end the
/// process; otherwise return at once.
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// On SIGINT or SIGTERM, cancel the jobs this process sent to a scheduler, then end as the
/// signal would (exit 130 or 143). Watched by a thread of its own for the rest of the process,
/// so a client interrupted while it writes (after its jobs ended) still ends.
pub fn watch_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let started = std::thread::Builder::new().name("syllabus-signals".into()).spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    return;
                };
                let code = tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                };
                INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                match tokio::time::timeout(std::time::Duration::from_secs(10), cancel_live()).await {
                    Ok(0) => {
                        eprintln!("syllabus: interrupted (no job of this command was left to cancel on the cluster)")
                    }
                    Ok(n) => {
                        eprintln!("syllabus: interrupted; {n} job(s) of this command on the cluster were cancelled")
                    }
                    Err(_) => eprintln!(
                        "syllabus: interrupted; the cluster's scheduler did not answer the cancellation within 10 s"
                    ),
                }
                std::process::exit(code);
            });
        });
        if let Err(e) = started {
            eprintln!(
                "syllabus: cannot watch for interrupts ({e}): an interrupted command leaves its cluster job running"
            );
        }
    });
}
