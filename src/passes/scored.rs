//! Score a lake and keep the best rows: the passes every scorer-based selection shares.
//!
//! Pass "score" reads every row, scores it in parallel batches ([`Scorer::score_rows`]) and hands the
//! scores on in input order: to a score file, to a top-k heap, or both. It is the pass that
//! counts rows and records rejects. Pass "write" reads the lake again, parsing only the chosen
//! lines (a plain jsonl file in pieces on the pool, each from where one of pass "score"'s
//! batches began), and writes them with all their columns plus the ranking score.
//!
//! Memory: a chunk of batches, the k chosen rows (a heap of k entries) and, per plain jsonl
//! file, where pass "score"'s batches began (16 bytes per batch, at most 1 MiB a file:
//! [`StartPoints`]); nothing else grows with the number of rows or files.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::work::{FileDone, RejectsAt, Work};
use crate::batch::{id_column, RecordBatch, COL_ID};
use crate::error::{Error, Result};
use crate::par::{for_each_kept, for_each_ordered, map_ordered, Flow};
use crate::progress::Progress;
use crate::score::Scorer;
use crate::select::{Noise, Ranked, TopK};
use crate::sink::TableWriter;
use crate::source::{
    lake_extras, Extras, FileColumn, FileStats, InputFile, LakeReader, ReadOptions, ReadPoint, RejectWriter,
    SourceBatch, StartPoints,
};

/// What a run read, kept and chose.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    pub files: Vec<FileStats>,
    pub target_files: Vec<FileStats>,
    /// Rows that may be selected (DSIR: at least `min_words` words).
    pub eligible: u64,
    pub selected: u64,
    /// Selected rows per raw file, in file order.
    pub selected_per_file: Vec<u64>,
    pub rejects_written: u64,
    /// What an interrupted run had finished, when this one resumed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<super::work::Resumed>,
}

impl RunReport {
    pub fn read(&self) -> u64 {
        self.files.iter().map(|f| f.read).sum()
    }
    pub fn kept(&self) -> u64 {
        self.files.iter().map(|f| f.kept).sum()
    }
    pub fn rejected(&self) -> u64 {
        self.files.iter().chain(&self.target_files).map(|f| f.rejected).sum()
    }
}

/// How many to keep, and what to do when there are not more eligible rows than that.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub k: u64,
    /// DSIR's reference fails unless k is smaller than the eligible rows; syllabus says so
    /// clearly. Otherwise all eligible rows are kept.
    pub require_fewer_than_eligible: bool,
}

/// A raw lake to score.
pub struct ScoredLake<'a> {
    pub raw: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub progress: &'a Progress,
    /// A per-file column (the domain) added to the rows written.
    pub file_column: Option<FileColumn>,
    /// Keep finished files' scores here, and resume from what is kept ([`super::work`]).
    pub work: Option<&'a Work>,
}

fn score_schema(fields: &[Field]) -> SchemaRef {
    let mut all = vec![Field::new(COL_ID, DataType::Utf8, false)];
    all.extend(fields.iter().cloned());
    Arc::new(Schema::new(all))
}

fn score_batch(schema: &SchemaRef, ids: &StringArray, columns: &[ArrayRef]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids.clone())];
    arrays.extend(columns.iter().cloned());
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::arrow("building a score batch", e))
}

/// A finished file's kept rows: id, the score columns and each row's line or row.
fn part_schema(fields: &[Field]) -> SchemaRef {
    let mut all = score_schema(fields).fields().iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>();
    all.push(Field::new(COL_LOC, DataType::UInt64, false));
    Arc::new(Schema::new(all))
}

/// An Arrow IPC file written as `NAME.tmp`, fsynced and renamed when finished.
struct PartWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    inner: arrow::ipc::writer::FileWriter<std::io::BufWriter<std::fs::File>>,
}

