//! `syllabus serve OUT_DIR`: stage a curriculum into shared memory once per node, hold it
//! while ranks read it, and take their reports.
//!
//! The report socket speaks one JSON object per line each way:
//! - `{"op": "hello", "global_batch_size": G}`: a loader attaches; the first fixes G for
//!   feedback (steps are global batches).
//! - `{"op": "report", "step": s, "stats": {domain: [values]}}`: the signals of step s; the
//!   answer carries the decision.
//! - `{"op": "status"}`: positions planned, decisions, the step whose report is due.
//!
//! Answers are `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
//!
//! The decision log (`mixture_log.jsonl` in the curriculum's directory, or `--log`) starts
//! with a header naming the curriculum and the feedback settings, then one decision per
//! line, appended and synced before the answer goes back; a restarted serve replays it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::feedback::{Decision, Feedback, FeedbackConfig, Outcome, Report, Rule};
use super::segment::{self, Paths, Segment, StageRequest};
use crate::error::{Error, Result};
use crate::shard::manifest::Manifest;

/// What `serve` needs, validated by the CLI.
pub struct ServeOptions {
    pub dir: PathBuf,
    pub name: Option<String>,
    pub feedback: FeedbackConfig,
    /// The decision log; `mixture_log.jsonl` (or `mixture_log-NAME.jsonl`) in `dir` by default.
    pub log: Option<PathBuf>,
    /// File mode of the segment, lock and socket.
    pub mode: u32,
    pub stage: segment::StageMode,
}

/// What a started serve tells its caller.
#[derive(Debug, Serialize)]
pub struct Ready {
    pub name: String,
    pub segment: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub sequences: u64,
    pub bytes: u64,
    pub rule: Rule,
    pub stage: segment::StageMode,
    pub decisions_replayed: usize,
    pub replaced_stale_pid: Option<u64>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct LogHeader {
    syllabus_mixture_log: u32,
    curriculum: String,
    feedback: FeedbackConfig,
}

struct State {
    feedback: Feedback,
    segment: Arc<Segment>,
    log: PathBuf,
    header: LogHeader,
    /// The last log write failed: the next one rewrites the whole log.
    log_behind: bool,
}

impl State {
    fn plan(&mut self) -> (&mut Feedback, &[u16], &mut [u64]) {
        // SAFETY: the plan is written only here, under the state's mutex.
        let plan = unsafe { self.segment.plan_mut() };
        (&mut self.feedback, self.segment.domains(), plan)
    }

    /// Let ranks read what is planned, unless the log is missing a decision it depends on.
    fn publish(&self) {
        if self.log_behind {
            return;
        }
        self.segment.publish(self.feedback.planner.planned(), self.feedback.decisions.len() as u64);
    }

    fn write_log(&self, append: Option<&Decision>) -> Result<()> {
        match append {
            Some(d) => {
                let mut f =
                    std::fs::OpenOptions::new().append(true).open(&self.log).map_err(|e| Error::io(&self.log, e))?;
                f.write_all(line(d).as_bytes()).and_then(|_| f.sync_data()).map_err(|e| Error::io(&self.log, e))
            }
            None => {
                let mut text = line(&self.header);
                for d in &self.feedback.decisions {
                    text.push_str(&line(d));
                }
                crate::sink::write_atomic(&self.log, text.as_bytes())
            }
        }
    }

    fn handle(&mut self, req: &Value) -> Result<Value> {
        match req.get("op").and_then(Value::as_str) {
            Some("hello") => {
                let g = req.get("global_batch_size").and_then(Value::as_u64).unwrap_or(0);
                self.feedback.hello(g)?;
                let (f, domains, plan) = self.plan();
                f.extend(domains, plan);
                self.publish();
                Ok(self.status())
            }
            Some("report") => {
                let step = req
                    .get("step")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| Error::InvalidArgument("report: \"step\" must be a non-negative integer".into()))?;
                let report: Report =
                    serde_json::from_value(req.get("stats").cloned().unwrap_or(Value::Null)).map_err(|e| {
                        Error::InvalidArgument(format!("report: \"stats\" must map domains to lists of numbers: {e}"))
                    })?;
                let (f, domains, plan) = self.plan();
                let (d, outcome) = f.report(step, report, domains, plan)?;
                // The log is written before the plan is published; a write that failed (a full
                // disk) is redone whole at the next report, so the log never misses a decision
                // that ranks have read by.
                let written = match (outcome, self.log_behind) {
                    (_, true) | (Outcome::Replaced, _) => self.write_log(None),
                    (Outcome::Appended, false) => self.write_log(Some(&d)),
                    (Outcome::Unchanged, false) => Ok(()),
                };
                self.log_behind = written.is_err();
                written?;
                self.publish();
                let mut s = self.status();
                s["decision"] = serde_json::to_value(&d).expect("decisions serialize");
                Ok(s)
            }
            Some("status") => Ok(self.status()),
            other => Err(Error::InvalidArgument(format!("unknown op {other:?} (hello, report, status)"))),
        }
    }

