//! Sources: a data lake of jsonl / jsonl.gz / jsonl.zst / Parquet files as one stream of Arrow
//! record batches.
//!
//! Every batch starts with `id` and the text column (both non-null UTF-8); the other input
//! columns follow when asked for ([`Extras`]). Inputs are expanded once into an ordered list of
//! files ([`expand_inputs`]): files in the order given, directories walked recursively and
//! globs expanded, each sorted by path, so the row order of a lake is deterministic.
//!
//! Memory: one file is open at a time and a batch holds at most `batch_rows` rows or
//! [`MAX_BATCH_TEXT_BYTES`] of text, whatever the size of the lake.
//!
//! Resume: a [`LakeReader::tracked`] reader tells after each batch where it stands
//! ([`ReadPoint`]: file, lines or rows consumed, decompressed byte offset) and each file's
//! counts; [`LakeReader::starting_at`] starts a new reader there (a plain file seeks, a
//! compressed one is decompressed up to the offset, Parquet skips whole row groups), so a
//! stage killed part way reads on from its last saved point.
//!
//! Bad records follow [`BadRecordPolicy`]: `Fail` stops with an error naming the file and the
//! line (jsonl, 1-based) or row (Parquet, 0-based); `Skip` counts each one, writes it to the
//! rejects file when one is given and goes on. Per file, `read = kept + rejected + removed`
//! always holds (`removed`: rows an earlier stage left out, [`Exclusions`]).

mod codec;
mod flat;
mod inspect;
mod jsonl;
mod parquet;
mod rejects;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use indexmap::IndexSet;

pub use self::codec::Codec;
pub use self::inspect::{inspect_file, FileInfo};
pub use self::jsonl::JsonlDecoder;
pub(crate) use self::jsonl::{read_line_bounded, Line};
pub use self::rejects::RejectWriter;
use crate::batch::{RecordBatch, COL_ID};
use crate::error::{Error, Result};

/// At most this much text goes into one batch (a batch may exceed it by one document).
pub const MAX_BATCH_TEXT_BYTES: usize = 64 << 20;

/// The default limit on one jsonl record (a line): 256 MiB, far above real documents. A
/// longer line is a bad record (its bytes past the limit are never held in memory).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 256 << 20;

/// The kind of an input file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl(Codec),
    Parquet,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if name.ends_with(".jsonl") || name.ends_with(".json") {
            Some(Format::Jsonl(Codec::Plain))
        } else if name.ends_with(".jsonl.gz") || name.ends_with(".json.gz") {
            Some(Format::Jsonl(Codec::Gzip))
        } else if name.ends_with(".jsonl.zst") || name.ends_with(".json.zst") {
            Some(Format::Jsonl(Codec::Zstd))
        } else {
            None
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Jsonl(Codec::Plain) => "jsonl",
            Format::Jsonl(Codec::Gzip) => "jsonl.gz",
            Format::Jsonl(Codec::Zstd) => "jsonl.zst",
            Format::Parquet => "parquet",
        }
    }
}

/// One input file of a lake.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Where the bytes are.
    pub path: PathBuf,
    /// How the file is named in ids, errors and summaries (`-` for stdin).
    pub name: String,
    pub format: Format,
    /// Keeps a spooled copy of stdin alive.
    _spool: Option<Arc<tempfile::TempPath>>,
}

impl InputFile {
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let format = Format::from_path(&path).ok_or_else(|| Error::UnsupportedFormat { path: path.clone() })?;
        // A URL is named without what could be a credential (a presigned query, userinfo).
        let name = match path.to_str() {
            Some(s) if crate::store::is_url(s) => crate::store::redact(s),
            _ => path.display().to_string(),
        };
        Ok(InputFile { name, path, format, _spool: None })
    }

    /// Where a row is, from its location in [`SourceBatch::locations`]: a line (jsonl) or a
    /// row (Parquet).
    pub fn location(&self, loc: u64) -> crate::error::Location {
        match self.format {
            Format::Parquet => crate::error::Location::Row(loc),
            Format::Jsonl(_) => crate::error::Location::Line(loc),
        }
    }

    /// The error for a row that a later stage cannot use (a missing or malformed column),
    /// naming this file and the row's line or row.
    pub fn bad_record(&self, loc: u64, reason: String) -> Error {
        Error::BadRecord { file: self.path.clone(), location: self.location(loc), offset: None, reason }
    }
}