impl PartWriter {
    fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let tmp = path.with_extension("arrow.tmp");
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let inner = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::with_capacity(1 << 20, f), &schema)
            .map_err(|e| Error::arrow("writing a part", e))?;
        Ok(PartWriter { path: path.to_path_buf(), tmp, inner })
    }

    fn write(&mut self, b: &RecordBatch) -> Result<()> {
        self.inner.write(b).map_err(|e| Error::arrow("writing a part", e))
    }

    fn finish(mut self) -> Result<()> {
        self.inner.finish().map_err(|e| Error::arrow("writing a part", e))?;
        let f = self.inner.into_inner().map_err(|e| Error::arrow("writing a part", e))?;
        let f = f.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// Hand the rows of a finished file's part to `each`; returns the next row's index.
fn replay_part(
    path: &Path,
    schema: &SchemaRef,
    file: usize,
    mut first_row: u64,
    each: &mut impl FnMut(&Scored) -> Result<()>,
) -> Result<u64> {
    if !path.exists() {
        // A file without rows (empty, or every row rejected) has no part.
        return Ok(first_row);
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(f), None)
        .map_err(|e| Error::arrow("reading a part", e))?;
    if reader.schema().fields() != schema.fields() {
        return Err(Error::InvalidArgument(format!(
            "{}: not the part this run writes; remove its work directory",
            path.display()
        )));
    }
    for b in reader {
        let b = b.map_err(|e| Error::arrow("reading a part", e))?;
        let n = b.num_columns();
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().expect("the part schema was checked");
        let locs = b.column(n - 1).as_any().downcast_ref::<UInt64Array>().expect("the part schema was checked");
        let columns = b.columns()[1..n - 1].to_vec();
        each(&Scored { ids, columns: &columns, file, locations: locs.values(), first_row, start: None })?;
        first_row += b.num_rows() as u64;
    }
    Ok(first_row)
}

/// Rows scored elsewhere (a cluster's stream), handed on one reader batch at a time in lake
/// order and kept as the parts a local pass keeps, so that [`ScoredLake::replay`] reads them
/// back. No file is marked finished: a run killed while rows arrive scores them all again.
pub(crate) struct KeptParts<'a> {
    work: &'a Work,
    schema: SchemaRef,
    part: Option<(usize, PartWriter)>,
    first_row: u64,
}

impl<'a> KeptParts<'a> {
    /// Parts for the rows of `raw`'s files with the columns `fields`; the parts an earlier
    /// run left are removed first.
    pub(crate) fn new(work: &'a Work, files: usize, fields: &[Field]) -> Result<Self> {
        work.ready()?;
        for i in 0..files {
            let p = work.part_path(i);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
                _ => {}
            }
        }
        Ok(KeptParts { work, schema: part_schema(fields), part: None, first_row: 0 })
    }

    /// The rows of one reader batch of file `file`: handed to `each`, then kept.
    pub(crate) fn push(
        &mut self,
        file: usize,
        ids: &StringArray,
        columns: &[ArrayRef],
        locations: &[u64],
        each: &mut dyn FnMut(&Scored) -> Result<()>,
    ) -> Result<()> {
        each(&Scored { ids, columns, file, locations, first_row: self.first_row, start: None })?;
        self.first_row += ids.len() as u64;
        if self.part.as_ref().is_none_or(|(f, _)| *f != file) {
            if let Some((_, w)) = self.part.take() {
                w.finish()?;
            }
            self.part = Some((file, PartWriter::create(&self.work.part_path(file), self.schema.clone())?));
        }
        let (_, w) = self.part.as_mut().expect("just set");
        let mut kept = columns.to_vec();
        kept.push(Arc::new(UInt64Array::from(locations.to_vec())));
        w.write(&score_batch(&self.schema, ids, &kept)?)
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.part.take().map_or(Ok(()), |(_, w)| w.finish())
    }
}

