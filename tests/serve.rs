//! `syllabus serve`: staging checks, stale segments, the pipeline's [feedback] (the Python
//! client's tests in python/tests cover reading, resuming and steering).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::*;

fn curriculum(out: &Path, extra: &[&str]) {
    let tok = fixture("tokenizer.json");
    let prose = format!("prose={}", fixture("lake/prose.jsonl"));
    let code = format!("code={}", fixture("lake/code.jsonl.zst"));
    let mut args = vec![
        "-q",
        "curriculum",
        "--tokenizer",
        &tok,
        "--seq-len",
        "64",
        "--shard-tokens",
        "4096",
        "--on-bad-record",
        "skip",
        "--domain",
        &prose,
        "--domain",
        &code,
    ];
    let o = p(out);
    args.extend(["--out", &o]);
    args.extend(extra);
    ok(&syllabus(&args));
}

/// A scratch directory with the two-domain curriculum (`c`) and a private shared-memory
/// directory (`shm`).
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempdir();
    let dir = t.path().join("c");
    curriculum(&dir, &[]);
    let shm = t.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    (t, dir, shm)
}

struct Served {
    child: Child,
    ready: serde_json::Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, shm: &Path, extra: &[&str]) -> Result<Served, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_syllabus"))
        .args(["-q", "serve", &p(dir)])
        .args(extra)
        .env("SYLLABUS_SHM_DIR", shm)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.is_empty() {
        let out = child.wait_with_output().unwrap();
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(Served { child, ready: serde_json::from_str(&line).expect("ready line") })
}

fn request(socket: &str, req: serde_json::Value) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

#[test]
fn a_truncated_or_altered_shard_is_refused_by_name() {
    let (_t, dir, shm) = setup();
    let shard = dir.join("shards/shard-00007.syl");
    let bytes = std::fs::read(&shard).unwrap();

    std::fs::write(&shard, &bytes[..bytes.len() - 10]).unwrap();
    let err = serve(&dir, &shm, &[]).err().expect("refused");
    assert!(err.contains("shard-00007.syl: refused") && err.contains("truncated"), "{err}");

    let mut flipped = bytes.clone();
    flipped[200] ^= 1;
    std::fs::write(&shard, &flipped).unwrap();
    let err = serve(&dir, &shm, &[]).err().expect("refused");
    assert!(err.contains("shard-00007.syl: refused") && err.contains("checksum"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&shm).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| n.to_string_lossy().ends_with(".lock")), "a refused staging leaves nothing: {left:?}");

    std::fs::write(&shard, &bytes).unwrap();
    let s = serve(&dir, &shm, &[]).expect("serves once repaired");
    assert_eq!(s.ready["sequences"], 6867);
}

#[test]
fn a_stale_segment_of_a_killed_serve_is_replaced() {
    let (_t, dir, shm) = setup();
    let mut first = serve(&dir, &shm, &[]).unwrap();
    let pid = first.child.id();
    let segment = first.ready["segment"].as_str().unwrap().to_string();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(Path::new(&segment).exists(), "SIGKILL leaves the segment behind");
    let second = serve(&dir, &shm, &[]).unwrap();
    assert_eq!(second.ready["segment"].as_str().unwrap(), segment);
    assert_eq!(second.ready["replaced_stale_pid"], pid);
    drop(second);
    assert!(!Path::new(&segment).exists(), "a clean stop removes it");
}

