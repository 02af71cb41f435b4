//! The stages that remove rows before anything scores or selects: `[decontaminate]` (rows
//! that share an n-gram with a benchmark) and then `[dedup]` (all but the first row of each
//! exact or near-duplicate cluster). Each writes its per-row table (`contamination.parquet`,
//! `dedup.parquet`) and the rows it removed; every later reader of the lake leaves those out
//! ([`crate::source::Exclusions`]), so scoring, selection and the curriculum see one clean copy.
//!
//! Resumable: a finished stage leaves a marker and its removed rows in `OUT/work`; one that
//! was interrupted keeps the files it finished in `OUT/work/dedup` or `OUT/work/decontaminate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::batch::{RecordBatch, COL_ID};
use crate::config::PipelineConfig;
use crate::dedup::DedupReport;
use crate::error::{Error, Result};
use crate::methods::contamination::Contamination;
use crate::methods::FitLake;
use crate::passes::work::Work;
use crate::passes::ScoredLake;
use crate::progress::Progress;
use crate::resume::{load_marker, save_marker};
use crate::score::contamination::COL_CONTAM_NGRAMS;
use crate::sink::TableWriter;
use crate::source::{Exclusions, InputFile, ReadOptions, RejectWriter};

/// What `[decontaminate]` removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecontamReport {
    pub rows: u64,
    pub removed: u64,
    pub per_file: Vec<FileDecontam>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileDecontam {
    pub file: String,
    pub rows: u64,
    pub removed: u64,
}

/// What the row-removing stages did, for the summary.
#[derive(Debug, Default)]
pub struct Filtered {
    pub decontaminate: Option<DecontamReport>,
    pub dedup: Option<DedupReport>,
    pub outputs: Vec<PathBuf>,
}

/// Run `[decontaminate]` and `[dedup]` where the pipeline has them, and make `read` leave out
/// what they removed. Bad records are counted here and written by the stage that reads the
/// lake next (the selection, or the rows kept), so the rejects file has each once.
pub fn run(
    cfg: &PipelineConfig,
    raw: &[InputFile],
    read: &mut ReadOptions,
    work: &Path,
    key: &str,
    out_dir: &Path,
    progress: &Progress,
) -> Result<Filtered> {
    let mut f = Filtered::default();
    if cfg.cluster.is_some() && (cfg.dedup.is_some() || cfg.decontaminate.is_some()) {
        return Err(Error::Config(
            "[dedup] and [decontaminate] run on one machine: run the pipeline without --cluster".into(),
        ));
    }
    if let Some(c) = &cfg.decontaminate {
        let table = out_dir.join("contamination.parquet");
        let (report, removed) =
            match (load_marker::<DecontamReport>(work, "decontaminate.json"), load_removed(work, "decontaminate", raw))
            {
                (Some(r), Some(removed)) => (r, removed),
                _ => {
                    let w = Work::at(work.join("decontaminate"), key.to_string())?;
                    let lake = ScoredLake { raw, read, progress, file_column: None, work: Some(&w) };
                    let (r, removed) = decontaminate(c, &lake, &table, None)?;
                    save_removed(work, "decontaminate", raw, &removed)?;
                    save_marker(work, "decontaminate.json", &r)?;
                    w.finish()?;
                    (r, removed)
                }
            };
        eprintln!(
            "syllabus run: decontaminate: removed {} of {} rows that share an n-gram with the benchmark",
            report.removed, report.rows
        );
        exclude(read, removed);
        f.decontaminate = Some(report);
        f.outputs.push(table);
    }
    if let Some(d) = &cfg.dedup {
        let table = out_dir.join("dedup.parquet");
        let (report, removed) = match (load_marker::<DedupReport>(work, "dedup.json"), load_removed(work, "dedup", raw))
        {
            (Some(r), Some(removed)) => (r, removed),
            _ => {
                let w = Work::at(work.join("dedup"), key.to_string())?;
                let lake = ScoredLake { raw, read, progress, file_column: None, work: Some(&w) };
                let found = crate::dedup::find(&lake, d, None)?;
                let outcome = found.decide(&lake, d, Some(&table))?;
                save_removed(work, "dedup", raw, &outcome.removed)?;
                save_marker(work, "dedup.json", &outcome.report)?;
                w.finish()?;
                (outcome.report, outcome.removed)
            }
        };
        crate::dedup::print_report("run: dedup", &report);
        exclude(read, removed);
        f.dedup = Some(report);
        f.outputs.push(table);
    }
    Ok(f)
}