/// Scored rows of one batch, handed on in input order (from the lake, or from the rows a
/// resumed run kept).
pub struct Scored<'b> {
    pub ids: &'b StringArray,
    pub columns: &'b [ArrayRef],
    pub file: usize,
    /// Each row's line or row in its file.
    pub locations: &'b [u64],
    /// The first row's index among all rows.
    pub first_row: u64,
    /// Where a reader of the file can start to read these rows again ([`SourceBatch::start`]).
    pub start: Option<(u64, u64)>,
}

const COL_LOC: &str = "__loc";

impl ScoredLake<'_> {
    /// Score every row; `each` gets the rows and their score columns, in input order.
    pub(crate) fn score_pass(
        &self,
        scorer: &dyn Scorer,
        rejects: Option<&mut RejectWriter>,
        mut each: impl FnMut(&Scored) -> Result<()>,
    ) -> Result<Vec<FileStats>> {
        // The files an interrupted run finished: their rows, read back.
        let done = self.work.map(Work::files_done).unwrap_or_default();
        let mut first_row = 0u64;
        let mut stats: Vec<FileStats> = Vec::with_capacity(self.raw.len());
        let schema = part_schema(&scorer.output_fields());
        for (i, d) in done.iter().take(self.raw.len()).enumerate() {
            let work = self.work.expect("kept files come from a work directory");
            let next = replay_part(&work.part_path(i), &schema, i, first_row, &mut each)?;
            if next - first_row != d.stats.kept {
                return Err(Error::InvalidArgument(format!(
                    "{}: {} rows kept for {}, its counts say {}: remove {} to start over",
                    work.part_path(i).display(),
                    next - first_row,
                    self.raw[i].name,
                    d.stats.kept,
                    work.dir().display()
                )));
            }
            first_row = next;
            stats.push(d.clone().into_stats());
        }
        if self.work.is_some() && stats.len() == self.raw.len() {
            return Ok(stats);
        }
        // Records in the rejects file before the lake's: the target set's (none without a file).
        let rejects_base =
            rejects.as_ref().map_or(0, |r| r.count().saturating_sub(stats.iter().map(|s| s.rejected).sum::<u64>()));
        let has_rejects = rejects.is_some();
        let bar = self.progress.rows("score");
        bar.set_position(first_row);
        // The fit read the whole lake and kept it: its batches, not the lake's.
        let kept = scorer.kept_lake().filter(|_| stats.is_empty());
        let rejects_len = rejects.as_ref().map_or(0, |r| r.bytes());
        // Where a reader of the lake starts: after the files already done.
        let done_stats = stats.clone();
        let mut part: Option<(usize, PartWriter)> = None;
        let score = |b: &SourceBatch| scorer.score_rows(b);
        let sink = |b: SourceBatch, columns: Vec<ArrayRef>| -> Result<Flow> {
            let ids = id_column(&b.batch)?;
            each(&Scored {
                ids,
                columns: &columns,
                file: b.file,
                locations: &b.locations,
                first_row: b.first_row,
                start: b.start,
            })?;
            bar.inc(b.batch.num_rows() as u64);
            let Some(work) = self.work else { return Ok(Flow::Continue) };
            if part.as_ref().is_none_or(|(f, _)| *f != b.file) {
                work.ready()?;
                part = Some((b.file, PartWriter::create(&work.part_path(b.file), schema.clone())?));
            }
            let (_, w) = part.as_mut().expect("just set");
            let mut kept = columns.clone();
            kept.push(Arc::new(UInt64Array::from(b.locations.clone())));
            w.write(&score_batch(&schema, ids, &kept)?)?;
            // A tracked reader's batches carry their ends; a kept lake's only the last of each file.
            if let Some(end) = b.end.as_deref().filter(|e| e.point.done) {
                // The file is finished: its rows and counts are kept.
                let (_, w) = part.take().expect("a part for the file");
                w.finish()?;
                let before: u64 = stats.iter().map(|s| s.rejected).sum();
                let records = if has_rejects { rejects_base + before + end.stats.rejected } else { 0 };
                let rejects = RejectsAt { bytes: end.rejects_len, records };
                let d = FileDone::new(&end.stats, rejects);
                work.save_file_done(b.file, &d)?;
                stats.push(end.stats.clone());
                crate::failpoint::hit(format_args!("scored-file-{}", b.file));
            }
            Ok(Flow::Continue)
        };
        let counts = match kept {
            Some(kept) => {
                for_each_kept(kept.batches(rejects_len), score, sink)?;
                kept.stats().to_vec()
            }
            None => {
                crate::failpoint::hit(format_args!("score-reads-lake"));
                let mut reader = LakeReader::new(self.raw, self.read, Extras::none(), rejects);
                if self.work.is_some() {
                    reader = reader.tracked();
                }
                let mut reader = reader.starting_at_file(done_stats.len(), done_stats)?;
                for_each_ordered(&mut reader, score, sink)?;
                reader.into_stats()
            }
        };
        bar.finish_and_clear();
        // Without a work directory the reader's (or the fit's) counts are the run's.
        Ok(if self.work.is_some() { stats } else { counts })
    }

    /// Hand every row of a finished [`ScoredLake::score_pass`] to `each` again, in input order,
    /// from the parts kept in the work directory (`fields`: the scorer's output fields).
    pub(crate) fn replay(&self, fields: &[Field], mut each: impl FnMut(&Scored) -> Result<()>) -> Result<()> {
        let work =
            self.work.ok_or_else(|| Error::InvalidArgument("replaying a pass needs its work directory".into()))?;
        let schema = part_schema(fields);
        let mut first_row = 0u64;
        for i in 0..self.raw.len() {
            first_row = replay_part(&work.part_path(i), &schema, i, first_row, &mut each)?;
        }
        Ok(())
    }

    /// Write `id` and the score columns for every row, in input order.
    pub fn score_to(&self, scorer: &dyn Scorer, out: &Path, rejects: Option<&mut RejectWriter>) -> Result<RunReport> {
        let schema = score_schema(&scorer.output_fields());
        let mut writer = TableWriter::create(out, schema.clone())?;
        let mut eligible = 0u64;
        let files = self.score_pass(scorer, rejects, |b| {
            eligible += (0..b.ids.len()).filter(|&i| scorer.eligible(b.columns, i)).count() as u64;
            writer.write(&score_batch(&schema, b.ids, b.columns)?)
        })?;
        writer.finish()?;
        Ok(RunReport { selected_per_file: vec![0; files.len()], files, eligible, ..Default::default() })
    }

    /// Keep the k eligible rows with the greatest ranking score (plus `noise`; ties to the
    /// earlier row) and write them with all their columns and the ranking score, in input
    /// order. With `scores_out`, also write every row's scores there, at no extra pass.
    pub fn select_to(
        &self,
        scorer: &dyn Scorer,
        keep: Keep,
        mut noise: Noise,
        out: &Path,
        scores_out: Option<&Path>,
        rejects: Option<&mut RejectWriter>,
    ) -> Result<RunReport> {
        let k = keep.k;
        let mut top = TopK::new(usize::try_from(k).map_err(|_| Error::InvalidArgument("k is too large".into()))?);
        let fields = scorer.output_fields();
        let schema = score_schema(&fields);
        let mut scores_writer = scores_out.map(|p| TableWriter::create(p, schema.clone())).transpose()?;
        let mut points = StartPoints::new(self.raw);
        let files = self.score_pass(scorer, rejects, |b| {
            points.add(b.file, b.start);
            let columns = b.columns;
            if let Some(w) = scores_writer.as_mut() {
                w.write(&score_batch(&schema, b.ids, columns)?)?;
            }
            let rank = columns[0].as_any().downcast_ref::<Float64Array>().expect("the ranking score is float64");
            for (i, &score) in rank.values().iter().enumerate() {
                if scorer.eligible(columns, i) {
                    let (file, loc) = (b.file as u32, b.locations[i]);
                    top.offer(Ranked { key: noise.key(score), row: b.first_row + i as u64, score, file, loc });
                }
            }
            Ok(())
        })?;
        scorer.scoring_done();
        let eligible = top.offered();
        if keep.require_fewer_than_eligible && k >= eligible {
            return Err(Error::InvalidArgument(format!(
                "k = {k} must be smaller than the number of eligible rows ({eligible} {})",
                scorer.eligibility()
            )));
        }
        if let Some(w) = scores_writer {
            w.finish()?;
        }
        let chosen = top.into_rows();
        let selected_per_file = self.write_rows(&files, &chosen, fields[0].clone(), out, &points)?;
        Ok(RunReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() })
    }

    /// Keep rows by a score joined on `id` (`scores`, from `syllabus score` or any table) and a
    /// rule, and write them with all their columns and the score. Every row must have a score;
    /// scores of ids the lake does not have are counted in `eligible` - `read`.
    pub fn select_by_rule(
        &self,
        scores: &std::collections::HashMap<String, f64>,
        by: &str,
        rule: crate::select::rule::Rule,
        out: &Path,
        rejects: Option<&mut RejectWriter>,
    ) -> Result<RunReport> {
        let mut rows: Vec<Ranked> = Vec::new();
        let missing = |id: &str| format!("the document {id:?} has no {by:?} score in the score table");
        let (files, points) = self.join_by_id(scores, missing, rejects, |row, file, loc, &score| {
            rows.push(Ranked { key: score, row, score, file, loc });
        })?;
        let eligible = rows.len() as u64;
        let chosen = rule.apply(rows);
        let field = Field::new(by, DataType::Float64, false);
        let selected_per_file = self.write_rows(&files, &chosen, field, out, &points)?;
        Ok(RunReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() })
    }

    /// Every row of the lake with its value in `table` (by id), in lake order: `each` gets the
    /// row's index, file, line or row in it, and the value. A row the table lacks is an error
    /// naming its file and location, with `missing(id)` as the reason. Returns the files'
    /// counts and where their batches started (for [`ScoredLake::write_rows`]).
    pub fn join_by_id<V>(
        &self,
        table: &std::collections::HashMap<String, V>,
        missing: impl Fn(&str) -> String,
        rejects: Option<&mut RejectWriter>,
        mut each: impl FnMut(u64, u32, u64, &V),
    ) -> Result<(Vec<FileStats>, StartPoints)> {
        let bar = self.progress.rows("join");
        let mut reader = LakeReader::new(self.raw, self.read, Extras::none(), rejects);
        let mut points = StartPoints::new(self.raw);
        for b in reader.by_ref() {
            let b = b?;
            points.add(b.file, b.start);
            let ids = id_column(&b.batch)?;
            for i in 0..b.batch.num_rows() {
                let id = ids.value(i);
                let Some(v) = table.get(id) else {
                    return Err(self.raw[b.file].bad_record(b.locations[i], missing(id)));
                };
                each(b.first_row + i as u64, b.file as u32, b.locations[i], v);
            }
            bar.inc(b.batch.num_rows() as u64);
        }
        bar.finish_and_clear();
        Ok((reader.into_stats(), points))
    }

    /// Pass "write": the rows in `chosen` (sorted by row) with all input columns and `field`.
    /// Only the chosen lines are parsed, and each file is left after its last chosen row.
    ///
    /// A plain local jsonl file whose batches' starts an earlier pass recorded (`points`) is
    /// read in pieces, each from the start of the batch its first chosen row was in, on the
    /// pool (the pieces are written in order): reading and decoding take both cores, not one.
    /// Other files are read in order on a thread of their own while this one encodes and
    /// writes (two batches apart at most).
    pub(crate) fn write_rows(
        &self,
        stats: &[FileStats],
        chosen: &[Ranked],
        field: Field,
        out: &Path,
        points: &StartPoints,
    ) -> Result<Vec<u64>> {
        let mut extras = lake_extras(self.raw, stats, self.read)?;
        // The score column replaces a lake column of its name (re-selecting a selection).
        extras.fields.retain(|f| f.name() != field.name());
        let mut per_file = vec![Vec::new(); self.raw.len()];
        for r in chosen {
            per_file[r.file as usize].push(r.loc);
        }
        let files = |a: usize, b: usize| {
            let column =
                self.file_column.as_ref().map(|c| FileColumn { name: c.name.clone(), values: c.values[a..b].to_vec() });
            LakeReader::new(&self.raw[a..b], self.read, extras.clone(), None).with_file_column(column)
        };
        let schema = crate::batch::append_fields(&files(0, self.raw.len()).schema(), std::slice::from_ref(&field))?;
        let mut writer = TableWriter::create(out, Arc::new(schema))?;
        let mut selected = vec![0u64; stats.len()];
        let bar = self.progress.rows("write");
        let mut next = 0usize;
        let changed = |found: usize| {
            Error::InvalidArgument(format!(
                "the input changed while it was being read: {found} of {} chosen rows were found again",
                chosen.len()
            ))
        };
        // What is written must not depend on how the rows were read (in pieces or in order, a
        // run resumed or not, the batch size): the rows are cut into batches by a rule of
        // their own, every `rows` rows (unless their text is long) where the pieces end too.
        let rows = crate::batch::DEFAULT_BATCH_ROWS;
        let mut rebatch = Rebatch::new(rows, crate::source::MAX_BATCH_TEXT_BYTES);
        // Batch `b` of file `file`: it must hold exactly the next chosen rows, in order.
        let mut put = |file: usize, b: SourceBatch| -> Result<()> {
            let n = b.batch.num_rows();
            let these = chosen.get(next..next + n).unwrap_or(&[]);
            if these.len() != n
                || these.iter().zip(&b.locations).any(|(r, loc)| r.file as usize != file || r.loc != *loc)
            {
                return Err(changed(next));
            }
            next += n;
            selected[file] += n as u64;
            bar.inc(n as u64);
            let scores = Float64Array::from_iter_values(these.iter().map(|r| r.score));
            let batch = crate::batch::append_columns(&b.batch, vec![(field.clone(), Arc::new(scores))])?;
            rebatch.push(batch, &mut |b| writer.write(&b))
        };
        // At most 2 pieces a thread, and 256 MiB of pieces' spans, at once.
        let window = (2 * rayon::current_num_threads()).clamp(1, (256 << 20) / PIECE_BYTES);
        // Chosen rows in the files before each file.
        let before = per_file.iter().scan(0, |n, w| Some(std::mem::replace(n, *n + w.len())));
        let mut plan: Vec<Option<Vec<Piece>>> = (per_file.iter().zip(before).enumerate())
            .map(|(f, (wanted, before))| pieces_of(&self.raw[f], wanted, points.of(f), before, rows))
            .collect();
        let mut a = 0;
        while a < self.raw.len() {
            if let Some(pieces) = plan[a].take() {
                let read = |(start, wanted): Piece| -> Result<Vec<SourceBatch>> {
                    let point = ReadPoint { file: 0, consumed: start.0, offset: start.1, done: false };
                    let reader =
                        files(a, a + 1).with_selection(vec![wanted]).starting_at(&point, vec![FileStats::default()])?;
                    reader.collect()
                };
                map_ordered(pieces, window, read, |batches| batches.into_iter().try_for_each(|b| put(a, b)))?;
                a += 1;
                continue;
            }
            // A run of files read in order by one reader, up to the next file read in pieces.
            let b = (a + 1..self.raw.len()).find(|&f| plan[f].is_some()).unwrap_or(self.raw.len());
            for f in (a..b).filter(|&f| !per_file[f].is_empty()) {
                crate::failpoint::hit(format_args!("write-in-order-{f}"));
            }
            let reader = files(a, b).with_selection(per_file[a..b].to_vec());
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<SourceBatch>>(2);
            std::thread::scope(|scope| -> Result<()> {
                scope.spawn(move || {
                    // Stops when the writer stops taking batches (an error or a mismatch there).
                    for b in reader {
                        if tx.send(b).is_err() {
                            break;
                        }
                    }
                });
                rx.into_iter().try_for_each(|b| {
                    let b = b?;
                    put(a + b.file, b)
                })
            })?;
            a = b;
        }
        rebatch.finish(&mut |b| writer.write(&b))?;
        bar.finish_and_clear();
        if next != chosen.len() {
            return Err(changed(next));
        }
        writer.finish()?;
        Ok(selected)
    }
}