/// Expand command-line inputs into an ordered, de-duplicated list of files.
///
/// `-` reads jsonl from stdin (spooled to a temporary file, since stages make several passes).
pub fn expand_inputs<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<InputFile>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |f: InputFile, out: &mut Vec<InputFile>| {
        if f.name == "-" || seen.insert(f.path.clone()) {
            out.push(f);
        }
    };
    for input in inputs {
        let input = input.as_ref();
        if input == "-" {
            push(spool_stdin()?, &mut out);
            continue;
        }
        if crate::store::is_remote(Path::new(input)) {
            for f in expand_remote(input)? {
                push(InputFile::new(f)?, &mut out);
            }
            continue;
        }
        let local = crate::store::local(Path::new(input));
        let path: &Path = &local;
        let input = path.to_str().unwrap_or(input);
        if path.is_file() {
            push(InputFile::new(path)?, &mut out);
        } else if path.is_dir() {
            // Every file below, sorted; the lake's formats kept.
            let files: Vec<PathBuf> =
                crate::store::list_files(path)?.into_iter().filter(|p| Format::from_path(p).is_some()).collect();
            if files.is_empty() {
                return Err(Error::NoInputFiles { what: input.to_string() });
            }
            for f in files {
                push(InputFile::new(f)?, &mut out);
            }
        } else if input.contains(['*', '?', '[']) {
            let paths = glob::glob(input).map_err(|e| Error::InvalidArgument(format!("{input}: bad glob: {e}")))?;
            let mut files = Vec::new();
            for p in paths {
                let p = p.map_err(|e| {
                    let path = e.path().to_path_buf();
                    Error::io(path, e.into())
                })?;
                if p.is_file() && Format::from_path(&p).is_some() {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(Error::NoInputFiles { what: input.to_string() });
            }
            for f in files {
                push(InputFile::new(f)?, &mut out);
            }
        } else {
            return Err(Error::NotFound { path: path.to_path_buf() });
        }
    }
    if out.is_empty() {
        return Err(Error::NoInputFiles { what: "(no inputs given)".into() });
    }
    Ok(out)
}

/// A store URL as inputs: the object, the objects of a prefix (a "directory"), or those a glob
/// matches; listed and sorted as a local directory of the same files would be.
fn expand_remote(input: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(input);
    // A URL the store cannot address (a query string, no bucket) is refused before any glob.
    crate::store::remote(path)?;
    let known = |p: &PathBuf| Format::from_path(p).is_some();
    let files: Vec<PathBuf> = if input.contains(['*', '?', '[']) {
        crate::store::glob(input)?.into_iter().filter(known).collect()
    } else {
        // A prefix first (some S3-compatible servers answer a HEAD on a "directory" with an
        // error rather than 404), then the object itself; HTTP has no listing: one file.
        let files: Vec<PathBuf> = if crate::store::is_http(path) {
            Vec::new()
        } else {
            crate::store::list_files(&PathBuf::from(format!("{}/", input.trim_end_matches('/'))))?
        };
        if files.is_empty() {
            if crate::store::stat(path)?.is_some() {
                return Ok(vec![path.to_path_buf()]);
            }
            return Err(Error::NotFound { path: PathBuf::from(crate::store::redact(input)) });
        }
        files.into_iter().filter(known).collect()
    };
    if files.is_empty() {
        return Err(Error::NoInputFiles { what: crate::store::redact(input) });
    }
    Ok(files)
}

fn spool_stdin() -> Result<InputFile> {
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| Error::io("(temporary file)", e))?;
    let mut stdin = std::io::stdin().lock();
    std::io::copy(&mut stdin, &mut tmp).map_err(|e| Error::io("-", e))?;
    let path = tmp.into_temp_path();
    Ok(InputFile {
        path: path.to_path_buf(),
        name: "-".into(),
        format: Format::Jsonl(Codec::Plain),
        _spool: Some(Arc::new(path)),
    })
}

/// What to do with a record that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BadRecordPolicy {
    /// Stop with an error naming the file and line or row.
    #[default]
    Fail,
    /// Count it, record it in the rejects file, go on.
    Skip,
}

/// Which input columns besides id and text a source materialises.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub fields: Vec<Field>,
}

impl Extras {
    pub fn none() -> Self {
        Extras::default()
    }
}

