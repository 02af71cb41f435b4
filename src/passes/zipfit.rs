//! ZIP-FIT's fit: read the target set once and compress each target; the scorer
//! ([`crate::score::zipfit::ZipfitScorer`]) then runs through the shared passes of
//! [`super::scored`].
//!
//! Memory: the target texts and their compressed sizes (the algorithm needs them all for every
//! candidate), plus what the shared passes hold.

use super::work::{rejects_at, Prologue, Work};
use crate::batch::text_column;
use crate::error::Result;
use crate::progress::Progress;
use crate::score::zipfit::{ZipfitParams, ZipfitTarget};
use crate::source::{Extras, FileStats, InputFile, LakeReader, ReadOptions, RejectWriter};

/// Read every target row and compress each target once.
pub fn load_target(
    files: &[InputFile],
    read: &ReadOptions,
    params: ZipfitParams,
    progress: &Progress,
    rejects: Option<&mut RejectWriter>,
) -> Result<(ZipfitTarget, Vec<FileStats>)> {
    params.validate()?;
    let bar = progress.rows("target");
    let mut reader = LakeReader::new(files, read, Extras::none(), rejects);
    let mut texts = Vec::new();
    for b in reader.by_ref() {
        let b = b?;
        texts.extend(text_column(&b.batch)?.iter().map(|t| t.unwrap_or("").to_string()));
        bar.inc(b.batch.num_rows() as u64);
    }
    bar.finish_and_clear();
    let stats = reader.into_stats();
    Ok((ZipfitTarget::try_new(params, texts)?, stats))
}

/// [`load_target`], keeping its counts and rejects in `work`: a resumed run reads and
/// compresses the target set again but does not record its rejects twice.
pub fn load_target_in(
    files: &[InputFile],
    read: &ReadOptions,
    params: ZipfitParams,
    progress: &Progress,
    work: Option<&Work>,
    rejects: Option<&mut RejectWriter>,
) -> Result<(ZipfitTarget, Vec<FileStats>)> {
    if let Some(p) = work.and_then(Work::prologue) {
        let (target, _) = load_target(files, read, params, progress, None)?;
        return Ok((target, p.target_stats()));
    }
    let mut rejects = rejects;
    let (target, stats) = load_target(files, read, params, progress, rejects.as_deref_mut())?;
    if let Some(w) = work {
        w.save_prologue(&Prologue::new(&stats, rejects_at(rejects.as_deref()), None))?;
    }
    Ok((target, stats))
}