/// Chosen lines of one file, read by one reader: where it starts (lines consumed, byte offset)
/// and the lines it wants.
type Piece = ((u64, u64), Vec<u64>);

/// A piece ends at the first point past this many bytes of the file from its start (so a
/// piece reads at most this and one batch of the earlier pass).
const PIECE_BYTES: usize = 16 << 20;

/// The chosen lines `wanted` (sorted) of `file` in pieces, each starting at the last of
/// `points` before its first line, where `file` is a plain local jsonl file (read from any
/// point at the cost of a seek) and every line has a point before it; None otherwise. A piece
/// ends at each multiple of `rows` chosen rows of the whole selection (the file's first is
/// chosen row `first`), at the first point [`PIECE_BYTES`] past its start, and where a whole
/// batch of the earlier pass between two chosen lines holds none (those lines are not read
/// at all).
fn pieces_of(file: &InputFile, wanted: &[u64], points: &[(u64, u64)], first: usize, rows: usize) -> Option<Vec<Piece>> {
    if wanted.is_empty() || !StartPoints::readable_in_pieces(file) {
        return None;
    }
    let mut pieces: Vec<Piece> = Vec::new();
    let mut last = None;
    for (i, &line) in wanted.iter().enumerate() {
        // The last point with fewer lines consumed than this line's number.
        let p = points.partition_point(|q| q.0 < line).checked_sub(1)?;
        let gap = last.is_some_and(|l| p > l + 1);
        let far = |from: (u64, u64)| last != Some(p) && points[p].1 - from.1 >= PIECE_BYTES as u64;
        match pieces.last_mut() {
            Some((from, lines)) if !(first + i).is_multiple_of(rows.max(1)) && !gap && !far(*from) => lines.push(line),
            _ => pieces.push((points[p], vec![line])),
        }
        last = Some(p);
    }
    Some(pieces)
}

