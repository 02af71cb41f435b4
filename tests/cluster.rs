//! Cluster mode: a Ballista scheduler and two executors, each a `syllabus cluster` process on
//! 127.0.0.1, run DSIR and ZIP-FIT scoring and selection and SQL; every output is compared
//! byte for byte with the local command's. An executor is killed in the middle of a job.
//! Every cluster here requires a token (each its own), which the clients it runs carry.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{fixture, ok, p, root, stderr, syllabus, tempdir};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_listening(port: u16, what: &str) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "{what} did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scheduler and its executors, killed when dropped.
pub struct Cluster {
    scheduler: Child,
    executors: Vec<Option<Child>>,
    pub port: u16,
    /// The executors' Arrow Flight ports.
    pub executor_ports: Vec<u16>,
    /// The cluster's token, which every client of [`Cluster::command`] carries.
    pub token: String,
    /// Whether the cluster serves TLS (with the certificates of fixtures/tls).
    pub tls: bool,
    _dir: tempfile::TempDir,
}

/// A file of fixtures/tls.
pub fn tls_file(name: &str) -> String {
    p(&root().join("fixtures/tls").join(name))
}

/// A fresh random token.
pub fn new_token() -> String {
    use std::hash::BuildHasher;
    let h = |i: u64| std::collections::hash_map::RandomState::new().hash_one(i);
    format!("{:016x}{:016x}{:016x}", h(1), h(2), h(3))
}

/// `syllabus cluster ROLE` with the test's settings: the token of `token` (the scheduler
/// reads it from a file, executors from the environment), and TLS when `tls`.
pub fn server(role: &str, token: Option<&str>, tls: bool, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syllabus"));
    cmd.args(["cluster", role]).current_dir(root()).env_remove("SYLLABUS_CLUSTER_TOKEN").stdout(Stdio::null());
    match token {
        Some(t) if role == "scheduler" => {
            let f = dir.join("token");
            std::fs::write(&f, format!("{t}\n")).unwrap();
            cmd.args(["--token-file", &p(&f)]);
        }
        Some(t) => {
            cmd.env("SYLLABUS_CLUSTER_TOKEN", t);
        }
        None => {}
    }
    if tls {
        let (cert, key, ca) = (tls_file("server.pem"), tls_file("server-key.pem"), tls_file("ca.pem"));
        cmd.args(["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca]);
    }
    cmd
}

impl Cluster {
    /// A scheduler and one executor per entry of `executor_env` (extra environment each).
    pub fn start(executor_env: &[&[(&str, &str)]]) -> Cluster {
        Cluster::start_logged(executor_env, "warn")
    }

    /// [`Cluster::start`] with the scheduler logging at `level` (`SYLLABUS_LOG`).
    pub fn start_logged(executor_env: &[&[(&str, &str)]], level: &str) -> Cluster {
        Cluster::start_with(executor_env, level, false)
    }

    /// [`Cluster::start_logged`], serving TLS when `tls`.
    pub fn start_with(executor_env: &[&[(&str, &str)]], level: &str, tls: bool) -> Cluster {
        let dir = tempdir();
        let port = free_port();
        let token = new_token();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let scheduler = server("scheduler", Some(&token), tls, dir.path())
            .args(["--bind", &format!("127.0.0.1:{port}"), "--executor-timeout", "6"])
            .env("SYLLABUS_LOG", level)
            .stderr(log("scheduler.log"))
            .spawn()
            .expect("start the scheduler");
        wait_listening(port, "the scheduler");
        let mut executors = Vec::new();
        let mut executor_ports = Vec::new();
        for (i, env) in executor_env.iter().enumerate() {
            let eport = free_port();
            let work = dir.path().join(format!("executor{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let mut cmd = server("executor", Some(&token), tls, dir.path());
            cmd.args(["--scheduler", &format!("127.0.0.1:{port}"), "--bind", &format!("127.0.0.1:{eport}")])
                .args(["--concurrency", "2", "--heartbeat", "1", "--work-dir", &p(&work)])
                .env("SYLLABUS_LOG", level)
                .stderr(log(&format!("executor{i}.log")));
            for (k, v) in env.iter() {
                cmd.env(k, v);
            }
            executors.push(Some(cmd.spawn().expect("start an executor")));
            wait_listening(eport, "an executor");
            executor_ports.push(eport);
        }
        // Executors register with the scheduler as they start; give them a heartbeat.
        std::thread::sleep(Duration::from_millis(1500));
        Cluster { scheduler, executors, port, executor_ports, token, tls, _dir: dir }
    }

    /// A client of this cluster: `syllabus`, with its token (and its CA, with TLS).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_syllabus"));
        cmd.current_dir(root())
            .env("SYLLABUS_CLUSTER_TOKEN", &self.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.tls {
            cmd.env("SYLLABUS_CLUSTER_CA", tls_file("ca.pem"));
        }
        cmd
    }

    /// `syllabus ARGS` as a client of this cluster ([`Cluster::command`]).
    pub fn syllabus(&self, args: &[&str]) -> Output {
        self.command().args(args).stdin(Stdio::null()).output().expect("run syllabus")
    }

    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// SIGKILL executor `i`.
    pub fn kill_executor(&mut self, i: usize) {
        if let Some(mut c) = self.executors[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the scheduler logged so far.
    pub fn scheduler_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("scheduler.log")).unwrap_or_default()
    }

    /// Everything every process of the cluster logged so far.
    pub fn all_logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self._dir.path()).unwrap() {
            let e = e.unwrap().path();
            if e.extension().is_some_and(|x| x == "log") {
                s.push_str(&std::fs::read_to_string(&e).unwrap_or_default());
            }
        }
        s
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self._dir.path()).unwrap() {
            let e = e.unwrap().path();
            if e.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&e).unwrap_or_default();
                let tail: String =
                    text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                s.push_str(&format!("--- {}\n{tail}\n", e.display()));
            }
        }
        s
    }

    /// `syllabus ARGS --cluster URL`, which must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--cluster", &url]);
        let o = self.syllabus(&all);
        assert!(o.status.success(), "syllabus {all:?} failed:\n{}\n{}", stderr(&o), self.logs());
        o
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.executors.len() {
            self.kill_executor(i);
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
    }
}