    fn status(&self) -> Value {
        json!({
            "ok": true,
            "planned": self.segment.published(),
            "decisions": self.feedback.decisions.len(),
            "due_step": self.feedback.due_step(),
            "global_batch_size": self.feedback.global_batch_size,
            "rule": self.feedback.cfg.rule,
        })
    }
}

fn line<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).expect("log records serialize");
    s.push('\n');
    s
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn read_log(path: &Path, header: &LogHeader) -> Result<Vec<Decision>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else { return Ok(Vec::new()) };
    let bad = |line: usize, what: String| Error::InvalidArgument(format!("{}:{}: {what}", path.display(), line + 1));
    let got: LogHeader = serde_json::from_str(first).map_err(|e| bad(0, format!("not a mixture log header: {e}")))?;
    if &got != header {
        return Err(Error::InvalidArgument(format!(
            "{}: this decision log was written for another curriculum or other feedback settings; move it away to start \
             afresh, or pass --log",
            path.display()
        )));
    }
    lines.map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i, format!("not a decision: {e}")))).collect()
}

/// Stage and serve until SIGINT/SIGTERM. `ready` is called once the segment is published and
/// the socket listens.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(&Ready)) -> Result<()> {
    let m = Manifest::load(&opts.dir)?;
    let dir = std::fs::canonicalize(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    opts.feedback.validate(&m.domains)?;
    let id = segment::curriculum_id(&m);
    let name = segment::segment_name(&id, opts.name.as_deref())?;
    let shm = segment::shm_dir();
    let paths = Paths::new(&shm, &name);
    let log = opts.log.clone().unwrap_or_else(|| match &opts.name {
        Some(n) => dir.join(format!("mixture_log-{n}.jsonl")),
        None => dir.join("mixture_log.jsonl"),
    });
    let _lock = segment::take_lock(&paths, opts.mode)?;
    let header = LogHeader { syllabus_mixture_log: 1, curriculum: id.clone(), feedback: opts.feedback.clone() };
    let logged = if opts.feedback.rule == Rule::None { Vec::new() } else { read_log(&log, &header)? };
    let meta = json!({
        "name": name,
        "curriculum": id,
        "dir": dir,
        "config_hash": m.config_hash,
        "domains": m.domains,
        "seq_len": m.seq_len,
        "token_dtype": m.token_dtype,
        "vocab_size": m.vocab_size,
        "eos_id": m.eos_id,
        "pad_id": m.pad_id,
        "feedback": opts.feedback,
        "socket": paths.socket,
        "log": log,
        "pid": std::process::id(),
        "stage": opts.stage,
        "files": match opts.stage {
            segment::StageMode::Map => segment::syllabus_shards(&m, &dir)?.iter().map(|s| dir.join(&s.path)).collect(),
            segment::StageMode::Copy => Vec::new(),
        },
    });
    let socket_path = paths.socket.clone();
    let seg = Arc::new(segment::stage(StageRequest {
        dir: &dir,
        manifest: &m,
        paths,
        with_plan: opts.feedback.rule != Rule::None,
        stage: opts.stage,
        meta,
        mode: opts.mode,
    })?);
    // From here on a failure must not leave a segment that looks served.
    let guard = CloseOnDrop(seg.clone());

    let mut counts = vec![0u64; m.domains.len()];
    for &d in seg.domains() {
        counts[d as usize] += 1;
    }
    let n = seg.layout.n_seq.max(1) as f64;
    let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
    let feedback = Feedback::new(opts.feedback.clone(), m.domains.clone(), &shares)?;
    let mut state = State { feedback, segment: seg.clone(), log: log.clone(), header, log_behind: false };
    let replayed = logged.len();
    {
        let (f, domains, plan) = state.plan();
        f.replay(logged, domains, plan)?;
        f.extend(domains, plan);
    }
    if state.feedback.cfg.rule != Rule::None && replayed == 0 {
        state.write_log(None)?;
    }
    state.publish();

    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path).map_err(|e| Error::io(&socket_path, e))?;
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(opts.mode))
        .map_err(|e| Error::io(&socket_path, e))?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let state = Arc::new(Mutex::new(state));
    {
        let state = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || connection(conn, &state));
            }
        });
    }
    ready(&Ready {
        name,
        segment: seg.paths.segment.clone(),
        socket: socket_path,
        log,
        sequences: seg.layout.n_seq,
        bytes: seg.layout.total,
        rule: opts.feedback.rule,
        stage: opts.stage,
        decisions_replayed: replayed,
        replaced_stale_pid: seg.replaced,
    });
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(guard);
    Ok(())
}

struct CloseOnDrop(Arc<Segment>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn connection(conn: UnixStream, state: &Mutex<State>) {
    let Ok(mut out) = conn.try_clone() else { return };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(e) => json!({"ok": false, "error": format!("not a JSON request: {e}")}),
            Ok(req) => {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.handle(&req).unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}))
            }
        };
        let mut text = answer.to_string();
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}
