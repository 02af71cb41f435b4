//! Lakes and outputs in object stores, against a real S3-compatible server (s3s-fs, installed
//! by `make test`) started on 127.0.0.1 for each test, and a real HTTP server (Python's
//! http.server): every command gives byte-identical outputs from `s3://` as from local files.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{fixture, ok, root, tempdir};

const ACCESS: &str = "SYLTESTACCESSKEY";
const SECRET: &str = "syl-test-secret-Zq83hV";

/// The s3s-fs binary: `SYLLABUS_S3S_FS`, else where `make test` installs it.
fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("SYLLABUS_S3S_FS") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let p = target.join("tools/bin/s3s-fs");
    assert!(p.exists(), "{} is missing: `make test` installs the S3 test server (or set SYLLABUS_S3S_FS)", p.display());
    p
}

/// An s3s-fs process serving `data/` (each top-level directory a bucket) on a free port.
pub struct S3 {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl S3 {
    pub fn start() -> S3 {
        let dir = tempdir();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("lake")).unwrap();
        std::fs::create_dir_all(data.join("out")).unwrap();
        let mut s = S3 { child: None, port: free_port(), data, _dir: dir };
        s.up();
        s
    }

    /// Start (or restart) the server on the same port and data.
    pub fn up(&mut self) {
        let child = Command::new(s3s_fs())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--access-key",
                ACCESS,
                "--secret-key",
                SECRET,
            ])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the server (SIGKILL) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// syllabus with this server's endpoint and credentials, its own HOME (no profile files) and
    /// staging directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let home = self.data.parent().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_syllabus"));
        cmd.args(args)
            .current_dir(root())
            .env("HOME", &home)
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("SYLLABUS_STAGE_DIR", home.join("stage"))
            .env("SYLLABUS_FAILPOINT", "");
        cmd
    }

    /// [`S3::command`] run to its end, with `env` added.
    pub fn syllabus(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run syllabus")
    }

    /// The fixture lake and target set copied into the bucket `lake` (s3s-fs serves a
    /// directory tree as buckets and keys).
    pub fn put_fixtures(&self) {
        for sub in ["lake", "target"] {
            let dir = self.data.join("lake").join(sub);
            std::fs::create_dir_all(&dir).unwrap();
            for f in std::fs::read_dir(root().join("fixtures").join(sub)).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
            }
        }
        std::fs::copy(root().join("fixtures/tokenizer.json"), self.data.join("lake/tokenizer.json")).unwrap();
    }

    /// An object's bytes, read from the server's own directory.
    pub fn object(&self, bucket_key: &str) -> Vec<u8> {
        std::fs::read(self.data.join(bucket_key)).unwrap_or_else(|e| panic!("{bucket_key}: {e}"))
    }

    pub fn has(&self, bucket_key: &str) -> bool {
        self.data.join(bucket_key).exists()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}

fn same_file(local: &Path, remote: &[u8], what: &str) {
    let l = std::fs::read(local).unwrap_or_else(|e| panic!("{}: {e}", local.display()));
    assert!(
        l == remote,
        "{what}: the store's output differs from the local run's ({} vs {} bytes)",
        remote.len(),
        l.len()
    );
}

