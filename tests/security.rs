//! Who may use a cluster (docs/cluster.md, "Security"), with real processes on 127.0.0.1:
//! servers listen on loopback by default and refuse an open bind without a token; a client or
//! an executor without the token, or with a wrong one, is refused and runs nothing; the token
//! never shows in any output or log; with TLS on, the cluster still writes the local bytes.

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::cluster::{free_port, new_token, server, wait_listening, within, Cluster};
use crate::util::{fails, fixture, p, stderr, tempdir};

/// The local address of the TCP socket listening on `port`, from /proc/net/tcp (IPv4) as
/// `AAAAAAAA` hex, if one is.
fn listening_address(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (addr, state) = (f.get(1)?, f.get(3)?);
        let (ip, p) = addr.split_once(':')?;
        (*state == "0A" && u16::from_str_radix(p, 16).ok()? == port).then(|| ip.to_string())
    })
}

/// The process's exit and what it printed, once it ends (killed, and the test failed, after
/// `limit`).
fn ends_within(mut cmd: std::process::Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    within(limit, cmd, &[])
}

#[test]
fn servers_listen_on_loopback_unless_told_and_refuse_an_open_bind_without_a_token() {
    let dir = tempdir();
    let d = dir.path();
    // No --bind: the scheduler and the executor listen on 127.0.0.1 only.
    let port = free_port();
    let mut scheduler =
        server("scheduler", None, false, d).args(["--port", &port.to_string()]).stderr(Stdio::null()).spawn().unwrap();
    wait_listening(port, "the scheduler");
    let eport = free_port();
    let work = d.join("work");
    let mut executor = server("executor", None, false, d)
        .args(["--scheduler", &format!("127.0.0.1:{port}"), "--port", &eport.to_string(), "--work-dir", &p(&work)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(eport, "the executor");
    assert_eq!(listening_address(port).as_deref(), Some("0100007F"), "the scheduler's socket");
    assert_eq!(listening_address(eport).as_deref(), Some("0100007F"), "the executor's socket");
    let _ = (executor.kill(), executor.wait(), scheduler.kill(), scheduler.wait());

    // Beyond loopback without a token: both refuse to start, say why and what to do, and
    // listen on nothing.
    for role in ["scheduler", "executor"] {
        let open = free_port();
        let mut cmd = server(role, None, false, d);
        cmd.args(["--bind", &format!("0.0.0.0:{open}")]);
        if role == "executor" {
            cmd.args(["--scheduler", "127.0.0.1:1", "--advertise", "127.0.0.1"]);
        }
        let o = ends_within(cmd, Duration::from_secs(20));
        let err = fails(&o, 1);
        assert!(err.contains("refusing to listen on 0.0.0.0") && err.contains("without a cluster token"), "{err}");
        assert!(err.contains("SYLLABUS_CLUSTER_TOKEN") && err.contains("--token-file") && err.contains("--insecure"));
        assert!(listening_address(open).is_none(), "the refused {role} listens");
    }
    // --insecure starts, with a warning on every start.
    let open = free_port();
    let mut child = server("scheduler", None, false, d)
        .args(["--bind", &format!("0.0.0.0:{open}"), "--insecure"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(open, "the --insecure scheduler");
    assert_eq!(listening_address(open).as_deref(), Some("00000000"));
    let _ = child.kill();
    let err = stderr(&child.wait_with_output().unwrap());
    assert!(err.contains("WARNING: --insecure") && err.contains("with no token"), "{err}");
}

#[test]
fn a_client_without_the_token_or_with_a_wrong_one_is_refused_and_runs_nothing() {
    // Every process logs at the debug level: the token must be in none of it.
    let c = Cluster::start_logged(&[&[]], "debug");
    let dir = tempdir();
    let out = dir.path().join("s.parquet");
    let (lake, target, url) = (fixture("lake"), fixture("target"), c.url());
    let args = ["select", "dsir", "-q", "--k", "10", "--target", &target, "--out", &p(&out), &lake, "--cluster", &url];
    let wrong = new_token();
    let mut outputs = String::new();
    for token in [None, Some(wrong.as_str())] {
        let mut cmd = c.command();
        match token {
            None => cmd.env_remove("SYLLABUS_CLUSTER_TOKEN"),
            Some(t) => cmd.env("SYLLABUS_CLUSTER_TOKEN", t),
        };
        let o = within(Duration::from_secs(60), cmd, &args);
        let err = fails(&o, 1);
        match token {
            None => assert!(err.contains("requires a token and this client has none"), "{err}"),
            Some(_) => assert!(err.contains("refused this client's token"), "{err}"),
        }
        assert!(err.contains("SYLLABUS_CLUSTER_TOKEN"), "{err}");
        assert!(!out.exists());
        outputs.push_str(&err);
        outputs.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    // The same through --cluster-token-file, with the wrong token.
    let f = dir.path().join("wrong-token");
    std::fs::write(&f, &wrong).unwrap();
    let mut cmd = c.command();
    cmd.env_remove("SYLLABUS_CLUSTER_TOKEN");
    let o = within(Duration::from_secs(60), cmd, &[&["--cluster-token-file", &p(&f)][..], &args[..]].concat());
    outputs.push_str(&fails(&o, 1));
    // The scheduler refused each call, logging who, and received no job.
    let log = c.scheduler_log();
    assert!(log.contains("refused a call from 127.0.0.1") && log.contains("carries no cluster token"), "{log}");
    assert!(log.contains("its cluster token is wrong"), "{log}");
    assert!(!log.contains("execution query job received"), "a refused client's job reached the scheduler:\n{log}");
    // An executor's Flight service (results and shuffle files) refuses a call with no token.
    let refused = flight_without_token(c.executor_ports[0]);
    assert!(refused.contains("Unauthenticated") && refused.contains("carries no cluster token"), "{refused}");
    // With the token, it runs.
    c.run(&args[..args.len() - 2]);
    assert!(out.exists());
    // No output and no log line holds either token.
    outputs.push_str(&c.all_logs());
    assert!(!outputs.contains(&c.token) && !outputs.contains(&wrong), "a token was printed:\n{outputs}");
}

/// A Flight `list_flights` and `do_get` to the executor at `port` with no token: the error.
fn flight_without_token(port: u16) -> String {
    use arrow_flight::flight_service_client::FlightServiceClient;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightServiceClient::new(channel);
        let ticket = arrow_flight::Ticket { ticket: b"/etc/passwd".to_vec().into() };
        let e = client.do_get(ticket).await.expect_err("do_get without a token was served");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let l = client.list_flights(arrow_flight::Criteria::default()).await.expect_err("list_flights was served");
        assert_eq!(l.code(), tonic::Code::Unauthenticated);
        format!("{e:?}")
    })
}

#[test]
fn an_executor_with_a_wrong_token_cannot_register() {
    let c = Cluster::start_logged(&[], "info");
    let dir = tempdir();
    let eport = free_port();
    let wrong = new_token();
    let mut cmd = server("executor", Some(&wrong), false, dir.path());
    cmd.args(["--scheduler", &format!("127.0.0.1:{}", c.port), "--port", &eport.to_string()])
        .args(["--work-dir", &p(dir.path())]);
    let o = ends_within(cmd, Duration::from_secs(30));
    let err = fails(&o, 1);
    assert!(err.contains("refused this executor") && err.contains("not the scheduler's"), "{err}");
    assert!(!err.contains(&wrong) && !c.all_logs().contains(&wrong));
    assert!(c.scheduler_log().contains("its cluster token is wrong"));
    assert!(!c.scheduler_log().contains("register executor"), "{}", c.scheduler_log());
    // The cluster has no executor: a client with the right token waits and gives up.
    let o = within(
        Duration::from_secs(60),
        c.command(),
        &["--cluster-wait", "2", "sql", "-q", "--cluster", &c.url(), "-c", "SELECT 1"],
    );
    assert!(fails(&o, 1).contains("no executor of the cluster"));
}

#[test]
fn a_tls_cluster_refuses_clients_and_executors_that_do_not_trust_it() {
    // What it writes: tests/cluster.rs (scores_selections_and_sql_over_tls_are_the_local_ones).
    let c = Cluster::start_with(&[&[]], "warn", true);
    let dir = tempdir();
    let d = dir.path();
    // A client that does not speak TLS to it is told what to give.
    let mut cmd = c.command();
    cmd.env_remove("SYLLABUS_CLUSTER_CA");
    let o = within(
        Duration::from_secs(60),
        cmd,
        &["--cluster-wait", "5", "sql", "-q", "--cluster", &c.url(), "-c", "SELECT 1"],
    );
    let err = fails(&o, 1);
    assert!(err.contains("--cluster-ca"), "{err}");
    assert!(!err.contains(&c.token) && !c.all_logs().contains(&c.token));
    // The CA must be the cluster's: a client that trusts another CA is refused by TLS.
    let other = d.join("other-ca.pem");
    std::fs::write(&other, OTHER_CA).unwrap();
    let mut cmd = c.command();
    cmd.env("SYLLABUS_CLUSTER_CA", &other);
    let o = within(
        Duration::from_secs(60),
        cmd,
        &["--cluster-wait", "5", "sql", "-q", "--cluster", &c.url(), "-c", "SELECT 1"],
    );
    let err = fails(&o, 1);
    assert!(err.contains("certificate") || err.contains("TLS"), "{err}");
    // An executor that does not speak TLS to it stops at once and says what to give.
    let mut cmd = server("executor", Some(&c.token), false, d);
    cmd.args(["--scheduler", &format!("127.0.0.1:{}", c.port), "--port", &free_port().to_string()])
        .args(["--work-dir", &p(d)]);
    let o = ends_within(cmd, Duration::from_secs(30));
    let err = fails(&o, 1);
    assert!(err.contains("cannot talk to the scheduler") && err.contains("--tls-ca"), "{err}");
}

/// A CA certificate that signed none of the cluster's (made as fixtures/tls/make.sh makes one).
const OTHER_CA: &str = include_str!("../fixtures/tls/other-ca.pem");