/// How to read a lake.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub text_field: String,
    pub id_field: String,
    pub batch_rows: usize,
    pub on_bad_record: BadRecordPolicy,
    /// The longest jsonl line (record) read; longer ones are bad records.
    pub max_record_bytes: usize,
    /// Read the text column. When false (tables without text, such as the labelled features
    /// a proxy mlp trains on), the text column is not read at all and every row's text is
    /// empty.
    pub read_text: bool,
    /// Rows an earlier stage removed (`[dedup]`, `[decontaminate]`): every reader of these
    /// options skips them and counts them as `removed`.
    pub exclude: Option<Arc<Exclusions>>,
}

/// Rows to leave out of every read: per file (by path), the sorted locations (line or row, as
/// in [`SourceBatch::locations`]). Memory: 8 bytes per removed row.
#[derive(Default, PartialEq, Eq)]
pub struct Exclusions {
    per_file: std::collections::HashMap<PathBuf, Vec<u64>>,
}

impl Exclusions {
    /// Leave out `locations` (sorted) of the file at `path`.
    pub fn insert(&mut self, path: PathBuf, locations: Vec<u64>) {
        debug_assert!(locations.windows(2).all(|w| w[0] < w[1]));
        if !locations.is_empty() {
            self.per_file.insert(path, locations);
        }
    }

    /// The locations left out of the file at `path`.
    pub fn of(&self, path: &Path) -> &[u64] {
        self.per_file.get(path).map_or(&[], Vec::as_slice)
    }

    /// Rows left out in all.
    pub fn len(&self) -> u64 {
        self.per_file.values().map(|v| v.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.per_file.is_empty()
    }

    /// Both sets' rows: `self`'s and `other`'s.
    pub fn union(mut self, other: &Exclusions) -> Exclusions {
        for (p, locs) in &other.per_file {
            let mine = self.per_file.entry(p.clone()).or_default();
            mine.extend_from_slice(locs);
            mine.sort_unstable();
            mine.dedup();
        }
        self
    }
}

impl std::fmt::Debug for Exclusions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exclusions({} rows in {} files)", self.len(), self.per_file.len())
    }
}

impl ReadOptions {
    /// Whether `name` is the id or text field (or syllabus's own id column): never an extra.
    pub fn is_id_or_text(&self, name: &str) -> bool {
        name == self.text_field || name == self.id_field || name == COL_ID
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            text_field: "text".into(),
            id_field: "id".into(),
            batch_rows: crate::batch::DEFAULT_BATCH_ROWS,
            on_bad_record: BadRecordPolicy::Fail,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            read_text: true,
            exclude: None,
        }
    }
}

/// Counts for one input file. `read = kept + rejected + removed`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileStats {
    pub file: String,
    pub format: String,
    pub read: u64,
    pub kept: u64,
    pub rejected: u64,
    /// Rows an earlier stage removed (duplicates, contaminated rows: [`Exclusions`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub removed: u64,
    /// Top-level jsonl fields other than id and text, in order of first appearance.
    #[serde(skip)]
    pub fields_seen: IndexSet<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A batch, the file it came from and where in that file each row is.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub batch: RecordBatch,
    /// Index into the reader's file list.
    pub file: usize,
    /// Per row: its line (jsonl, 1-based) or row (Parquet, 0-based) in the file.
    pub locations: Vec<u64>,
    /// Index of the batch's first row among all rows this reader has returned.
    pub first_row: u64,
    /// Where the reader stood after this batch, when it tracks that ([`LakeReader::tracked`]).
    pub end: Option<Box<BatchEnd>>,
    /// Where the reader stood in the file before this batch (lines or rows consumed, the
    /// decompressed byte offset): a reader started there reads this batch's rows again
    /// ([`LakeReader::starting_at`]); None where not known (rows read back from a part).
    pub start: Option<(u64, u64)>,
}

/// Per file, points a reader can start at ([`SourceBatch::start`]) in file order: where the
/// batches of an earlier pass began, so that a later pass can read pieces of a file apart
/// ([`crate::passes::scored::ScoredLake::write_rows`]). Kept only for files that can be read
/// from any point at the cost of a seek (plain local jsonl, [`StartPoints::readable_in_pieces`]):
/// one per batch (16 bytes per 1,024 rows), at most [`MAX_START_POINTS`] per file (past that,
/// every other one is dropped, and only every second one kept from then on).
#[derive(Debug, Default, Clone)]
pub struct StartPoints(Vec<FilePoints>);

/// The most start points kept for one file (1 MiB).
pub const MAX_START_POINTS: usize = 1 << 16;