/// Cuts the rows written into batches where a reader of them alone would cut them (after
/// `rows` rows, or once their text reaches `text` bytes), whatever
/// batches they come in: a Parquet file's pages and row groups follow the batches it is given.
/// A batch that ends where a cut falls passes through whole; others are sliced and joined.
struct Rebatch {
    rows: usize,
    text: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_text: usize,
}

impl Rebatch {
    fn new(rows: usize, text: usize) -> Self {
        Rebatch { rows: rows.max(1), text, pending: Vec::new(), pending_rows: 0, pending_text: 0 }
    }

    fn push(&mut self, b: RecordBatch, out: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let text = crate::batch::text_column(&b)?;
        let mut from = 0;
        for i in 0..b.num_rows() {
            self.pending_rows += 1;
            self.pending_text += text.value_length(i) as usize;
            if self.pending_rows >= self.rows || self.pending_text >= self.text {
                self.pending.push(b.slice(from, i + 1 - from));
                from = i + 1;
                self.flush(out)?;
            }
        }
        if from < b.num_rows() {
            self.pending.push(b.slice(from, b.num_rows() - from));
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let batch = match self.pending.len() {
            0 => return Ok(()),
            1 => self.pending.pop().expect("one batch"),
            _ => arrow::compute::concat_batches(&self.pending[0].schema(), &self.pending)
                .map_err(|e| Error::arrow("joining the rows written", e))?,
        };
        self.pending.clear();
        (self.pending_rows, self.pending_text) = (0, 0);
        out(batch)
    }

    fn finish(mut self, out: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        self.flush(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(texts: &[String]) -> RecordBatch {
        let ids = StringArray::from_iter_values((0..texts.len()).map(|i| format!("r{i}")));
        let texts = StringArray::from_iter_values(texts);
        RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef), ("text", Arc::new(texts) as ArrayRef)]).unwrap()
    }

