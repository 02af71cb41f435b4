//! Resumable scoring commands: what a `score` or `select` run has finished is kept in a work
//! directory beside its output (`OUT.work/`), so a run killed and started again with the same
//! command resumes where it was instead of starting over.
//!
//! What is kept, each written atomically once complete:
//! - `prologue.json`: the target set was read (its per-file counts and the rejects written so
//!   far); with DSIR also `model.json`, the fitted model, so neither fit pass runs again.
//! - `fit.json` (DSIR, while fitting): the raw counts of the files finished so far, saved at a
//!   file boundary at most once a second; the fit resumes at the next file.
//! - `score/file-NNNNNN.arrow` and `.json`: the score rows (id, scores, line or row) and the
//!   counts of each finished input file. A resumed run reads the finished files' rows back in
//!   order instead of scoring them again and starts reading the lake at the first file without
//!   them: it redoes at most the file it was on.
//!
//! The key of a work directory is the command's settings and the inputs' names, sizes and
//! modification times: anything else starts over. The directory is removed once the output is
//! written. The rejects file is cut back to the length the last kept step recorded, so it ends
//! with the same bytes as an uninterrupted run's.
//!
//! Memory: one batch of a finished file's rows at a time; nothing is held per file but its
//! counts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::resume::{inputs_fingerprint, load_marker, save_marker};
use crate::source::{FileStats, InputFile, RejectWriter};

/// The rejects file's length and records after a step.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RejectsAt {
    pub bytes: u64,
    pub records: u64,
}

/// Counts of one input file, with the jsonl fields it has (which the write pass of `select`
/// needs to know the output's columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileDone {
    pub stats: FileStats,
    pub fields: Vec<String>,
    /// The rejects file after this file.
    pub rejects: RejectsAt,
}

impl FileDone {
    pub fn new(stats: &FileStats, rejects: RejectsAt) -> Self {
        FileDone { stats: stats.clone(), fields: stats.fields_seen.iter().cloned().collect(), rejects }
    }

    pub fn into_stats(self) -> FileStats {
        let mut s = self.stats;
        s.fields_seen = self.fields.into_iter().collect();
        s
    }
}

/// The target set was read: its per-file counts and the rejects so far; with DSIR, its
/// bucket counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prologue {
    pub target: Vec<FileDone>,
    pub rejects: RejectsAt,
    #[serde(default)]
    pub dsir_target: Option<Vec<u64>>,
}

impl Prologue {
    /// The target set's per-file counts and the rejects file after reading it.
    pub fn new(stats: &[FileStats], rejects: RejectsAt, dsir_target: Option<Vec<u64>>) -> Self {
        Prologue { target: stats.iter().map(|s| FileDone::new(s, rejects)).collect(), rejects, dsir_target }
    }

    pub fn target_stats(&self) -> Vec<FileStats> {
        self.target.iter().cloned().map(FileDone::into_stats).collect()
    }
}

/// The work directory of one run.
#[derive(Debug)]
pub struct Work {
    dir: PathBuf,
    key: String,
    /// The directory and its key are written with the first thing kept, so a run that fails
    /// before it finishes anything leaves nothing behind.
    created: std::sync::atomic::AtomicBool,
    /// The finished raw files an interrupted run kept, read once when the work is begun.
    kept: Vec<FileDone>,
    /// What resumed (for the summary).
    pub resumed: Option<Resumed>,
}

/// Where a run resumed, for its summary and the tests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resumed {
    /// The target set was not read again.
    pub prologue: bool,
    /// Raw files whose fit counts were kept (DSIR; `usize::MAX`: the fitted model was kept).
    pub fit_files: usize,
    /// Raw files whose score rows were kept.
    pub scored_files: usize,
}

impl Work {
    /// The lake of a resumable command (expanded), its work directory beside `out` and its
    /// rejects file (cut back to what the work kept, when resuming). The key is `command`,
    /// `settings`, the lake's and the target set's names, sizes and modification times, and
    /// those of `extra_input` (a saved model, a tokenizer). An output that cannot be written is
    /// refused first; a lake read from stdin gets no work directory (it cannot be read again:
    /// such a run starts over when interrupted).
    pub fn open(
        raw_inputs: &[String],
        out: &Path,
        command: &str,
        mut settings: String,
        target: &[String],
        extra_input: Option<&Path>,
        rejects: Option<&Path>,
    ) -> Result<(Vec<InputFile>, Option<Work>, Option<RejectWriter>)> {
        let raw = crate::source::expand_inputs(raw_inputs)?;
        crate::sink::output_target(out)?;
        crate::sink::OutFormat::from_path(out)?;
        if raw.iter().any(|f| f.name == "-") {
            let rejects = rejects.map(RejectWriter::create).transpose()?;
            return Ok((raw, None, rejects));
        }
        let target = if target.is_empty() { Vec::new() } else { crate::source::expand_inputs(target)? };
        if let Some(f) = extra_input {
            let meta = crate::store::stat(f).ok().flatten();
            settings.push_str(&format!(" {} {:?}", f.display(), meta.map(|m| (m.len, m.mtime_ns))));
        }
        let work = Work::begin(out, command, settings, &[&raw, &target])?;
        let rejects = work.rejects(rejects)?;
        Ok((raw, Some(work), rejects))
    }