#[derive(Debug, Default, Clone)]
struct FilePoints {
    wanted: bool,
    points: Vec<(u64, u64)>,
    /// Every `step`-th batch's start is kept; `seen` batches were offered.
    step: u64,
    seen: u64,
}

impl StartPoints {
    /// Points for the files of `files` that can be read in pieces.
    pub fn new(files: &[InputFile]) -> Self {
        let file = |f: &InputFile| FilePoints { wanted: Self::readable_in_pieces(f), step: 1, ..Default::default() };
        StartPoints(files.iter().map(file).collect())
    }

    /// A plain local jsonl file: a reader can start anywhere in it with one seek.
    pub fn readable_in_pieces(file: &InputFile) -> bool {
        file.format == Format::Jsonl(Codec::Plain) && !crate::store::is_remote(&file.path)
    }

    /// Record the start of a batch of file `file`, if known (batches come in file order).
    pub fn add(&mut self, file: usize, start: Option<(u64, u64)>) {
        let (Some(f), Some(p)) = (self.0.get_mut(file).filter(|f| f.wanted), start) else { return };
        f.seen += 1;
        if (f.seen - 1) % f.step != 0 || f.points.last().is_some_and(|last| last.0 >= p.0) {
            return;
        }
        f.points.push(p);
        if f.points.len() >= MAX_START_POINTS {
            let mut i = 0usize;
            f.points.retain(|_| {
                i += 1;
                !i.is_multiple_of(2)
            });
            f.step *= 2;
        }
    }

    /// The points of file `file`, by lines or rows consumed.
    pub fn of(&self, file: usize) -> &[(u64, u64)] {
        self.0.get(file).map_or(&[], |f| f.points.as_slice())
    }
}

/// Where a reader stands between two batches: a new reader started there
/// ([`LakeReader::starting_at`]) returns exactly the rows that would have followed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadPoint {
    /// The file being read.
    pub file: usize,
    /// Lines (jsonl) or rows (Parquet) of it consumed, bad and blank ones included.
    pub consumed: u64,
    /// jsonl: the byte offset in the decompressed file where the next line starts.
    pub offset: u64,
    /// The file is finished: the next row comes from the next file.
    pub done: bool,
}

/// What a tracking reader knows after a batch.
#[derive(Debug, Clone)]
pub struct BatchEnd {
    pub point: ReadPoint,
    /// The counts of the batch's file so far.
    pub stats: FileStats,
    /// Bytes of the rejects file written so far (every record is flushed as written).
    pub rejects_len: u64,
}

/// The rows of a whole lake as one reader pass returned them, without their columns but
/// `id`: each batch's file, first row and locations, and the pass's counts. A fit that read
/// every row keeps it, so that the scoring pass after it need not read the lake again
/// ([`crate::score::Scorer::kept_lake`]). Memory: an id and 8 bytes per row (the fit that
/// keeps it bounds it).
#[derive(Debug, Default)]
pub struct KeptLake {
    batches: Vec<SourceBatch>,
    rows: u64,
    bytes: usize,
    stats: Vec<FileStats>,
}