/// Every file of a local output directory is in the store, byte for byte, and nothing else is.
/// The manifest records its inputs' paths: there, each (URL, local path) of `renames` is
/// replaced before the bytes are compared.
fn same_tree(local: &Path, s3: &S3, prefix: &str, renames: &[(&str, &str)]) {
    let mut files = Vec::new();
    walk(local, &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let rel = f.strip_prefix(local).unwrap().to_string_lossy().to_string();
        if rel.starts_with("work/") || rel.contains(".work/") {
            continue;
        }
        let remote = s3.object(&format!("{prefix}/{rel}"));
        if (rel == "manifest.json" || rel == "summary.json") && !renames.is_empty() {
            // These name the inputs as given (and the manifest hashes that configuration):
            // the same documents once each URL is renamed to its local path.
            let mut text = String::from_utf8(remote).unwrap();
            for (url, path) in renames {
                text = text.replace(url, path);
            }
            let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut l: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            for v in [&mut r, &mut l] {
                v.as_object_mut().unwrap().remove("config_hash");
            }
            assert_eq!(r, l, "{rel}: differs beyond the input paths");
            continue;
        }
        same_file(f, &remote, &rel);
    }
    let mut remote = Vec::new();
    walk(&s3.data.join(prefix), &mut remote);
    let remote: Vec<String> = remote
        .iter()
        .map(|f| f.strip_prefix(s3.data.join(prefix)).unwrap().to_string_lossy().to_string())
        .filter(|r| !r.starts_with(".s3s") && !r.contains("/.s3s"))
        .collect();
    for r in &remote {
        assert!(local.join(r).exists(), "{r}: in the store but not in the local output");
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn score_and_select_from_s3_match_local_runs() {
    let s3 = S3::start();
    s3.put_fixtures();
    let dir = tempdir();
    let local_scores = dir.path().join("scores.parquet");
    // DSIR scores: lake and target from the store, written to the store.
    ok(&crate::util::syllabus(&[
        "score",
        "dsir",
        "--target",
        &fixture("target/math.jsonl"),
        "--out",
        &local_scores.display().to_string(),
        &fixture("lake"),
    ]));
    let out = s3.syllabus(
        &[
            "score",
            "dsir",
            "--target",
            "s3://lake/target/math.jsonl",
            "--out",
            "s3://out/dsir/scores.parquet",
            "s3://lake/lake",
        ],
        &[],
    );
    let err = ok(&out);
    assert!(err.contains("uploaded s3://out/dsir/scores.parquet"), "{err}");
    same_file(&local_scores, &s3.object("out/dsir/scores.parquet"), "score dsir");
    // A glob over the bucket picks the same files in the same order.
    let out = s3.syllabus(
        &[
            "score",
            "dsir",
            "--target",
            "s3://lake/target/math.jsonl",
            "--out",
            "s3://out/dsir/glob.parquet",
            "s3://lake/lake/*.*",
        ],
        &[],
    );
    ok(&out);
    same_file(&local_scores, &s3.object("out/dsir/glob.parquet"), "score dsir (glob)");

    // ZIP-FIT selection.
    let local_sel = dir.path().join("sel.parquet");
    ok(&crate::util::syllabus(&[
        "select",
        "zipfit",
        "--target",
        &fixture("target/math.jsonl"),
        "--k",
        "50",
        "--out",
        &local_sel.display().to_string(),
        &fixture("lake"),
    ]));
    ok(&s3.syllabus(
        &[
            "select",
            "zipfit",
            "--target",
            "s3://lake/target/math.jsonl",
            "--k",
            "50",
            "--out",
            "s3://out/zipfit/sel.parquet",
            "s3://lake/lake/",
        ],
        &[],
    ));
    same_file(&local_sel, &s3.object("out/zipfit/sel.parquet"), "select zipfit");
    // No staging directory is left behind once uploaded.
    let stage = s3.data.parent().unwrap().join("home/stage");
    assert!(
        std::fs::read_dir(&stage).map_or(true, |mut d| d.next().is_none()),
        "staging directories left in {}",
        stage.display()
    );

    // The curriculum of that selection, from the store to the store, verified there.
    let local_cur = dir.path().join("cur");
    let cur_args = |tok: &str, out: &str, input: &str| -> Vec<String> {
        [
            "curriculum",
            "--tokenizer",
            tok,
            "--seq-len",
            "128",
            "--order",
            "ascending",
            "--by",
            "zipfit",
            "--out",
            out,
            input,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = cur_args(&fixture("tokenizer.json"), &local_cur.display().to_string(), &local_sel.display().to_string());
    ok(&crate::util::syllabus(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let b = cur_args("s3://lake/tokenizer.json", "s3://out/cur", "s3://out/zipfit/sel.parquet");
    ok(&s3.syllabus(&b.iter().map(String::as_str).collect::<Vec<_>>(), &[]));
    let (sel, tok) = (local_sel.display().to_string(), fixture("tokenizer.json"));
    same_tree(&local_cur, &s3, "out/cur", &[("s3://out/zipfit/sel.parquet", &sel), ("s3://lake/tokenizer.json", &tok)]);
    let v = s3.syllabus(&["verify", "s3://out/cur"], &[]);
    assert!(ok(&v).contains("all good"));

    // SQL over the store's output directory and lake: the same answers as over local files.
    let q = "SELECT count(*) AS n, round(sum(tokens), 0) AS t FROM shards; SELECT count(*) FROM prose";
    let local = crate::util::syllabus(&[
        "sql",
        "--format",
        "csv",
        "-c",
        q,
        &local_cur.display().to_string(),
        &fixture("lake/prose.jsonl"),
    ]);
    let remote = s3.syllabus(&["sql", "--format", "csv", "-c", q, "s3://out/cur", "s3://lake/lake/prose.jsonl"], &[]);
    ok(&local);
    ok(&remote);
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local.stdout));
    // Parquet in the store through DataFusion's reader, and CREATE EXTERNAL TABLE on a URL.
    let q = "CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION 's3://out/zipfit/sel.parquet'; \
             SELECT count(*) AS n, min(id) AS first FROM s";
    let local_q = q.replace("s3://out/zipfit/sel.parquet", &local_sel.display().to_string());
    let local = crate::util::syllabus(&["sql", "--format", "csv", "-c", &local_q]);
    let remote = s3.syllabus(&["sql", "--format", "csv", "-c", q], &[]);
    ok(&local);
    ok(&remote);
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local.stdout));
    assert!(String::from_utf8_lossy(&remote.stdout).contains("50,"));
}

#[test]
fn quickstart_pipeline_on_s3_matches_the_local_run() {
    let s3 = S3::start();
    s3.put_fixtures();
    let dir = tempdir();
    let text = std::fs::read_to_string(root().join("pipelines/quickstart.toml")).unwrap();
    let local_out = dir.path().join("local");
    ok(&crate::util::syllabus(&["run", "pipelines/quickstart.toml", "--out", &local_out.display().to_string()]));
    // The same pipeline with every path a URL, itself read from the store.
    let remote_text = text
        .replace("\"fixtures/lake/", "\"s3://lake/lake/")
        .replace("\"fixtures/target/", "\"s3://lake/target/")
        .replace("\"fixtures/tokenizer.json\"", "\"s3://lake/tokenizer.json\"")
        .replace("out_dir = \"out/quickstart\"", "out_dir = \"s3://out/quickstart\"");
    assert!(remote_text.contains("s3://lake/lake/prose.jsonl") && remote_text.contains("s3://out/quickstart"));
    std::fs::write(s3.data.join("lake/quickstart.toml"), remote_text).unwrap();
    let err = ok(&s3.syllabus(&["run", "s3://lake/quickstart.toml"], &[]));
    assert!(err.contains("uploaded s3://out/quickstart"), "{err}");
    same_tree(
        &local_out,
        &s3,
        "out/quickstart",
        &[
            ("s3://lake/lake/", "fixtures/lake/"),
            ("s3://lake/target/", "fixtures/target/"),
            ("s3://lake/tokenizer.json", "fixtures/tokenizer.json"),
        ],
    );
    ok(&s3.syllabus(&["verify", "s3://out/quickstart"], &[]));

    // serve: the curriculum is copied to this node once, then staged as a local one; the same
    // sequences as serving the local output.
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    let ready = |target: &str| -> serde_json::Value {
        let mut child = s3
            .command(&["-q", "serve", target])
            .env("SYLLABUS_SHM_DIR", &shm)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        assert!(!line.is_empty(), "serve {target} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(&line).unwrap()
    };
    let (remote, local) = (ready("s3://out/quickstart"), ready(&local_out.display().to_string()));
    assert_eq!(remote["sequences"], local["sequences"]);
    assert_eq!(remote["bytes"], local["bytes"]);
    let copy = s3.data.parent().unwrap().join("home/stage");
    assert!(std::fs::read_dir(&copy)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("download-")));
}

#[test]
fn a_killed_upload_resumes_and_a_reader_never_sees_an_unfinished_output() {
    let s3 = S3::start();
    s3.put_fixtures();
    let dir = tempdir();
    let local_out = dir.path().join("local");
    ok(&crate::util::syllabus(&["run", "pipelines/quickstart.toml", "--out", &local_out.display().to_string()]));
    // Killed after the first uploaded file: the run's outputs are staged, the store has some
    // files but no manifest, so nothing looks complete.
    let out = s3
        .syllabus(&["run", "pipelines/quickstart.toml", "--out", "s3://out/q"], &[("SYLLABUS_FAILPOINT", "upload-1")]);
    assert!(!out.status.success());
    assert!(!s3.has("out/q/manifest.json") && !s3.has("out/q/summary.json"));
    let v = s3.syllabus(&["verify", "s3://out/q"], &[]);
    assert!(!v.status.success());
    assert!(String::from_utf8_lossy(&v.stderr).contains("manifest.json"), "{}", String::from_utf8_lossy(&v.stderr));
    // Run again: the run's work is kept, the uploaded file is not sent again.
    let err = ok(&s3.syllabus(&["run", "pipelines/quickstart.toml", "--out", "s3://out/q"], &[]));
    assert!(err.contains("1 already there from an interrupted upload"), "{err}");
    same_tree(&local_out, &s3, "out/q", &[]);
    ok(&s3.syllabus(&["verify", "s3://out/q"], &[]));
}

/// A lake object of about 40 MB, well past what a reader buffers ahead (16 MiB), so a run
/// stalled after its first batch has the body part read (the fixture documents, repeated with
/// new ids).
fn big_lake(s3: &S3) -> PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(root().join("fixtures/lake/prose.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 40 << 20 {
        let mut v: serde_json::Value = serde_json::from_str(&lines[i % lines.len()]).unwrap();
        v["id"] = serde_json::json!(format!("big-{i}"));
        text.push_str(&v.to_string());
        text.push('\n');
        i += 1;
    }
    let dir = s3.data.join("lake/big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.jsonl"), &text).unwrap();
    dir.join("big.jsonl")
}

#[test]
fn a_server_killed_mid_read_is_retried_or_a_clear_error() {
    let mut s3 = S3::start();
    s3.put_fixtures();
    let big = big_lake(&s3);
    let dir = tempdir();
    let local = dir.path().join("scores.parquet");
    let args = |out: &str, lake: &str| -> Vec<String> {
        ["score", "dsir", "--target", &fixture("target/math.jsonl"), "--batch-rows", "256", "--out", out, lake]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let a = args(&local.display().to_string(), &big.display().to_string());
    ok(&crate::util::syllabus(&a.iter().map(String::as_str).collect::<Vec<_>>()));

    // The run stalls after its first batch of the object (the body is part read), the server
    // is killed and comes back a second later: the read is retried from where it stopped.
    for (retries, outcome) in [("10", true), ("0", false)] {
        let stall = tempdir();
        let stall_env = format!("batch-256:{}", stall.path().display());
        let out_url = format!("s3://out/killed-{retries}/scores.parquet");
        let b = args(&out_url, "s3://lake/big/big.jsonl");
        let mut cmd_args: Vec<&str> = vec!["--store-retries", retries];
        cmd_args.extend(b.iter().map(String::as_str));
        let handle = s3
            .command(&cmd_args)
            .env("SYLLABUS_STALL", &stall_env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !stall.path().join("stalled").exists() {
            assert!(t.elapsed() < Duration::from_secs(60), "the run never reached its stall point");
            std::thread::sleep(Duration::from_millis(20));
        }
        s3.kill();
        std::fs::write(stall.path().join("go"), b"").unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        s3.up();
        let out = handle.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        if outcome {
            assert!(out.status.success(), "with retries the run should survive the restart:\n{err}");
            same_file(
                &local,
                &s3.object(&format!("out/killed-{retries}/scores.parquet")),
                "score dsir after a restart",
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("s3://lake/big/big.jsonl"), "the error names the object: {err}");
            assert!(err.contains("failed at byte"), "the error names the byte offset mid-body: {err}");
            eprintln!("with retries off: {err}");
            assert!(!s3.has(&format!("out/killed-{retries}/scores.parquet")), "a failed run wrote its output");
            assert!(!err.contains(SECRET) && !err.contains(ACCESS), "a credential in the error: {err}");
        }
    }

    // A large output goes up as a multipart upload (parts of 8 MiB): a query's 40 MB of CSV.
    let q = "SELECT id, text FROM big";
    let local_csv = dir.path().join("big.csv");
    ok(&crate::util::syllabus(&[
        "sql",
        "--format",
        "csv",
        "-o",
        &local_csv.display().to_string(),
        "-c",
        q,
        &big.display().to_string(),
    ]));
    let err =
        ok(&s3
            .syllabus(&["sql", "--format", "csv", "-o", "s3://out/big.csv", "-c", q, "s3://lake/big/big.jsonl"], &[]));
    assert!(err.contains("uploaded s3://out/big.csv"), "{err}");
    assert!(std::fs::metadata(&local_csv).unwrap().len() > (3 * 8) << 20);
    same_file(&local_csv, &s3.object("out/big.csv"), "a multipart upload");
}

#[test]
fn missing_objects_bad_credentials_and_truncated_objects_are_clear_errors() {
    let s3 = S3::start();
    s3.put_fixtures();
    // A missing object names the URL.
    let out = s3.syllabus(
        &["score", "dsir", "--target", "s3://lake/target/nope.jsonl", "--out", "s3://out/x.parquet", "s3://lake/lake"],
        &[],
    );
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("s3://lake/target/nope.jsonl"), "{err}");
    // A wrong secret: denied, and the secret appears nowhere.
    let wrong = "wrong-secret-Kx91Pq";
    let out = s3.syllabus(
        &["score", "dsir", "--target", "s3://lake/target/math.jsonl", "--out", "s3://out/x.parquet", "s3://lake/lake"],
        &[("AWS_SECRET_ACCESS_KEY", wrong)],
    );
    let err = crate::util::fails(&out, 1);
    // Refused by the output's write probe, before any work.
    assert!(err.contains("s3://out/x.parquet") && err.contains("cannot write there"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(ACCESS), "a credential in the error: {err}");
    assert!(!s3.has("out/x.parquet"));
    // An output in a bucket that does not exist: refused before the work (nothing read, no
    // summary), naming the bucket, and nothing staged.
    let stage = s3.data.parent().unwrap().join("home/stage");
    let staged_before = std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0);
    let out = s3.syllabus(
        &[
            "score",
            "dsir",
            "--target",
            "s3://lake/target/math.jsonl",
            "--out",
            "s3://nobucket/out/x.parquet",
            "s3://lake/lake",
        ],
        &[],
    );
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("bucket (or container) nobucket does not exist"), "{err}");
    assert!(!err.contains("read ") && !err.contains("wrote"), "the work ran first: {err}");
    assert_eq!(
        std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0),
        staged_before,
        "a staging directory was left"
    );
    let out = s3.syllabus(&["run", "pipelines/quickstart.toml", "--out", "s3://nobucket/q"], &[]);
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("nobucket does not exist"), "{err}");
    // A query string is refused with the URL and the reason apart.
    let out = s3.syllabus(
        &[
            "score",
            "dsir",
            "--target",
            "s3://lake/target/math.jsonl",
            "--out",
            "s3://out/x.parquet?sig=abc",
            "s3://lake/lake",
        ],
        &[],
    );
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("s3://out/x.parquet?***: URLs with a query string"), "{err}");
    // A truncated .zst object is the local truncated-file case: an error, or counted with skip.
    let zst = std::fs::read(root().join("fixtures/lake/code.jsonl.zst")).unwrap();
    std::fs::create_dir_all(s3.data.join("lake/cut")).unwrap();
    std::fs::write(s3.data.join("lake/cut/code.jsonl.zst"), &zst[..zst.len() / 2]).unwrap();
    let out = s3.syllabus(
        &["score", "dsir", "--target", "s3://lake/target/math.jsonl", "--out", "s3://out/cut.parquet", "s3://lake/cut"],
        &[],
    );
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("s3://lake/cut/code.jsonl.zst") && err.contains("truncated"), "{err}");
    let out = s3.syllabus(
        &[
            "score",
            "dsir",
            "--on-bad-record",
            "skip",
            "--target",
            "s3://lake/target/math.jsonl",
            "--out",
            "s3://out/cut.parquet",
            "s3://lake/cut",
        ],
        &[],
    );
    let err = crate::util::fails(&out, 3);
    assert!(err.contains("rejected"), "{err}");
    assert!(s3.has("out/cut.parquet"));
}