fn exclude(read: &mut ReadOptions, removed: Exclusions) {
    let all = match read.exclude.take() {
        Some(before) => removed.union(&before),
        None => removed,
    };
    read.exclude = Some(Arc::new(all));
}

/// Score the lake for contamination, write the per-row table and give the rows with a match.
fn decontaminate(
    settings: &crate::methods::contamination::Settings,
    lake: &ScoredLake,
    table: &Path,
    rejects: Option<&mut RejectWriter>,
) -> Result<(DecontamReport, Exclusions)> {
    let fit = FitLake { raw: lake.raw, read: lake.read, progress: lake.progress, work: None, counts: None };
    let fitted = crate::methods::fit::<Contamination>(settings, &fit, None)?;
    let scorer = fitted.scorer;
    let fields = scorer.output_fields();
    let at = fields
        .iter()
        .position(|f| f.name() == COL_CONTAM_NGRAMS)
        .ok_or_else(|| Error::InvalidArgument("the contamination scorer has no contam_ngrams".into()))?;
    let mut all = vec![Field::new(COL_ID, DataType::Utf8, false)];
    all.extend(fields.iter().cloned());
    let schema = Arc::new(Schema::new(all));
    let mut writer = TableWriter::create(table, schema.clone())?;
    let mut locs: Vec<Vec<u64>> = vec![Vec::new(); lake.raw.len()];
    let files = lake.score_pass(scorer.as_ref(), rejects, |b| {
        let n = b.columns[at].as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
            Error::InvalidArgument("contam_ngrams is not a count: remove the stage's work directory".into())
        })?;
        for i in 0..n.len() {
            if n.value(i) > 0 {
                locs[b.file].push(b.locations[i]);
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(b.ids.clone())];
        columns.extend(b.columns.iter().cloned());
        writer.write(&RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow("contamination rows", e))?)
    })?;
    writer.finish()?;
    let per_file: Vec<FileDecontam> = files
        .iter()
        .zip(&locs)
        .map(|(f, l)| FileDecontam { file: f.file.clone(), rows: f.kept, removed: l.len() as u64 })
        .collect();
    let mut removed = Exclusions::default();
    for (f, l) in lake.raw.iter().zip(locs) {
        removed.insert(f.path.clone(), l);
    }
    let report = DecontamReport { rows: per_file.iter().map(|f| f.rows).sum(), removed: removed.len(), per_file };
    Ok((report, removed))
}

/// The removed rows of stage `name`, kept as `OUT/work/NAME.removed`: per file of the lake, in
/// order, a count and the sorted locations (little-endian u64).
fn save_removed(work: &Path, name: &str, raw: &[InputFile], removed: &Exclusions) -> Result<()> {
    let mut bytes = Vec::new();
    for f in raw {
        let locs = removed.of(&f.path);
        bytes.extend_from_slice(&(locs.len() as u64).to_le_bytes());
        for l in locs {
            bytes.extend_from_slice(&l.to_le_bytes());
        }
    }
    crate::sink::write_atomic(&work.join(format!("{name}.removed")), &bytes)
}

fn load_removed(work: &Path, name: &str, raw: &[InputFile]) -> Option<Exclusions> {
    let bytes = std::fs::read(work.join(format!("{name}.removed"))).ok()?;
    let mut words = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let mut removed = Exclusions::default();
    for f in raw {
        let n = words.next()? as usize;
        let locs: Vec<u64> = words.by_ref().take(n).collect();
        if locs.len() != n {
            return None;
        }
        removed.insert(f.path.clone(), locs);
    }
    words.next().is_none().then_some(removed)
}
