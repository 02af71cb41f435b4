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
//! line, appended and synced before the answer goes back; a restarted serve replays it line
//! by line. The log is append-only: a replaced decision is appended again under its number,
//! and supersedes the earlier lines of that number and later ones.

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::feedback::{Decision, Feedback, FeedbackConfig, Outcome, Rule};
use super::segment::{self, Paths, Segment, StageRequest};
use crate::error::{Error, Result};
use crate::shard::manifest::Manifest;
use crate::source::{read_line_bounded, Line};

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
    /// Decisions whose log lines could not be written yet (a full disk): written before any
    /// later one, and nothing past them is published until they are.
    unlogged: Vec<Decision>,
}

impl State {
    fn plan(&mut self) -> (&mut Feedback, &[u16], &mut [u64]) {
        // SAFETY: the plan is written only here, under the state's mutex.
        let plan = unsafe { self.segment.plan_mut() };
        (&mut self.feedback, self.segment.domains(), plan)
    }

    /// Let ranks read what is planned, unless the log is missing a decision it depends on.
    fn publish(&self) {
        if !self.unlogged.is_empty() {
            return;
        }
        self.segment.publish(self.feedback.planner.planned(), self.feedback.decided());
    }

    /// Append the unlogged decisions to the log (append-only: a replaced decision is a new
    /// line with its number, which supersedes the lines of that number and later), synced.
    /// A write that fails is cut back to the log's previous length, so the log never holds
    /// half a line.
    fn write_log(&mut self) -> Result<()> {
        if self.unlogged.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for d in &self.unlogged {
            text.push_str(&line(d));
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.log).map_err(|e| Error::io(&self.log, e))?;
        let len = f.metadata().map_err(|e| Error::io(&self.log, e))?.len();
        match f.write_all(text.as_bytes()).and_then(|_| f.sync_data()) {
            Ok(()) => {
                self.unlogged.clear();
                Ok(())
            }
            Err(e) => {
                let _ = f.set_len(len);
                Err(Error::io(&self.log, e))
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
                let (step, report) = super::feedback::parse_report(req)?;
                let log = self.log.clone();
                let mut older = |k: u64| -> Result<Option<Decision>> { find_logged(&log, k) };
                let (f, domains, plan) = self.plan();
                let (d, outcome) = f.report(step, report, domains, plan, &mut older)?;
                // The log is written before the plan is published; a write that failed (a full
                // disk) is retried at the next report, so the log never misses a decision that
                // ranks have read by.
                if outcome != Outcome::Unchanged {
                    self.unlogged.push(d.clone());
                }
                self.write_log()?;
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
            "decisions": self.feedback.decided(),
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

/// The longest line of a decision log or of a request (a report with its values).
const MAX_LINE_BYTES: usize = 256 << 20;

/// The decision log, line by line (never whole in memory): its header is checked against
/// `header`, then each line is a decision. A bad line is an error naming the file and line.
struct LogLines {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    line: usize,
}

impl LogLines {
    /// None when there is no log (or an empty one).
    fn open(path: &Path, header: Option<&LogHeader>) -> Result<Option<LogLines>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut lines = LogLines { path: path.to_path_buf(), reader: BufReader::new(file), line: 0 };
        let Some(first) = lines.next_line()? else { return Ok(None) };
        let got: LogHeader =
            serde_json::from_str(&first).map_err(|e| lines.bad(format!("not a mixture log header: {e}")))?;
        if header.is_some_and(|h| *h != got) {
            return Err(Error::InvalidArgument(format!(
                "{}: this decision log was written for another curriculum or other feedback settings; move it away to start \
                 afresh, or pass --log",
                path.display()
            )));
        }
        Ok(Some(lines))
    }

    fn bad(&self, what: String) -> Error {
        Error::InvalidArgument(format!(
            "{}:{}: {what} (the log is damaged from here: move it away, or cut it before this line, and restart)",
            self.path.display(),
            self.line
        ))
    }

    fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            let mut buf = Vec::new();
            let l =
                read_line_bounded(&mut self.reader, &mut buf, MAX_LINE_BYTES).map_err(|e| Error::io(&self.path, e))?;
            if l.bytes == 0 {
                return Ok(None);
            }
            self.line += 1;
            if l.over_limit {
                return Err(self.bad(format!("a line longer than {MAX_LINE_BYTES} bytes")));
            }
            let text = String::from_utf8(buf).map_err(|_| self.bad("not UTF-8".into()))?;
            if !text.trim().is_empty() {
                return Ok(Some(text));
            }
        }
    }
}

impl Iterator for LogLines {
    type Item = Result<Decision>;

    fn next(&mut self) -> Option<Result<Decision>> {
        match self.next_line() {
            Err(e) => Some(Err(e)),
            Ok(None) => None,
            Ok(Some(l)) => Some(serde_json::from_str(&l).map_err(|e| self.bad(format!("not a decision: {e}")))),
        }
    }
}

/// The decision numbered `k` that the log holds now: the last line of that number that no
/// later line supersedes (a line of number j supersedes the earlier lines of numbers >= j).
fn find_logged(path: &Path, k: u64) -> Result<Option<Decision>> {
    let Some(lines) = LogLines::open(path, None)? else { return Ok(None) };
    let mut found = None;
    for d in lines {
        let d = d?;
        if d.decision <= k {
            found = (d.decision == k).then_some(d);
        }
    }
    Ok(found)
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
    let logged = if opts.feedback.rule == Rule::None { None } else { LogLines::open(&log, Some(&header))? };
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
    let had_log = logged.is_some();
    let mut state = State { feedback, segment: seg.clone(), log: log.clone(), header, unlogged: Vec::new() };
    let replayed = {
        let (f, domains, plan) = state.plan();
        if let Some(lines) = logged {
            f.replay(lines, domains, plan)?;
        }
        f.extend(domains, plan);
        f.decided() as usize
    };
    if state.feedback.cfg.rule != Rule::None && !had_log {
        crate::sink::write_atomic(&state.log, line(&state.header).as_bytes())?;
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
    let mut reader = BufReader::new(conn);
    loop {
        let mut buf = Vec::new();
        // A request is one line of at most MAX_LINE_BYTES; a longer one ends the connection.
        match read_line_bounded(&mut reader, &mut buf, MAX_LINE_BYTES) {
            Ok(Line { bytes: 0, .. }) | Err(_) => return,
            Ok(Line { over_limit: true, .. }) => {
                let _ = out.write_all(
                    format!(
                        "{}\n",
                        json!({"ok": false, "error": format!("a request longer than {MAX_LINE_BYTES} bytes")})
                    )
                    .as_bytes(),
                );
                return;
            }
            Ok(_) => {}
        }
        let Ok(line) = String::from_utf8(buf) else {
            let _ = out.write_all(b"{\"ok\":false,\"error\":\"a request must be UTF-8 JSON\"}\n");
            return;
        };
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