    /// The work directory of `out` (`OUT.work` beside it), kept if it was begun with the same
    /// key; otherwise it starts empty.
    pub fn begin(out: &Path, command: &str, settings: String, inputs: &[&[InputFile]]) -> Result<Work> {
        let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".work");
        let dir = out.with_file_name(name);
        let key = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "command": command,
            "settings": settings,
            "inputs": inputs.iter().map(|f| inputs_fingerprint(f)).collect::<Vec<_>>(),
        })
        .to_string();
        Self::at(dir, key)
    }

    /// The work directory `dir`, kept if it was begun with `key` (a pipeline's select stage
    /// keeps its work under the pipeline's own work directory, which is keyed already).
    pub fn at(dir: PathBuf, key: String) -> Result<Work> {
        let same = std::fs::read_to_string(dir.join("KEY")).is_ok_and(|k| k == key);
        if !same && dir.exists() {
            // Only a directory syllabus made (it has a KEY) is removed: never someone's own.
            if !dir.join("KEY").is_file() {
                return Err(Error::InvalidArgument(format!(
                    "{} exists and is not a syllabus work directory (no KEY file): move it, or write the output elsewhere",
                    dir.display()
                )));
            }
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let kept = if same {
            (0..).map_while(|i| load_marker::<FileDone>(&dir, &Self::file_marker(i))).collect()
        } else {
            Vec::new()
        };
        let mut work = Work { dir, key, created: same.into(), kept, resumed: None };
        if same {
            let fit_files = if work.model_path().exists() { usize::MAX } else { work.fit().map_or(0, |f| f.next_file) };
            let r = Resumed { prologue: work.prologue().is_some(), fit_files, scored_files: work.kept.len() };
            work.resumed = (r != Resumed::default()).then_some(r);
        }
        Ok(work)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the directory and its key, once, before the first thing is kept.
    pub fn ready(&self) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.created.load(SeqCst) {
            std::fs::create_dir_all(self.dir.join("score")).map_err(|e| Error::io(&self.dir, e))?;
            crate::sink::write_atomic(&self.dir.join("KEY"), self.key.as_bytes())?;
            self.created.store(true, SeqCst);
        }
        Ok(())
    }

    /// Where a proxy's finished seeds are kept: this directory, made ready first (a directory
    /// without its KEY is not one syllabus would resume from, or remove).
    pub fn keep_seeds(&self) -> Result<crate::proxy::KeepSeeds<'_>> {
        self.ready()?;
        Ok(crate::proxy::KeepSeeds { dir: &self.dir })
    }

    /// A kept value, `name` in the directory.
    pub fn load<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        load_marker(&self.dir, name)
    }

    /// Keep a value as `name` (the directory made ready first).
    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.ready()?;
        save_marker(&self.dir, name, value)
    }

    pub fn prologue(&self) -> Option<Prologue> {
        load_marker(&self.dir, "prologue.json")
    }

    pub fn save_prologue(&self, p: &Prologue) -> Result<()> {
        self.ready()?;
        save_marker(&self.dir, "prologue.json", p)
    }

    pub fn fit(&self) -> Option<FitCheckpoint> {
        load_marker(&self.dir, "fit.json")
    }

    pub fn save_fit(&self, f: &FitCheckpoint) -> Result<()> {
        self.ready()?;
        save_marker(&self.dir, "fit.json", f)
    }

    /// The fitted DSIR model, once the fit is done.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.json")
    }

    fn file_marker(i: usize) -> String {
        format!("score/file-{i:06}.json")
    }

    /// The part file of raw file `i`.
    pub fn part_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("score/file-{i:06}.arrow"))
    }

    /// The finished raw files an interrupted run kept, in order from the first (up to the
    /// first one not finished).
    pub fn files_done(&self) -> &[FileDone] {
        &self.kept
    }

    pub fn save_file_done(&self, i: usize, f: &FileDone) -> Result<()> {
        self.ready()?;
        save_marker(&self.dir, &Self::file_marker(i), f)
    }

    /// The rejects file for this run: created, or for a resumed run cut back to where the
    /// last kept step left it.
    pub fn rejects(&self, path: Option<&Path>) -> Result<Option<RejectWriter>> {
        let at = self.kept.last().map(|f| f.rejects).or_else(|| self.prologue().map(|p| p.rejects));
        path.map(|p| RejectWriter::reopen(p, at.map(|a| (a.bytes, a.records)))).transpose()
    }

    /// The output is written: the work is no longer needed.
    pub fn finish(self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        }
        Ok(())
    }
}

/// The DSIR fit's progress: the raw counts of the files before `next_file` (the fit pass
/// records no rejects: the scoring pass does).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitCheckpoint {
    pub next_file: usize,
    pub raw: Vec<u64>,
}

/// Where the rejects file stands (or nothing, without one).
pub fn rejects_at(r: Option<&RejectWriter>) -> RejectsAt {
    r.map_or_else(RejectsAt::default, |r| RejectsAt { bytes: r.bytes(), records: r.count() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_seeds_leave_a_work_directory_a_later_run_resumes_from() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("select");
        let w = Work::at(dir.clone(), "k".into()).unwrap();
        let keep = w.keep_seeds().unwrap();
        std::fs::write(keep.dir.join("seed-0.f64"), [0u8; 24]).unwrap();
        // The same key resumes (the seed is still there); another key starts over.
        Work::at(dir.clone(), "k".into()).unwrap();
        assert!(dir.join("seed-0.f64").exists());
        Work::at(dir.clone(), "other".into()).unwrap();
        assert!(!dir.exists());
    }
}