impl KeptLake {
    /// Keep batch `b` (its id column and locations); `b` must follow the rows kept so far.
    pub fn push(&mut self, b: &SourceBatch) -> Result<()> {
        debug_assert_eq!(b.first_row, self.rows);
        let ids = b.batch.project(&[0]).map_err(|e| Error::arrow("keeping a batch's ids", e))?;
        self.bytes += ids.get_array_memory_size() + 8 * b.locations.len();
        self.rows += ids.num_rows() as u64;
        self.batches.push(SourceBatch {
            batch: ids,
            file: b.file,
            locations: b.locations.clone(),
            first_row: b.first_row,
            end: None,
            start: b.start,
        });
        Ok(())
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The reader's counts at the end of its pass; false (and none are kept) when they do not
    /// add up to the rows kept.
    pub fn finish(&mut self, stats: Vec<FileStats>) -> bool {
        if stats.iter().map(|s| s.kept).sum::<u64>() != self.rows {
            return false;
        }
        self.stats = stats;
        true
    }

    /// The counts of every file, as the pass that read them left them.
    pub fn stats(&self) -> &[FileStats] {
        &self.stats
    }

    /// The batches as a tracked reader ([`LakeReader::tracked`]) returns them: each file's,
    /// then an empty one whose end says done, with the file's counts (`rejects_len`: the
    /// rejects file's length throughout, no record of the lake being rejected). Only that last
    /// batch of a file carries an end.
    pub fn batches(&self, rejects_len: u64) -> impl Iterator<Item = SourceBatch> + '_ {
        let schema = self.batches.first().map_or_else(
            || Arc::new(Schema::new(vec![Field::new(COL_ID, DataType::Utf8, false)])),
            |b| b.batch.schema(),
        );
        let (mut next, mut first_row) = (0, 0);
        self.stats.iter().enumerate().flat_map(move |(file, stats)| {
            let start = next;
            while self.batches.get(next).is_some_and(|b| b.file == file) {
                let b = &self.batches[next];
                first_row = b.first_row + b.batch.num_rows() as u64;
                next += 1;
            }
            // A tracked reader's end of file, where a consumer reads `done` and the counts (the
            // position in the file is not kept: a later pass starts from the lake).
            let point = ReadPoint { file, consumed: 0, offset: 0, done: true };
            let end = Some(Box::new(BatchEnd { point, stats: stats.clone(), rejects_len }));
            let batch = RecordBatch::new_empty(schema.clone());
            let done = SourceBatch { batch, file, locations: Vec::new(), first_row, end, start: None };
            self.batches[start..next].iter().cloned().chain(std::iter::once(done))
        })
    }
}

impl SourceBatch {
    /// A UTF-8 column by name (extras are read as UTF-8), if the batch has it.
    pub fn utf8_column(&self, name: &str) -> Option<&arrow::array::StringArray> {
        let i = self.batch.schema().index_of(name).ok()?;
        self.batch.column(i).as_any().downcast_ref::<arrow::array::StringArray>()
    }
}

/// Reads one file into batches (a jsonl or a Parquet file), with each row's location.
trait FileReader: Send {
    /// Lines or rows consumed, and (jsonl) the decompressed byte offset reached.
    fn position(&self) -> (u64, u64);
    fn next_batch(&mut self, ctx: &mut ReadContext<'_>) -> Result<Option<(RecordBatch, Vec<u64>)>>;
}

/// What a file reader needs besides its own state.
struct ReadContext<'a> {
    opts: &'a ReadOptions,
    extras: &'a Extras,
    schema: &'a SchemaRef,
    file: &'a InputFile,
    stats: &'a mut FileStats,
    rejects: Option<&'a mut RejectWriter>,
    /// Only these locations (sorted), when the reader was given a selection.
    wanted: Option<&'a [u64]>,
}

impl ReadContext<'_> {
    /// Handle a bad record by the policy: an error in `Fail` mode, a count (and a line in the
    /// rejects file) in `Skip` mode.
    fn reject(
        &mut self,
        location: crate::error::Location,
        offset: Option<u64>,
        reason: String,
        raw: &[u8],
    ) -> Result<()> {
        match self.opts.on_bad_record {
            BadRecordPolicy::Fail => Err(Error::BadRecord { file: self.file.path.clone(), location, offset, reason }),
            BadRecordPolicy::Skip => {
                self.stats.rejected += 1;
                if let Some(r) = self.rejects.as_deref_mut() {
                    r.record(&self.file.name, location, offset, &reason, raw)?;
                }
                Ok(())
            }
        }
    }
}

/// The output schema of a source: id, text, then the extras.
pub fn source_schema(opts: &ReadOptions, extras: &Extras) -> SchemaRef {
    let mut fields =
        vec![Field::new(COL_ID, DataType::Utf8, false), Field::new(&opts.text_field, DataType::Utf8, false)];
    fields.extend(extras.fields.iter().cloned());
    Arc::new(Schema::new(fields))
}

/// A lake as one stream of batches, file after file.
pub struct LakeReader<'a> {
    files: &'a [InputFile],
    opts: &'a ReadOptions,
    extras: Extras,
    /// What the file readers build.
    schema: SchemaRef,
    /// What this reader returns: `schema` and the file column, if any.
    out_schema: SchemaRef,
    next_file: usize,
    current: Option<(usize, Box<dyn FileReader + 'a>)>,
    stats: Vec<FileStats>,
    rejects: Option<&'a mut RejectWriter>,
    selection: Option<Vec<Vec<u64>>>,
    file_column: Option<FileColumn>,
    rows_out: u64,
    failed: bool,
    /// Batches carry their [`BatchEnd`], and every file ends with an empty batch.
    tracked: bool,
}