#[test]
fn the_pipelines_feedback_settings_reach_serve_and_flags_override_them() {
    let t = tempdir();
    let shm = t.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let toml = format!(
        r#"
name = "steered"
out_dir = "{out}"
[source.domains]
prose = ["{prose}"]
code = ["{code}"]
[source]
on_bad_record = "skip"
[tokenize]
tokenizer = "{tok}"
seq_len = 64
[feedback]
rule = "skillit"
every = 2
lag = 1
eta = 0.0
"#,
        out = p(&t.path().join("out")),
        prose = fixture("lake/prose.jsonl"),
        code = fixture("lake/code.jsonl.zst"),
        tok = fixture("tokenizer.json"),
    );
    let cfg = t.path().join("steered.toml");
    std::fs::write(&cfg, toml).unwrap();
    ok(&syllabus(&["-q", "run", &p(&cfg)]));
    let out = t.path().join("out");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["feedback"]["rule"], "skillit");

    let s = serve(&out, &shm, &[]).unwrap();
    assert_eq!(s.ready["rule"], "skillit");
    let sock = s.ready["socket"].as_str().unwrap().to_string();
    let hello = request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 8}));
    // every 2, lag 1: steps 0..2 plannable before the report of step 1.
    assert_eq!((hello["planned"].as_u64(), hello["due_step"].as_u64()), (Some(24), Some(1)));
    let off_grid = request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [1.0]}}));
    assert!(off_grid["error"].as_str().unwrap().contains("due after every 2"), "{off_grid}");
    let r = request(&sock, serde_json::json!({"op": "report", "step": 1, "stats": {"prose": [3.0], "code": [1.0]}}));
    // Skill-It with eta = 0 gives the prior: the curriculum's share of sequences.
    let total = manifest["totals"]["sequences"].as_f64().unwrap();
    let prose_share = r["decision"]["mixture"]["prose"].as_f64().unwrap();
    let seqs: serde_json::Value = serde_json::from_slice(
        &syllabus(&[
            "sql",
            &p(&out),
            "--format",
            "json",
            "-c",
            "SELECT count(*) AS n FROM sequences WHERE domain = 'prose'",
        ])
        .stdout,
    )
    .unwrap();
    let n_prose = seqs["n"].as_f64().unwrap();
    assert!((prose_share - n_prose / total).abs() < 1e-12, "{prose_share} vs {}", n_prose / total);
    assert_eq!(r["decision"]["applies_from_step"], 3);
    drop(s);

    let s = serve(&out, &shm, &["--feedback", "none"]).unwrap();
    assert_eq!(s.ready["rule"], "none");
    let refused =
        request(s.ready["socket"].as_str().unwrap(), serde_json::json!({"op": "report", "step": 1, "stats": {}}));
    assert!(refused["error"].as_str().unwrap().contains("no feedback rule"), "{refused}");
}

#[test]
fn a_decision_log_of_other_settings_is_not_replayed() {
    let (_t, dir, shm) = setup();
    {
        let s = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
        let sock = s.ready["socket"].as_str().unwrap().to_string();
        request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 4}));
        let r =
            request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [0.5], "code": [0.3]}}));
        assert_eq!(r["decision"]["decision"], 1, "{r}");
    }
    let err = serve(&dir, &shm, &["--feedback", "dump", "--temperature", "0.5"]).err().expect("refused");
    assert!(err.contains("mixture_log.jsonl") && err.contains("other feedback settings"), "{err}");
    let again = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
    assert_eq!(again.ready["decisions_replayed"], 1);
}

#[test]
fn serve_errors_name_what_is_wrong() {
    let t = tempdir();
    let shm = t.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let err = serve(t.path(), &shm, &[]).err().unwrap();
    assert!(err.contains("manifest.json"), "{err}");
    let dir = t.path().join("c");
    curriculum(&dir, &[]);
    let err = serve(&dir, &shm, &["--name", "a/b"]).err().unwrap();
    assert!(err.contains("--name"), "{err}");
    let err = serve(&dir, &shm, &["--mode", "777x"]).err().unwrap();
    assert!(err.contains("--mode"), "{err}");
    let err = serve(&dir, Path::new("/nonexistent/shm"), &[]).err().unwrap();
    assert!(err.contains("/nonexistent/shm"), "{err}");
}

#[test]
fn a_replaced_decision_is_what_the_log_replays() {
    let (_t, dir, shm) = setup();
    let replaced = {
        let s = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
        let sock = s.ready["socket"].as_str().unwrap().to_string();
        request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 4}));
        let first =
            request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [0.5], "code": [0.3]}}));
        // The same step again with other values (a trainer resumed on other kernels).
        let again =
            request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [0.1], "code": [0.9]}}));
        assert_eq!(again["decisions"], 1);
        assert_ne!(first["decision"]["mixture"], again["decision"]["mixture"]);
        again["decision"].clone()
    };
    let log = read_jsonl(&dir.join("mixture_log.jsonl"));
    assert_eq!(log.len(), 3, "the header, the first decision and the one replacing it: the log is append-only");
    assert_eq!(log[2], replaced);
    assert_eq!(log[1]["decision"], log[2]["decision"]);
    let s = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
    assert_eq!(s.ready["decisions_replayed"], 1);
}