#[test]
fn http_urls_and_aws_profiles() {
    // A plain HTTP server (Python's http.server) serving the fixtures: single files by URL.
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(root().join("fixtures"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "http.server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    ok(&crate::util::syllabus(&[
        "score",
        "zipfit",
        "--target",
        &fixture("target/math.jsonl"),
        "--out",
        &a.display().to_string(),
        &fixture("lake/prose.jsonl"),
        &fixture("lake/docs.parquet"),
    ]));
    let base = format!("http://127.0.0.1:{port}");
    let out = crate::util::syllabus(&[
        "score",
        "zipfit",
        "--target",
        &format!("{base}/target/math.jsonl"),
        "--out",
        &b.display().to_string(),
        &format!("{base}/lake/prose.jsonl"),
        &format!("{base}/lake/docs.parquet"),
    ]);
    // A presigned-style URL is refused (object_store would drop its query), and the signature
    // appears in no message.
    let signed = format!("{base}/lake/prose.jsonl?X-Amz-Signature=SIGsecret123");
    let c = dir.path().join("c.jsonl");
    let presigned = crate::util::syllabus(&[
        "score",
        "dsir",
        "--target",
        &format!("{base}/target/math.jsonl"),
        "--out",
        &c.display().to_string(),
        &signed,
    ]);
    let missing = crate::util::syllabus(&[
        "score",
        "dsir",
        "--target",
        &format!("{base}/target/math.jsonl?sig=SIGsecret123"),
        "--out",
        &c.display().to_string(),
        &format!("{base}/lake/nope.jsonl?sig=SIGsecret123"),
    ]);
    let _ = server.kill();
    let err = crate::util::fails(&presigned, 1);
    assert!(!err.contains("SIGsecret123") && err.contains("prose.jsonl?***") && err.contains("presigned"), "{err}");
    let err = crate::util::fails(&missing, 1);
    assert!(!err.contains("SIGsecret123") && err.contains("nope.jsonl"), "{err}");
    let _ = server.wait();
    ok(&out);
    // The ids name the files as given, so compare the scores column.
    let (ta, tb) = (crate::util::parquet_table(&a), crate::util::parquet_table(&b));
    assert_eq!(ta["zipfit"], tb["zipfit"]);
    assert_eq!(ta["id"], tb["id"]);

    // Credentials and the endpoint from an AWS profile file instead of the environment.
    let s3 = S3::start();
    s3.put_fixtures();
    let home = s3.data.parent().unwrap().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!("[default]\naws_access_key_id = nobody\n[dev]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        format!("[profile dev]\nregion = us-east-1\nendpoint_url = {}\n", s3.endpoint()),
    )
    .unwrap();
    let mut cmd = s3.command(&["inspect", "s3://lake/lake/prose.jsonl"]);
    cmd.env("AWS_PROFILE", "dev")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION");
    let out = cmd.output().unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("jsonl"), "{}", String::from_utf8_lossy(&out.stdout));
}