/// A column whose value is set per input file (the domain of a file, say).
#[derive(Debug, Clone)]
pub struct FileColumn {
    pub name: String,
    /// One value per file of the lake.
    pub values: Vec<String>,
}

impl<'a> LakeReader<'a> {
    pub fn new(
        files: &'a [InputFile],
        opts: &'a ReadOptions,
        extras: Extras,
        rejects: Option<&'a mut RejectWriter>,
    ) -> Self {
        let stats = files
            .iter()
            .map(|f| FileStats { file: f.name.clone(), format: f.format.name().to_string(), ..Default::default() })
            .collect();
        let schema = source_schema(opts, &extras);
        LakeReader {
            files,
            opts,
            extras,
            out_schema: schema.clone(),
            schema,
            next_file: 0,
            current: None,
            stats,
            rejects,
            selection: None,
            file_column: None,
            rows_out: 0,
            failed: false,
            tracked: false,
        }
    }

    /// Track positions: every batch carries its [`BatchEnd`], and each file (also one with no
    /// rows) ends with an empty batch whose end says `done` and holds the file's final counts.
    /// A consumer that saves the last end (and the counts of earlier files) can later start a
    /// reader there with [`LakeReader::starting_at`].
    pub fn tracked(mut self) -> Self {
        self.tracked = true;
        self
    }