#[test]
fn a_decision_the_log_could_not_take_is_refused_and_written_with_the_next_report() {
    let (t, dir, shm) = setup();
    let log = t.path().join("log.jsonl");
    let s = serve(&dir, &shm, &["--feedback", "dump", "--log", &p(&log)]).unwrap();
    let sock = s.ready["socket"].as_str().unwrap().to_string();
    request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 4}));
    let r0 = serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [0.5], "code": [0.3]}});
    let r1 = serde_json::json!({"op": "report", "step": 1, "stats": {"prose": [0.2], "code": [0.6]}});
    let planned = request(&sock, r0)["planned"].clone();
    // The disk is full: the log's appends fail with ENOSPC (/dev/full in its place).
    let real = t.path().join("log.real");
    std::fs::rename(&log, &real).unwrap();
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let failed = request(&sock, r1.clone());
    assert!(failed["error"].as_str().unwrap().contains("log.jsonl"), "{failed}");
    let status = request(&sock, serde_json::json!({"op": "status"}));
    assert_eq!(status["planned"], planned, "nothing published past what the log holds");
    let hello = request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 4}));
    assert_eq!(hello["planned"], planned, "not by a loader attaching either");
    std::fs::remove_file(&log).unwrap();
    std::fs::rename(&real, &log).unwrap();
    // The trainer retries the report: the decision it led to is written now.
    let ok = request(&sock, r1);
    assert_eq!(ok["decisions"], 2, "{ok}");
    assert_eq!(read_jsonl(&log).len(), 3, "header and both decisions");
    drop(s);
    let again = serve(&dir, &shm, &["--feedback", "dump", "--log", &p(&log)]).unwrap();
    assert_eq!(again.ready["decisions_replayed"], 2);
}

#[test]
fn overflowing_report_values_are_refused_and_a_damaged_log_line_is_named() {
    let (_t, dir, shm) = setup();
    {
        let s = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
        let sock = s.ready["socket"].as_str().unwrap().to_string();
        request(&sock, serde_json::json!({"op": "hello", "global_batch_size": 4}));
        for bad in [serde_json::json!(1e308), serde_json::json!(-1e13)] {
            let r = request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [bad]}}));
            assert_eq!(r["ok"], false, "{r}");
            assert!(r["error"].as_str().unwrap().contains("within"), "{r}");
        }
        let r =
            request(&sock, serde_json::json!({"op": "report", "step": 0, "stats": {"prose": [1e12], "code": [0.5]}}));
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["decision"]["mixture"].as_object().unwrap().values().all(|p| p.as_f64().unwrap().is_finite()));
    }
    // The log holds only finite numbers, so serve restarts on it and SQL reads it.
    let s = serve(&dir, &shm, &["--feedback", "dump"]).unwrap();
    assert_eq!(s.ready["decisions_replayed"], 1);
    drop(s);
    ok(&syllabus(&["sql", &p(&dir), "-c", "select count(*) from mixture_log"]));
    // A damaged line: serve names it; SQL leaves it out with a warning and goes on.
    let log = dir.join("mixture_log.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"decision\": 2, \"mixture\": null}\n");
    std::fs::write(&log, text).unwrap();
    let err = serve(&dir, &shm, &["--feedback", "dump"]).err().expect("refused");
    assert!(err.contains("mixture_log.jsonl:3") && err.contains("not a decision"), "{err}");
    let o =
        syllabus(&["sql", &p(&dir), "--format", "csv", "-c", "select count(distinct decision) as n from mixture_log"]);
    let warn = ok(&o);
    assert!(warn.contains("mixture_log.jsonl:3"), "{warn}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().nth(1), Some("1"));
}