fn same_bytes(a: &Path, b: &Path, what: &str) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{what}: the cluster's output differs from the local run's ({} vs {} bytes)", y.len(), x.len());
}

/// The local command, then the same command with --cluster; both outputs must be identical.
fn both(c: &Cluster, dir: &Path, name: &str, args: &[&str], lake: &[&str]) -> (PathBuf, PathBuf) {
    let (local, remote) = (dir.join(format!("{name}.local.parquet")), dir.join(format!("{name}.cluster.parquet")));
    let with_out = |out: &Path| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--out".to_string(), p(out)]);
        v.extend(lake.iter().map(|s| s.to_string()));
        v
    };
    let l = with_out(&local);
    ok(&syllabus(&l.iter().map(String::as_str).collect::<Vec<_>>()));
    let r = with_out(&remote);
    c.run(&r.iter().map(String::as_str).collect::<Vec<_>>());
    same_bytes(&local, &remote, name);
    (local, remote)
}

#[test]
fn scores_selections_and_sql_on_a_cluster_are_the_local_ones() {
    scores_selections_and_sql(&Cluster::start(&[&[], &[]]));
}

/// The same on a cluster that serves TLS: every call between the client, the scheduler and
/// the executors (results and shuffle partitions included) is encrypted.
#[test]
fn scores_selections_and_sql_over_tls_are_the_local_ones() {
    scores_selections_and_sql(&Cluster::start_with(&[&[], &[]], "warn", true));
}