    /// Start where an earlier reader of the same files stood after a batch: `point` is that
    /// batch's end, `stats` the counts of files `0..=point.file` then (`stats[point.file]` is
    /// the end's own counts). Row numbering (`first_row`) continues from the rows kept before.
    pub fn starting_at(mut self, point: &ReadPoint, stats: Vec<FileStats>) -> Result<Self> {
        if point.file >= self.files.len() || stats.len() != point.file + 1 {
            return Err(Error::InvalidArgument(format!(
                "a resume point at file {} of {} with counts of {} files",
                point.file,
                self.files.len(),
                stats.len()
            )));
        }
        self.rows_out = stats.iter().map(|s| s.kept).sum();
        for (mine, theirs) in self.stats.iter_mut().zip(stats) {
            *mine =
                FileStats { file: std::mem::take(&mut mine.file), format: std::mem::take(&mut mine.format), ..theirs };
        }
        self.next_file = point.file + 1;
        if !point.done {
            let file = &self.files[point.file];
            let reader: Box<dyn FileReader + 'a> = match file.format {
                Format::Jsonl(codec) => {
                    Box::new(jsonl::JsonlFileReader::open_at(file, codec, point.consumed, point.offset)?)
                }
                Format::Parquet => Box::new(parquet::ParquetFileReader::open_at(file, self.opts, point.consumed)?),
            };
            self.current = Some((point.file, reader));
        }
        Ok(self)
    }

    /// Start at the beginning of file `file`, after files `0..file` whose counts are `before`.
    pub fn starting_at_file(self, file: usize, mut before: Vec<FileStats>) -> Result<Self> {
        if file == 0 && before.is_empty() {
            return Ok(self);
        }
        before.push(FileStats::default());
        self.starting_at(&ReadPoint { file, consumed: 0, offset: 0, done: false }, before)
    }

    fn end_of(&self, file: usize, position: Option<(u64, u64)>) -> Option<Box<BatchEnd>> {
        self.tracked.then(|| {
            let (consumed, offset) = position.unwrap_or((0, 0));
            Box::new(BatchEnd {
                point: ReadPoint { file, consumed, offset, done: position.is_none() },
                stats: self.stats[file].clone(),
                rejects_len: self.rejects.as_ref().map_or(0, |r| r.bytes()),
            })
        })
    }

    /// Read only the given rows: per file, the sorted locations (line or row, as in
    /// [`SourceBatch::locations`]) of rows an earlier pass kept. Lines of other rows are not
    /// parsed, and a file is left as soon as its last wanted row is read.
    pub fn with_selection(mut self, per_file: Vec<Vec<u64>>) -> Self {
        debug_assert_eq!(per_file.len(), self.files.len());
        self.selection = Some(per_file);
        self
    }

    /// Append `column` to every batch, with the value of the batch's file.
    pub fn with_file_column(mut self, column: Option<FileColumn>) -> Self {
        if let Some(c) = &column {
            debug_assert_eq!(c.values.len(), self.files.len());
            // The per-file column replaces a lake column of the same name: that one is not
            // decoded at all.
            self.extras.fields.retain(|f| *f.name() != c.name);
            self.schema = source_schema(self.opts, &self.extras);
            let field = Field::new(&c.name, DataType::Utf8, false);
            // Only the id or text column can collide now; that is an error at the first batch.
            self.out_schema = Arc::new(
                crate::batch::append_fields(&self.schema, std::slice::from_ref(&field))
                    .unwrap_or_else(|_| self.schema.as_ref().clone()),
            );
        }
        self.file_column = column;
        self
    }

    pub fn schema(&self) -> SchemaRef {
        self.out_schema.clone()
    }

    pub fn into_stats(self) -> Vec<FileStats> {
        self.stats
    }

    /// Stop reading file `file` (if it is the current one) and go on with the next.
    pub fn skip_rest_of_file(&mut self, file: usize) {
        if matches!(self.current, Some((i, _)) if i == file) {
            self.current = None;
        }
    }

    fn open(&self, i: usize) -> Result<Box<dyn FileReader + 'a>> {
        let file = &self.files[i];
        // A jsonl object in a store: start the next one's request now, so it streams in while
        // this one is read (two objects in flight; local files are not touched).
        if let Some(next) = self.files.get(i + 1).filter(|n| matches!(n.format, Format::Jsonl(_))) {
            crate::store::prefetch(&next.path);
        }
        Ok(match file.format {
            Format::Jsonl(codec) => Box::new(jsonl::JsonlFileReader::open(file, codec)?),
            Format::Parquet => Box::new(parquet::ParquetFileReader::open(file, self.opts)?),
        })
    }

    fn next_inner(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            if self.current.is_none() {
                if self.next_file >= self.files.len() {
                    return Ok(None);
                }
                let i = self.next_file;
                self.next_file += 1;
                if self.selection.as_ref().is_some_and(|s| s[i].is_empty()) {
                    continue;
                }
                self.current = Some((i, self.open(i)?));
            }
            let (i, reader) = self.current.as_mut().expect("current reader was just set");
            let i = *i;
            let mut ctx = ReadContext {
                opts: self.opts,
                extras: &self.extras,
                schema: &self.schema,
                file: &self.files[i],
                stats: &mut self.stats[i],
                rejects: self.rejects.as_deref_mut(),
                wanted: self.selection.as_ref().map(|s| s[i].as_slice()),
            };
            let start = reader.position();
            let next = reader.next_batch(&mut ctx)?;
            let position = reader.position();
            let next = match (next, &self.opts.exclude) {
                (Some((batch, locations)), Some(ex)) => {
                    let (batch, locations) =
                        exclude_rows(batch, locations, ex.of(&self.files[i].path), &mut self.stats[i])?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    Some((batch, locations))
                }
                (next, _) => next,
            };
            match next {
                Some((mut batch, locations)) => {
                    if let Some(c) = &self.file_column {
                        let value = arrow::array::StringArray::from(vec![c.values[i].as_str(); batch.num_rows()]);
                        let field = Field::new(&c.name, DataType::Utf8, false);
                        batch = crate::batch::append_columns(&batch, vec![(field, Arc::new(value))])?;
                    }
                    let first_row = self.rows_out;
                    self.rows_out += batch.num_rows() as u64;
                    let end = self.end_of(i, Some(position));
                    crate::failpoint::stall(format_args!("batch-{}", self.rows_out));
                    let start = Some(start);
                    return Ok(Some(SourceBatch { batch, file: i, locations, first_row, end, start }));
                }
                None => {
                    self.current = None;
                    if self.tracked {
                        let batch = RecordBatch::new_empty(self.out_schema.clone());
                        let end = self.end_of(i, None);
                        return Ok(Some(SourceBatch {
                            batch,
                            file: i,
                            locations: Vec::new(),
                            first_row: self.rows_out,
                            end,
                            start: None,
                        }));
                    }
                }
            }
        }
    }
}