    proptest::proptest! {
        /// However the rows come in, they go out in the same batches: cut after `rows` rows or
        /// once their text reaches `text` bytes.
        #[test]
        fn rebatching_does_not_depend_on_the_batches_given(
            lens in proptest::collection::vec(0usize..40, 0..60),
            cuts in proptest::collection::vec(0usize..60, 0..8),
            max_rows in 1usize..9,
            max_text in 1usize..100,
        ) {
            let texts: Vec<String> = lens.iter().map(|&n| "x".repeat(n)).collect();
            let all = rows(&texts);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < texts.len()).collect();
            cuts.extend([0, texts.len()]);
            cuts.sort_unstable();
            let mut r = Rebatch::new(max_rows, max_text);
            let mut out = Vec::new();
            for w in cuts.windows(2) {
                r.push(all.slice(w[0], w[1] - w[0]), &mut |b| { out.push(b); Ok(()) }).unwrap();
            }
            r.finish(&mut |b| { out.push(b); Ok(()) }).unwrap();
            // The batches a reader would make: after max_rows rows or max_text bytes.
            let mut expect = Vec::new();
            let (mut from, mut text) = (0, 0);
            for (i, &n) in lens.iter().enumerate() {
                text += n;
                if i + 1 - from >= max_rows || text >= max_text {
                    expect.push(all.slice(from, i + 1 - from));
                    (from, text) = (i + 1, 0);
                }
            }
            if from < lens.len() {
                expect.push(all.slice(from, lens.len() - from));
            }
            proptest::prop_assert_eq!(out, expect);
        }
    }

    #[test]
    fn pieces_start_where_a_batch_began_and_end_at_multiples_and_gaps() {
        let (_dir, files) = crate::source::empty_files(&["a.jsonl", "b.jsonl.gz"]);
        let points = [(0, 0), (10, 500), (20, 1000)];
        let wanted = [2, 5, 11, 12, 19, 21, 30];
        // The file's chosen rows are rows 3.. of the selection: the first piece takes one.
        let pieces = pieces_of(&files[0], &wanted, &points, 3, 4).unwrap();
        let expect: Vec<Piece> = vec![((0, 0), vec![2]), ((0, 0), vec![5, 11, 12, 19]), ((20, 1000), vec![21, 30])];
        assert_eq!(pieces, expect);
        // No chosen line in the batch from line 11 to 20: a new piece starts after it.
        let pieces = pieces_of(&files[0], &[2, 5, 21, 30], &points, 0, 4).unwrap();
        assert_eq!(pieces, vec![((0, 0), vec![2, 5]), ((20, 1000), vec![21, 30])]);
        // A piece ends at the first point PIECE_BYTES past its start.
        let big = PIECE_BYTES as u64;
        let points = [(0, 0), (10, big / 2), (20, big), (30, big + 10)];
        let pieces = pieces_of(&files[0], &[2, 11, 21, 22, 31], &points, 0, 1024).unwrap();
        assert_eq!(pieces, vec![((0, 0), vec![2, 11]), ((20, big), vec![21, 22, 31])]);
        // A line with no point before it, a compressed file, no line: read in order.
        assert_eq!(pieces_of(&files[0], &wanted, &points[1..], 0, 4), None);
        assert_eq!(pieces_of(&files[1], &wanted, &points, 0, 4), None);
        assert_eq!(pieces_of(&files[0], &[], &points, 0, 4), None);
    }
}