fn scores_selections_and_sql(c: &Cluster) {
    let dir = tempdir();
    let d = dir.path();
    let lake = fixture("lake");
    let target = fixture("target");
    // DSIR: the fit's raw counts are an aggregate over the executors; with the reference's
    // budget (split over the files) and with every n-gram.
    both(c, d, "score-dsir", &["score", "dsir", "-q", "--target", &target], &[&lake]);
    both(c, d, "score-dsir-all", &["score", "dsir", "-q", "--fit-all", "--target", &target], &[&lake]);
    // Gumbel top-k: numpy's draws by global position, whichever executor scores the file.
    both(c, d, "select-dsir", &["select", "dsir", "-q", "--k", "300", "--seed", "7", "--target", &target], &[&lake]);
    both(c, d, "select-dsir-topk", &["select", "dsir", "-q", "--k", "50", "--top-k", "--target", &target], &[&lake]);
    // ZIP-FIT: the target texts travel with the plan.
    let small = fixture("target/docs.jsonl");
    both(c, d, "score-zipfit", &["score", "zipfit", "-q", "--target", &small], &[&lake]);
    both(c, d, "select-zipfit", &["select", "zipfit", "-q", "--k", "100", "--target", &small], &[&lake]);
    // A saved model and small batches (more partitions' worth of batches to cut the same way).
    let model = d.join("model.json");
    ok(&syllabus(&[
        "score",
        "dsir",
        "-q",
        "--target",
        &target,
        "--save-model",
        &p(&model),
        "--out",
        &p(&d.join("x.parquet")),
        &lake,
    ]));
    both(c, d, "score-dsir-model", &["score", "dsir", "-q", "--batch-rows", "100", "--model", &p(&model)], &[&lake]);
    // Dedup: signatures on the executors, the band and exact joins as group-bys shuffled by
    // key, components on the client; every format, and planted copies across files.
    both(c, d, "score-dedup", &["score", "dedup", "-q"], &[&lake]);
    both(c, d, "score-dedup-planted", &["score", "dedup", "-q", "--batch-rows", "100"], &[&fixture("dedup/lake")]);
    // k-means: the fit here, the assignment on the executors (the model travels with the
    // plan), the ranks here; with a saved model, the terms table too.
    both(c, d, "score-cluster", &["score", "cluster", "-q", "--k", "6", "--batch-rows", "100"], &[&lake]);
    let km = d.join("kmeans.bin");
    let terms = |name: &str| d.join(format!("terms.{name}.parquet"));
    ok(&syllabus(&[
        "score",
        "cluster",
        "-q",
        "--k",
        "5",
        "--save-model",
        &p(&km),
        "--terms-out",
        &p(&terms("local")),
        "--out",
        &p(&d.join("y.parquet")),
        &lake,
    ]));
    let (_, remote) = both(c, d, "score-cluster-model", &["score", "cluster", "-q", "--model", &p(&km)], &[&lake]);
    same_bytes(&d.join("y.parquet"), &remote, "score cluster --model");
    c.run(&[
        "score",
        "cluster",
        "-q",
        "--model",
        &p(&km),
        "--terms-out",
        &p(&terms("cluster")),
        "--out",
        &p(&d.join("z.parquet")),
        &lake,
    ]);
    same_bytes(&terms("local"), &terms("cluster"), "score cluster --terms-out");

    // SQL: an aggregate over the scores, through the cluster and locally.
    let scores = d.join("score-dsir.local.parquet");
    let q = "SELECT count(*) AS n, sum(n_words) AS words, round(avg(dsir_logw), 6) AS mean FROM score_dsir";
    let stdout = |o: Output| {
        ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let local = stdout(syllabus(&["sql", "-q", "--format", "csv", "-c", q, &p(&scores)]));
    let url = c.url();
    let remote = stdout(c.syllabus(&["sql", "-q", "--format", "csv", "--cluster", &url, "-c", q, &p(&scores)]));
    assert_eq!(local, remote);
    assert!(local.lines().nth(1).is_some_and(|l| l.starts_with("1225,")), "{local}");
}

#[test]
fn cluster_errors_name_the_file_and_line() {
    cluster_errors(&Cluster::start(&[&[]]));
}

#[test]
fn cluster_errors_name_the_file_and_line_over_tls() {
    cluster_errors(&Cluster::start_with(&[&[]], "warn", true));
}

fn cluster_errors(c: &Cluster) {
    let dir = tempdir();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    std::fs::copy(root().join("fixtures/lake/prose.jsonl"), lake.join("a.jsonl")).unwrap();
    std::fs::write(lake.join("b.jsonl"), "{\"id\": \"x\", \"text\": \"fine\"}\n{not json\n").unwrap();
    let url = c.url();
    let out = dir.path().join("s.parquet");
    let o = c.syllabus(&[
        "score",
        "dsir",
        "-q",
        "--target",
        &fixture("target"),
        "--out",
        &p(&out),
        &p(&lake),
        "--cluster",
        &url,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("b.jsonl") && e.contains("line 2"), "{e}");
    assert!(!out.exists(), "nothing is written as if complete");
    // With --on-bad-record skip the executors count and record the bad records; the client
    // writes them in lake order: the same rejects file, counts and exit status (3) as locally.
    for cmd in [&["score", "dsir"][..], &["select", "dsir", "--k", "20"][..]] {
        let mut outs = Vec::new();
        for cluster in [false, true] {
            let d = dir.path().join(format!("{}-{cluster}", cmd[0]));
            let (o_path, r_path) = (d.join("out.parquet"), d.join("rejects.jsonl"));
            let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            args.extend(
                [
                    "-q",
                    "--on-bad-record",
                    "skip",
                    "--min-words",
                    "1",
                    "--rejects",
                    &p(&r_path),
                    "--target",
                    &fixture("target"),
                    "--out",
                    &p(&o_path),
                    &p(&lake),
                ]
                .map(String::from),
            );
            if cluster {
                args.extend(["--cluster".to_string(), url.clone()]);
            }
            let o = c.syllabus(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
            outs.push((std::fs::read(&o_path).unwrap(), std::fs::read_to_string(&r_path).unwrap()));
        }
        assert!(outs[0].0 == outs[1].0, "{cmd:?}: outputs differ");
        assert_eq!(outs[0].1, outs[1].1, "{cmd:?}: rejects differ");
        assert!(outs[0].1.contains("\"line\":2"), "{}", outs[0].1);
    }
}

/// Every file under `dir` but the run's summary and work directory, by relative path.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap().path();
            let rel = e.strip_prefix(dir).unwrap().display().to_string();
            if rel == "work" || rel == "summary.json" {
                continue;
            }
            if e.is_dir() {
                stack.push(e);
            } else {
                out.insert(rel, std::fs::read(&e).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_quickstart_pipeline_selects_on_a_cluster() {
    let c = Cluster::start(&[&[], &[]]);
    quickstart_on(&c);
    clusters_pipeline_on(&c);
}

/// The shipped clusters pipeline (less its [dedup], which runs on one machine): the fit here,
/// the rows assigned on the executors; every output as the local run's.
fn clusters_pipeline_on(c: &Cluster) {
    let dir = tempdir();
    let toml = std::fs::read_to_string("pipelines/clusters.toml").unwrap();
    assert!(toml.contains("\n[dedup]\n"));
    let toml_path = dir.path().join("clusters.toml");
    std::fs::write(&toml_path, toml.replace("\n[dedup]\n", "\n")).unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("cluster"));
    ok(&syllabus(&["run", "-q", &p(&toml_path), "--out", &p(&local)]));
    c.run(&["run", "-q", &p(&toml_path), "--out", &p(&remote)]);
    let (a, b) = (tree(&local), tree(&remote));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between the local and the cluster run");
    }
    assert!(a.contains_key("clusters.parquet") && a.contains_key("selected.parquet"), "{:?}", a.keys());
}

#[test]
fn the_quickstart_pipeline_selects_on_a_cluster_over_tls() {
    quickstart_on(&Cluster::start_with(&[&[], &[]], "warn", true));
}

fn quickstart_on(c: &Cluster) {
    let dir = tempdir();
    let (local, remote) = (dir.path().join("local"), dir.path().join("cluster"));
    ok(&syllabus(&["run", "-q", "pipelines/quickstart.toml", "--out", &p(&local)]));
    c.run(&["run", "-q", "pipelines/quickstart.toml", "--out", &p(&remote)]);
    let (a, b) = (tree(&local), tree(&remote));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between the local and the cluster run");
    }
    assert!(
        a.contains_key("selected.parquet") && a.contains_key("manifest.json") && a.contains_key("rejects.jsonl"),
        "{:?}",
        a.keys()
    );
}

#[test]
fn an_executor_killed_mid_job_loses_nothing() {
    // Executor 1 stops after the first batch of each file it reads, until the test kills it.
    let stall = tempdir();
    let stall_env = format!("batch-64:{}", p(stall.path()));
    let mut c = Cluster::start(&[&[], &[("SYLLABUS_STALL", stall_env.as_str())]]);
    let dir = tempdir();
    let d = dir.path();
    let lake = fixture("lake");
    let target = fixture("target");
    let args = ["select", "dsir", "-q", "--batch-rows", "64", "--k", "300", "--seed", "3", "--target", &target];
    let local = d.join("local.parquet");
    let mut l = args.to_vec();
    let lp = p(&local);
    l.extend_from_slice(&["--out", &lp, &lake]);
    ok(&syllabus(&l));

    let remote = d.join("cluster.parquet");
    let rp = p(&remote);
    let url = c.url();
    let mut r = args.to_vec();
    r.extend_from_slice(&["--out", &rp, &lake, "--cluster", &url]);
    let child = c.command().args(&r).stdout(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    while !stall.path().join("stalled").exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "executor 1 never took a task");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill_executor(1);
    let o = child.wait_with_output().unwrap();
    eprintln!("after the kill: {:?}, {}", o.status.code(), stderr(&o).trim());
    if o.status.success() {
        // Ballista ran the lost tasks again on the executor left.
        same_bytes(&local, &remote, "select after an executor was lost");
    } else {
        // Or the job failed, clearly, and wrote nothing; a rerun completes.
        assert!(!remote.exists(), "a failed job wrote its output");
        assert!(stderr(&o).contains("cluster"), "{}", stderr(&o));
        c.run(&r[..r.len() - 2]);
        same_bytes(&local, &remote, "select rerun after an executor was lost");
    }
}

/// `syllabus ARGS`, killed (and the test failed) if it runs past `limit`: what it checks is
/// that the command does not hang.
pub fn within(limit: Duration, mut cmd: Command, args: &[&str]) -> Output {
    let mut child = cmd.args(args).spawn().unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("syllabus {args:?} still ran after {limit:?}: {}", stderr(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Job ids the scheduler was asked to cancel, from its log.
fn cancelled_jobs(log: &str) -> usize {
    log.lines().filter(|l| l.contains("Received cancellation request for job")).count()
}

#[test]
fn a_cluster_without_executors_fails_in_bounded_time_and_cancels_its_job() {
    let c = Cluster::start_logged(&[], "info");
    let dir = tempdir();
    let out = dir.path().join("s.parquet");
    let (lake, target, url) = (fixture("lake"), fixture("target"), c.url());
    let t = Instant::now();
    let o = within(
        Duration::from_secs(60),
        c.command(),
        &[
            "--cluster-wait",
            "3",
            "select",
            "dsir",
            "--target",
            &target,
            "--k",
            "10",
            "--out",
            &p(&out),
            &lake,
            "--cluster",
            &url,
        ],
    );
    let err = crate::util::fails(&o, 1);
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
    assert!(err.contains("waiting for an executor"), "no word while waiting: {err}");
    assert!(
        err.contains("no executor of the cluster") && err.contains("within 3 s") && err.contains("--cluster-wait"),
        "{err}"
    );
    assert!(!out.exists());
    // The job it waited with was cancelled on the scheduler, so no executor that registers later
    // runs an orphan.
    let t = Instant::now();
    while cancelled_jobs(&c.scheduler_log()) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "no cancellation reached the scheduler:\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    // SQL waits the same way.
    let o = within(
        Duration::from_secs(60),
        c.command(),
        &["--cluster-wait", "1", "sql", "-q", "--cluster", &url, "-c", "SELECT 1"],
    );
    assert!(crate::util::fails(&o, 1).contains("no executor of the cluster"));
}

#[test]
fn an_interrupted_client_cancels_its_job_on_the_scheduler() {
    // The executor stops after the first batch of each file until the test ends.
    let stall = tempdir();
    let stall_env = format!("batch-64:{}", p(stall.path()));
    let c = Cluster::start_logged(&[&[("SYLLABUS_STALL", stall_env.as_str())]], "info");
    let dir = tempdir();
    let out = dir.path().join("s.parquet");
    let (lake, target, url) = (fixture("lake"), fixture("target"), c.url());
    let args = [
        "select",
        "dsir",
        "-q",
        "--batch-rows",
        "64",
        "--k",
        "30",
        "--target",
        &target,
        "--out",
        &p(&out),
        &lake,
        "--cluster",
        &url,
    ];
    let child = c.command().args(args).stdout(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    while !stall.path().join("stalled").exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "the executor never took a task:\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = cancelled_jobs(&c.scheduler_log());
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("were cancelled") && !err.contains("could not cancel"), "{err}");
    let t = Instant::now();
    while cancelled_jobs(&c.scheduler_log()) <= before {
        assert!(t.elapsed() < Duration::from_secs(10), "the scheduler was not asked to cancel:\n{err}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!out.exists());
}

#[test]
fn what_the_cluster_cannot_run_is_refused_up_front() {
    let c = Cluster::start(&[&[]]);
    let url = c.url();
    // SQL over jsonl: refused before any statement, with what works instead.
    let lake = fixture("lake");
    let o = c.syllabus(&["sql", "-q", "--cluster", &url, "-c", "SELECT count(*) FROM lake", &lake]);
    let err = crate::util::fails(&o, 1);
    assert!(err.contains("runs over Parquet files and directories") && err.contains("without --cluster"), "{err}");
    assert!(!err.contains("Internal error") && !err.contains("bug") && !err.contains(".cargo"), "{err}");
    // A pipeline whose selection does not run on a cluster: refused, and nothing written.
    let dir = tempdir();
    let toml = dir.path().join("random.toml");
    let out = dir.path().join("out");
    std::fs::write(
        &toml,
        format!("name = \"r\"\nout_dir = \"{}\"\n[source]\npaths = [\"{lake}\"]\non_bad_record = \"skip\"\n[select]\nmethod = \"random\"\nk = 10\n", p(&out)),
    )
    .unwrap();
    let o = c.syllabus(&["run", &p(&toml), "--cluster", &url]);
    let err = crate::util::fails(&o, 1);
    assert!(err.contains("a random selection") && err.contains("drop --cluster"), "{err}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    // datatrove's dedup decisions follow each band's sorted order: one machine.
    let dups = dir.path().join("dups.parquet");
    let o = c.syllabus(&["score", "dedup", "--compat", "datatrove", "--cluster", &url, "--out", &p(&dups), &lake]);
    assert!(crate::util::fails(&o, 1).contains("--compat datatrove runs on one machine"));
    // A pipeline's [dedup] stage runs on one machine too.
    let toml = dir.path().join("dedup.toml");
    std::fs::write(
        &toml,
        format!("name = \"d\"\nout_dir = \"{}\"\n[source]\npaths = [\"{lake}\"]\n[dedup]\n[select]\nmethod = \"dsir\"\ntarget = [\"{}\"]\nk = 10\n", p(&out), fixture("target")),
    )
    .unwrap();
    let err = crate::util::fails(&c.syllabus(&["run", &p(&toml), "--cluster", &url]), 1);
    assert!(err.contains("[dedup] and [decontaminate] run on one machine"), "{err}");
    // A scheduler named without its port.
    let o = c.syllabus(&["sql", "-q", "--cluster", "df://127.0.0.1", "-c", "SELECT 1"]);
    assert!(crate::util::fails(&o, 1).contains("give the scheduler's port too"));
}