/// `batch` without the rows at `excluded` (sorted locations), counted as removed.
fn exclude_rows(
    batch: RecordBatch,
    locations: Vec<u64>,
    excluded: &[u64],
    stats: &mut FileStats,
) -> Result<(RecordBatch, Vec<u64>)> {
    let (Some(&first), Some(&last)) = (locations.first(), locations.last()) else {
        return Ok((batch, locations));
    };
    let lo = excluded.partition_point(|&l| l < first);
    let hi = excluded.partition_point(|&l| l <= last);
    let excluded = &excluded[lo..hi];
    if excluded.is_empty() {
        return Ok((batch, locations));
    }
    let keep: Vec<bool> = locations.iter().map(|l| excluded.binary_search(l).is_err()).collect();
    let removed = keep.iter().filter(|k| !**k).count() as u64;
    let mask = arrow::array::BooleanArray::from(keep.clone());
    let batch = arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| Error::arrow("removing rows", e))?;
    let locations = locations.into_iter().zip(keep).filter_map(|(l, k)| k.then_some(l)).collect();
    stats.kept -= removed;
    stats.removed += removed;
    Ok((batch, locations))
}

impl Iterator for LakeReader<'_> {
    type Item = Result<SourceBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_inner().transpose();
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }
}

/// Read a Parquet file's footer and schema: a clean error naming the file when it is not a
/// readable Parquet file (before it is handed to a reader that might not say so as clearly).
pub fn check_parquet(file: &InputFile) -> Result<()> {
    parquet::file_schema(file).map(|_| ())
}

/// The extra columns of a lake, with one type each: a Parquet column keeps its type where all
/// files agree; jsonl fields are UTF-8 (strings as they are, other values as JSON text); a
/// column whose types differ between files becomes UTF-8.
///
/// `stats` are the per-file counts of a pass that read every jsonl row (they carry the field
/// names seen), so no field is lost whatever row it first appears in.
pub fn lake_extras(files: &[InputFile], stats: &[FileStats], opts: &ReadOptions) -> Result<Extras> {
    let mut fields: indexmap::IndexMap<String, (DataType, bool)> = indexmap::IndexMap::new();
    for (file, st) in files.iter().zip(stats) {
        let file_fields: Vec<(String, DataType)> = match file.format {
            Format::Parquet => {
                parquet::file_schema(file)?.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
            }
            Format::Jsonl(_) => st.fields_seen.iter().map(|n| (n.clone(), DataType::Utf8)).collect(),
        };
        for (name, ty) in file_fields {
            if opts.is_id_or_text(&name) {
                continue;
            }
            match fields.get_mut(&name) {
                None => {
                    fields.insert(name, (ty, false));
                }
                Some((t, conflict)) => {
                    if *t != ty {
                        *conflict = true;
                    }
                }
            }
        }
    }
    let fields = fields
        .into_iter()
        .map(|(name, (ty, conflict))| Field::new(name, if conflict { DataType::Utf8 } else { ty }, true))
        .collect();
    Ok(Extras { fields })
}

/// Empty input files of these names in a new directory (kept while the first value lives),
/// as [`expand_inputs`] lists them: for tests that need files of given formats.
#[cfg(test)]
pub(crate) fn empty_files(names: &[&str]) -> (tempfile::TempDir, Vec<InputFile>) {
    let dir = tempfile::tempdir().unwrap();
    for f in names {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    let files = expand_inputs(&[dir.path().to_str().unwrap()]).unwrap();
    (dir, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_points_are_kept_for_plain_local_jsonl_and_thinned_past_the_limit() {
        let (_dir, files) = empty_files(&["a.jsonl", "b.jsonl.zst"]);
        let mut points = StartPoints::new(&files);
        for i in 0..3 * MAX_START_POINTS as u64 {
            points.add(0, Some((i * 10, i * 100)));
            points.add(1, Some((i, i)));
            points.add(0, None);
        }
        let kept = points.of(0);
        assert!((MAX_START_POINTS / 2..MAX_START_POINTS).contains(&kept.len()), "{}", kept.len());
        // Evenly spaced from the file's start: every fourth batch's.
        assert_eq!(kept[0], (0, 0));
        assert!(kept.windows(2).all(|w| w[1].0 - w[0].0 == 40 && w[1].1 - w[0].1 == 400));
        assert!(points.of(1).is_empty() && points.of(2).is_empty());
    }

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::from_path(Path::new("a/b.jsonl")), Some(Format::Jsonl(Codec::Plain)));
        assert_eq!(Format::from_path(Path::new("b.JSONL.ZST")), Some(Format::Jsonl(Codec::Zstd)));
        assert_eq!(Format::from_path(Path::new("b.jsonl.gz")), Some(Format::Jsonl(Codec::Gzip)));
        assert_eq!(Format::from_path(Path::new("b.parquet")), Some(Format::Parquet));
        assert_eq!(Format::from_path(Path::new("b.csv")), None);
    }
}
