//! Exact and near-duplicate removal: `syllabus score dedup`, `select dedup` and a pipeline's
//! `[dedup]` stage.
//!
//! Three steps, a map over files and a small reduce:
//! 1. **Signatures** (a map over files, resumable per file): for each row, its exact key (a
//!    128-bit hash of the normalized text: Unicode NFC, Python's lowercase, whitespace runs to
//!    one space, trimmed; [`minhash::exact_key`]) and its `bands` LSH keys, each a 64-bit hash
//!    of `rows` MinHash values over the row's word n-grams ([`minhash`]). They are kept per
//!    file in the run's work directory, so a killed run resumes at the file it was on.
//! 2. **The join** (an external sort, [`sort`]): `(band key, row)` and `(exact key, row)`
//!    entries are sorted under `--memory-limit` (sorted runs spilled to disk beyond it) and
//!    merged; rows that share a key are candidate pairs, linked to the group's first row.
//! 3. **Components** ([`components`]): union-find over the rows in candidate pairs only; a
//!    cluster's first row in lake order is its id and the one row kept.
//!
//! Per row: `dup_exact` (the id of the first row with the same normalized text), `dup_cluster`
//! (the id of its cluster's first row), `dup_count` (rows in its cluster) and `dup_keep` (true
//! for the first row of each cluster). Natively, exact copies are always in one cluster (also
//! documents without words); with `--compat datatrove` clusters are the LSH components alone,
//! as datatrove's are ([`datatrove`]), and `dup_exact` is reported beside them.
//!
//! Memory: the sort buffers (half of `--memory-limit`), batches in flight, and, for the rows
//! that have a duplicate only, their cluster (about 50 bytes per such row); with
//! `--min-jaccard` also the signature of every row that shares a band key (4 bytes per value,
//! 448 for 112, and its entry in a set); nothing else grows with the lake. Disk: per row its
//! id and keys in the work directory (`16 + 8 x bands` bytes plus the id; `--compat datatrove`
//! keeps the whole signature, `8 x bands x hashes_per_band`; `--min-jaccard` adds 4 bytes per
//! value), the spilled runs, and with `--min-jaccard` the band groups.

pub mod components;
pub mod datatrove;
#[rustfmt::skip]
mod datatrove_tables;
pub mod minhash;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, FixedSizeListArray, StringBuilder, UInt64Array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::batch::{text_column, RecordBatch, COL_ID};
use crate::error::{Error, Result};
use crate::extsort::{BandEntry, ExactEntry, ExternalSort};
pub use crate::limits::parse_bytes;
use crate::limits::{bytes_de, bytes_ser};
use crate::passes::{RunReport, ScoredLake};
use crate::score::Scorer;
use crate::sink::TableWriter;
use crate::source::{Exclusions, FileStats, RejectWriter};
use components::UnionFind;
use minhash::{Banding, Scratch};

pub const COL_DUP_EXACT: &str = "dup_exact";
pub const COL_DUP_CLUSTER: &str = "dup_cluster";
pub const COL_DUP_COUNT: &str = "dup_count";
pub const COL_DUP_KEEP: &str = "dup_keep";

/// Whose shingles and hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// syllabus's words (`\w+` of the lowercased NFC text) and hashes; exact copies always
    /// clustered.
    #[default]
    Syllabus,
    /// datatrove 0.10.1's MinHash dedup decisions: its normalization, word tokenizer, hashes
    /// and permutations; clusters are LSH components alone.
    Datatrove,
}

/// `score dedup`, `select dedup`, `[dedup]`: the shingles, the banding, the memory.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DedupSettings {
    /// Words per shingle.
    #[arg(long, default_value_t = 5)]
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// LSH bands (keys per document).
    #[arg(long, default_value_t = 14)]
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// MinHash values per band: two documents are candidates when all of one band's agree.
    #[arg(long, default_value_t = 8)]
    #[serde(default = "default_hashes_per_band")]
    pub hashes_per_band: usize,
    /// Seed of the MinHash permutations.
    #[arg(long = "minhash-seed", default_value_t = 1)]
    #[serde(default = "default_seed")]
    pub minhash_seed: u64,
    /// Whose shingles and hashes: syllabus's, or datatrove 0.10.1's (same rows removed).
    #[arg(long, value_enum, default_value_t = Compat::Syllabus)]
    #[serde(default)]
    pub compat: Compat,
    /// Memory for the join's sort buffers (half of it) and the rest of the stage; beyond it
    /// sorted runs go to disk. Bytes, or with KB, MB, GB.
    #[arg(long, default_value = "2GB", value_parser = parse_bytes)]
    #[serde(default = "default_memory_limit", deserialize_with = "bytes_de", serialize_with = "bytes_ser")]
    pub memory_limit: u64,
    /// Confirm candidates: a row joins a cluster only through a row whose signature agrees
    /// with its own on at least this share of values (the estimated Jaccard similarity),
    /// which drops the pairs that share a band by chance. Costs the signatures' memory for
    /// the rows that share a band.
    #[arg(long, value_name = "J")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_jaccard: Option<f64>,
}

fn default_ngram() -> usize {
    5
}
fn default_bands() -> usize {
    14
}
fn default_hashes_per_band() -> usize {
    8
}
fn default_seed() -> u64 {
    1
}
fn default_memory_limit() -> u64 {
    2 << 30
}

impl Default for DedupSettings {
    fn default() -> Self {
        DedupSettings {
            ngram: default_ngram(),
            bands: default_bands(),
            hashes_per_band: default_hashes_per_band(),
            minhash_seed: default_seed(),
            compat: Compat::default(),
            memory_limit: default_memory_limit(),
            min_jaccard: None,
        }
    }
}

impl DedupSettings {
    pub fn banding(&self) -> Banding {
        Banding { bands: self.bands, rows: self.hashes_per_band }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.ngram == 0 || self.ngram > 64 {
            return bad(format!("dedup: ngram must be 1..=64, not {}", self.ngram));
        }
        if self.bands == 0 || self.bands > 255 {
            return bad(format!("dedup: bands must be 1..=255, not {}", self.bands));
        }
        if self.hashes_per_band == 0 || self.hashes_per_band > 32 {
            return bad(format!("dedup: hashes_per_band must be 1..=32, not {}", self.hashes_per_band));
        }
        if self.memory_limit < 1 << 20 {
            return bad(format!("dedup: memory_limit must be at least 1MB, not {} bytes", self.memory_limit));
        }
        if let Some(j) = self.min_jaccard {
            if !(j > 0.0 && j <= 1.0) {
                return bad(format!("dedup: min_jaccard must be in (0, 1], not {j}"));
            }
            if self.compat == Compat::Datatrove {
                return bad(
                    "dedup: datatrove does not confirm candidates: --min-jaccard is not a --compat datatrove setting"
                        .into(),
                );
            }
        }
        if self.compat == Compat::Datatrove {
            datatrove::check_settings(self)?;
        }
        Ok(())
    }

    /// The signer these settings describe.
    pub fn signer(&self) -> Result<Arc<dyn Sign>> {
        Ok(match self.compat {
            Compat::Syllabus => Arc::new(NativeSigner {
                shingles: minhash::WordShingles { n: self.ngram },
                perms: minhash::Permutations::new(self.banding().hashes(), self.minhash_seed),
            }),
            Compat::Datatrove => Arc::new(datatrove::Signer::new(self)?),
        })
    }
}

/// Computes a document's MinHash signature.
pub trait Sign: Send + Sync {
    /// The signature of `text` (`lower`: its NFC, lowercased, as [`minhash::lower_nfc`] gives
    /// it) into `sig` (m values); false when the document has no shingles (it has no signature
    /// and no near duplicates).
    fn sign(&self, text: &str, lower: &str, buf: &mut Scratch, sig: &mut Vec<u64>) -> bool;
    /// Whether exact copies join one cluster whatever their shingles.
    fn cluster_exact(&self) -> bool;
    /// Whether bands are joined by their values in datatrove's order (else by a 64-bit key).
    fn band_values(&self) -> bool {
        false
    }
}

struct NativeSigner {
    shingles: minhash::WordShingles,
    perms: minhash::Permutations,
}

impl Sign for NativeSigner {
    fn sign(&self, _text: &str, lower: &str, buf: &mut Scratch, sig: &mut Vec<u64>) -> bool {
        let mut shingles = std::mem::take(&mut buf.shingles);
        self.shingles.shingles_of_lower(lower, &mut buf.spans, &mut buf.words, &mut shingles);
        sig.clear();
        sig.resize(self.perms.len(), u64::MAX);
        self.perms.update(sig, &shingles);
        let signed = !shingles.is_empty();
        buf.shingles = shingles;
        signed
    }
    fn cluster_exact(&self) -> bool {
        true
    }
}

/// The signature pass as a [`Scorer`]: per row, the exact key and the band keys (null without
/// shingles), so that the lake passes read, count, keep per file and resume it like any score.
struct SignaturePass {
    signer: Arc<dyn Sign>,
    banding: Banding,
    settings: DedupSettings,
}

/// The name of the signature pass as a scorer (the cluster's function).
pub const SIGNATURE_SCORER: &str = "minhash";

/// The signature pass as a scorer: per row `exact_hi`, `exact_lo` and `bands` (the band keys;
/// null without shingles), the cluster's map step.
pub fn signature_scorer(settings: &DedupSettings) -> Result<Arc<dyn Scorer>> {
    Ok(Arc::new(SignaturePass::new(settings)?))
}

/// [`signature_scorer`] from its state (the cluster's codec); None for another scorer's name.
pub fn decode_scorer(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
    (name == SIGNATURE_SCORER).then(|| {
        let settings: DedupSettings = serde_json::from_slice(state)
            .map_err(|e| Error::InvalidArgument(format!("decoding dedup settings: {e}")))?;
        signature_scorer(&settings)
    })
}

impl SignaturePass {
    fn new(settings: &DedupSettings) -> Result<Self> {
        settings.validate()?;
        Ok(SignaturePass { signer: settings.signer()?, banding: settings.banding(), settings: settings.clone() })
    }
}

const COL_EXACT_HI: &str = "exact_hi";
const COL_EXACT_LO: &str = "exact_lo";
const COL_BANDS: &str = "bands";
/// The whole signature (`--min-jaccard` only; native values fit in 32 bits).
const COL_SIGNATURE: &str = "signature";

impl SignaturePass {
    fn band_field() -> Arc<Field> {
        Arc::new(Field::new("item", DataType::UInt64, false))
    }

    /// Values kept per row: a key per band, or (datatrove) the whole signature.
    fn width(&self) -> usize {
        if self.signer.band_values() {
            self.banding.hashes()
        } else {
            self.banding.bands
        }
    }
}

impl Scorer for SignaturePass {
    fn name(&self) -> &'static str {
        SIGNATURE_SCORER
    }

    fn output_fields(&self) -> Vec<Field> {
        let mut f = vec![
            Field::new(COL_EXACT_HI, DataType::UInt64, false),
            Field::new(COL_EXACT_LO, DataType::UInt64, false),
            Field::new(COL_BANDS, DataType::FixedSizeList(Self::band_field(), self.width() as i32), true),
        ];
        if self.settings.min_jaccard.is_some() {
            let item = Arc::new(Field::new("item", DataType::UInt32, false));
            f.push(Field::new(COL_SIGNATURE, DataType::FixedSizeList(item, self.banding.hashes() as i32), true));
        }
        f
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let n = batch.num_rows();
        let b = self.banding.bands;
        let width = self.width();
        let values = self.signer.band_values();
        let (mut hi, mut lo) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut keys = Vec::with_capacity(n * width);
        let mut valid = Vec::with_capacity(n);
        let mut buf = Scratch::default();
        let (mut sig, mut lower) = (Vec::new(), String::new());
        let confirm = self.settings.min_jaccard.is_some();
        let mut sigs: Vec<u32> = Vec::with_capacity(if confirm { n * self.banding.hashes() } else { 0 });
        for i in 0..n {
            let t = if text.is_null(i) { "" } else { text.value(i) };
            minhash::lower_nfc(t, &mut buf.norm, &mut lower);
            let k = minhash::key_of_lower(&lower, &mut buf.bytes);
            hi.push((k >> 64) as u64);
            lo.push(k as u64);
            let signed = self.signer.sign(t, &lower, &mut buf, &mut sig);
            valid.push(signed);
            if confirm {
                sigs.extend(sig.iter().map(|&v| if signed { v as u32 } else { 0 }));
            }
            if values {
                keys.extend(sig.iter().map(|&v| if signed { v } else { 0 }));
            } else {
                for j in 0..b {
                    keys.push(if signed { self.banding.band_key(j, &sig) } else { 0 });
                }
            }
        }
        let keys = Arc::new(UInt64Array::from(keys));
        let nulls = NullBuffer::from(valid);
        let bands = FixedSizeListArray::try_new(Self::band_field(), width as i32, keys, Some(nulls.clone()))
            .map_err(|e| Error::arrow("building band keys", e))?;
        let mut out: Vec<ArrayRef> =
            vec![Arc::new(UInt64Array::from(hi)), Arc::new(UInt64Array::from(lo)), Arc::new(bands)];
        if confirm {
            let item = Arc::new(Field::new("item", DataType::UInt32, false));
            let values = Arc::new(arrow::array::UInt32Array::from(sigs));
            let m = self.banding.hashes() as i32;
            out.push(Arc::new(
                FixedSizeListArray::try_new(item, m, values, Some(nulls))
                    .map_err(|e| Error::arrow("building signatures", e))?,
            ));
        }
        Ok(out)
    }

    fn state(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.settings).map_err(|e| Error::InvalidArgument(format!("dedup settings: {e}")))
    }
}

/// Why a row is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An exact copy (after normalization) of an earlier row.
    Exact,
    /// In the near-duplicate cluster of an earlier row.
    Near,
}

/// Per input file: rows read, and rows removed by reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRemoved {
    pub file: String,
    pub rows: u64,
    pub removed_exact: u64,
    pub removed_near: u64,
}

/// What the dedup stage found, for summaries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DedupReport {
    pub rows: u64,
    pub kept: u64,
    pub removed_exact: u64,
    pub removed_near: u64,
    /// Rows without shingles (no words): only their exact copies are found.
    pub without_shingles: u64,
    /// Clusters of more than one row.
    pub clusters: u64,
    /// Rows that share a band key with an earlier row (the candidate links).
    pub candidate_links: u64,
    /// With `--min-jaccard`: times a row shared a band key but agreed with none of the band
    /// group's representatives (a row can count once per band).
    #[serde(default)]
    pub unconfirmed: u64,
    /// Sorted runs the join spilled to disk (0: it fit in memory).
    pub spilled_runs: u64,
    pub per_file: Vec<FileRemoved>,
}

/// A cluster of more than one row: its first row in lake order and its size.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    first: u64,
    size: u64,
}

impl DedupReport {
    /// The counts of a command's summary over `files`: every row is eligible, the kept ones
    /// selected.
    pub fn run_report(&self, files: Vec<FileStats>) -> RunReport {
        RunReport {
            eligible: self.rows,
            selected: self.kept,
            selected_per_file: self.per_file.iter().map(|f| f.rows - f.removed_exact - f.removed_near).collect(),
            files,
            ..Default::default()
        }
    }
}

/// The clusters of a lake, after the join.
pub struct Found {
    pub files: Vec<FileStats>,
    /// Row -> the row its cluster keeps, for rows in a cluster of more than one.
    kept_of: FxHashMap<u64, u64>,
    /// By the row each keeps.
    clusters: FxHashMap<u64, Cluster>,
    /// Row -> the first row with its exact key, for rows with an exact copy.
    exact: FxHashMap<u64, u64>,
    report: DedupReport,
}

/// The rows `find` decided on, written and counted.
pub struct Outcome {
    pub report: DedupReport,
    /// The rows removed, per file, for later readers to leave out.
    pub removed: Exclusions,
}

/// The band join's sorter: 64-bit band keys (syllabus), or datatrove's sorted band values.
enum Bands {
    Keys(ExternalSort<BandEntry>),
    Values(ExternalSort<datatrove::BandRecord>),
}

/// Run steps 1-3 over `lake` (which must have a work directory: the signatures are kept
/// there, and the spilled runs under it).
pub fn find(lake: &ScoredLake, settings: &DedupSettings, rejects: Option<&mut RejectWriter>) -> Result<Found> {
    let work = lake.work.ok_or_else(|| Error::InvalidArgument("dedup needs a work directory".into()))?;
    let pass = SignaturePass::new(settings)?;
    let banding = pass.banding;
    let cluster_exact = pass.signer.cluster_exact();
    let by_values = pass.signer.band_values();
    let spill = work.dir().join("spill");
    if spill.exists() {
        std::fs::remove_dir_all(&spill).map_err(|e| Error::io(&spill, e))?;
    }
    // Half the limit for the two sort buffers, shared by their entries' sizes.
    let budget = (settings.memory_limit / 2) as usize;
    let entry = if by_values { std::mem::size_of::<datatrove::BandRecord>() } else { std::mem::size_of::<BandEntry>() };
    let band_bytes = banding.bands * entry;
    let band_budget = budget / (band_bytes + std::mem::size_of::<ExactEntry>()) * band_bytes;
    let mut bands = if by_values {
        Bands::Values(ExternalSort::new(&spill, "band", band_budget))
    } else {
        Bands::Keys(ExternalSort::new(&spill, "band", band_budget))
    };
    let mut exact: ExternalSort<ExactEntry> = ExternalSort::new(&spill, "exact", budget - band_budget);
    let mut without_shingles = 0u64;
    let r = banding.rows;
    let files = lake.score_pass(&pass, rejects, |b| {
        let (hi, lo, keys) = signature_columns(b.columns)?;
        let values = keys.values().as_any().downcast_ref::<UInt64Array>().expect("u64 band keys").values();
        let width = keys.value_length() as usize;
        for i in 0..b.ids.len() {
            let row = b.first_row + i as u64;
            exact.push(ExactEntry { hi: hi.value(i), lo: lo.value(i), row })?;
            if keys.is_null(i) {
                without_shingles += 1;
                continue;
            }
            let v = &values[i * width..(i + 1) * width];
            match &mut bands {
                Bands::Keys(s) => {
                    for &key in v {
                        s.push(BandEntry { key, row })?;
                    }
                }
                Bands::Values(s) => {
                    for j in 0..banding.bands {
                        let mut values = [0u64; datatrove::MAX_ROWS];
                        values[..r].copy_from_slice(&v[j * r..(j + 1) * r]);
                        s.push(datatrove::BandRecord { band: j as u64, values, row })?;
                    }
                }
            }
        }
        Ok(())
    })?;
    let rows: u64 = files.iter().map(|f| f.kept).sum();
    let bar = lake.progress.rows("join");
    let (spilled_runs, mut join) = match bands {
        Bands::Keys(s) => {
            let runs = s.runs() + exact.runs();
            let mut join = Join::new(cluster_exact, false);
            match settings.min_jaccard {
                None => s.groups(|g| {
                    join.band_group(g.iter().map(|e| e.row));
                    bar.inc(g.len() as u64);
                    Ok(())
                })?,
                Some(threshold) => {
                    // The groups go to disk (with the set of their rows), then the signatures
                    // of those rows are read back, then each group is confirmed.
                    std::fs::create_dir_all(&spill).map_err(|e| Error::io(&spill, e))?;
                    let path = spill.join("groups.bin");
                    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?);
                    let mut candidates = rustc_hash::FxHashSet::default();
                    s.groups(|g| {
                        use std::io::Write;
                        w.write_all(&(g.len() as u64).to_le_bytes()).map_err(|e| Error::io(&path, e))?;
                        for e in g {
                            w.write_all(&e.row.to_le_bytes()).map_err(|e| Error::io(&path, e))?;
                            candidates.insert(e.row);
                        }
                        bar.inc(g.len() as u64);
                        Ok(())
                    })?;
                    std::io::Write::flush(&mut w).map_err(|e| Error::io(&path, e))?;
                    drop(w);
                    let sigs = signatures_of(lake, &pass, candidates)?;
                    let mut r = std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?);
                    let mut word = || -> Result<Option<u64>> {
                        let mut b = [0u8; 8];
                        match std::io::Read::read_exact(&mut r, &mut b) {
                            Ok(()) => Ok(Some(u64::from_le_bytes(b))),
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                            Err(e) => Err(Error::io(&path, e)),
                        }
                    };
                    let mut group = Vec::new();
                    while let Some(n) = word()? {
                        group.clear();
                        for _ in 0..n {
                            group.push(word()?.ok_or_else(|| Error::InvalidArgument("a truncated group file".into()))?);
                        }
                        join.confirmed_group(&group, &sigs, threshold);
                    }
                }
            }
            (runs, join)
        }
        Bands::Values(s) => {
            let runs = s.runs() + exact.runs();
            let mut join = Join::new(cluster_exact, true);
            s.groups(|g| {
                join.band_group(g.iter().map(|e| e.row));
                bar.inc(g.len() as u64);
                Ok(())
            })?;
            (runs, join)
        }
    };
    exact.groups(|g| {
        join.exact_group(g.iter().map(|e| e.row));
        Ok(())
    })?;
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&spill);
    let (kept_of, clusters, exact_of, (candidate_links, unconfirmed)) = join.finish();
    let report = DedupReport {
        rows,
        without_shingles,
        candidate_links,
        unconfirmed,
        spilled_runs: spilled_runs as u64,
        clusters: clusters.len() as u64,
        ..Default::default()
    };
    Ok(Found { files, kept_of, clusters, exact: exact_of, report })
}

/// The signatures of `rows`, from the kept signature pass (`--min-jaccard`).
fn signatures_of(
    lake: &ScoredLake,
    pass: &SignaturePass,
    rows: rustc_hash::FxHashSet<u64>,
) -> Result<FxHashMap<u64, Box<[u32]>>> {
    let mut out: FxHashMap<u64, Box<[u32]>> = FxHashMap::default();
    lake.replay(&pass.output_fields(), |b| {
        let sig = b.columns.get(3).and_then(|a| a.as_any().downcast_ref::<FixedSizeListArray>()).ok_or_else(|| {
            Error::InvalidArgument("the dedup signature part has no signatures: remove its work directory".into())
        })?;
        let values = sig.values().as_any().downcast_ref::<arrow::array::UInt32Array>().expect("u32 values").values();
        let m = sig.value_length() as usize;
        for i in 0..b.ids.len() {
            let row = b.first_row + i as u64;
            if rows.contains(&row) {
                out.insert(row, values[i * m..(i + 1) * m].into());
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// The most rows of a band group that others are compared with (`--min-jaccard`).
pub const MAX_REPRESENTATIVES: usize = 64;

/// The reduce: groups of rows that share a band key or an exact key (rows ascending, any
/// number for a row, a key's group whole) in, clusters out. Rows are any numbers in lake order
/// (a row's index here, a file and location on a cluster).
pub struct Join {
    uf: Either,
    exact_of: FxHashMap<u64, u64>,
    cluster_exact: bool,
    candidate_links: u64,
    /// Rows of a band group that agreed with none of its earlier rows (`--min-jaccard`).
    unconfirmed: u64,
}

impl Join {
    /// `datatrove`: its union by size over neighbours, in the order the groups come (each
    /// band's groups in its sorted order); else components rooted at their first row.
    pub fn new(cluster_exact: bool, datatrove: bool) -> Self {
        let uf =
            if datatrove { Either::BySize(datatrove::SizeUnion::default()) } else { Either::Min(UnionFind::default()) };
        Join { uf, exact_of: FxHashMap::default(), cluster_exact, candidate_links: 0, unconfirmed: 0 }
    }

    /// Rows that share a band key.
    pub fn band_group(&mut self, rows: impl Iterator<Item = u64>) {
        let mut prev: Option<u64> = None;
        let mut first: Option<u64> = None;
        for r in rows {
            match &mut self.uf {
                // Every row to the group's first: the components are those of any spanning
                // links, and their root (the smallest row) does not depend on which.
                Either::Min(uf) => {
                    if let Some(f) = first {
                        uf.union(f, r);
                        self.candidate_links += 1;
                    }
                }
                // datatrove links neighbours in sorted order, and its union depends on the order.
                Either::BySize(uf) => {
                    if let Some(p) = prev {
                        uf.union(p, r);
                        self.candidate_links += 1;
                    }
                }
            }
            first.get_or_insert(r);
            prev = Some(r);
        }
    }

    /// Rows that share a band key, each joined only to a row whose signature agrees with its
    /// own on at least `threshold` of the values: every row is compared with the group's
    /// representatives (rows that matched none before them, the first [`MAX_REPRESENTATIVES`])
    /// in order and joins the first that agrees, or becomes one. Copies cost one comparison
    /// each, and no group costs more than [`MAX_REPRESENTATIVES`] comparisons a row.
    pub fn confirmed_group(&mut self, rows: &[u64], sigs: &FxHashMap<u64, Box<[u32]>>, threshold: f64) {
        let Either::Min(uf) = &mut self.uf else { unreachable!("validated: datatrove does not confirm") };
        let mut reps: Vec<(u64, &[u32])> = Vec::new();
        for &r in rows {
            let Some(sr) = sigs.get(&r) else { continue };
            let m = sr.len().max(1) as f64;
            let agrees = |s: &[u32]| s.iter().zip(sr.iter()).filter(|(a, b)| a == b).count() as f64 / m >= threshold;
            match reps.iter().find(|(_, s)| agrees(s)) {
                Some(&(rep, _)) => {
                    uf.union(rep, r);
                    self.candidate_links += 1;
                }
                None => {
                    if !reps.is_empty() {
                        self.unconfirmed += 1;
                    }
                    if reps.len() < MAX_REPRESENTATIVES {
                        reps.push((r, sr));
                    }
                }
            }
        }
    }

    /// Rows with the same exact key.
    pub fn exact_group(&mut self, rows: impl Iterator<Item = u64>) {
        let mut first: Option<u64> = None;
        for r in rows {
            let f = *first.get_or_insert(r);
            self.exact_of.insert(r, f);
            if self.cluster_exact && r != f {
                if let Either::Min(uf) = &mut self.uf {
                    uf.union(f, r);
                }
            }
        }
    }

    /// Row -> kept row (rows in clusters), the clusters by kept row, row -> first exact copy,
    /// and the links made and the rows no link was confirmed for.
    #[allow(clippy::type_complexity)]
    fn finish(self) -> (FxHashMap<u64, u64>, FxHashMap<u64, Cluster>, FxHashMap<u64, u64>, (u64, u64)) {
        let kept_of = self.uf.roots();
        let mut clusters: FxHashMap<u64, Cluster> = FxHashMap::default();
        for (&row, &kept) in &kept_of {
            let c = clusters.entry(kept).or_insert(Cluster { first: row, size: 0 });
            c.first = c.first.min(row);
            c.size += 1;
        }
        (kept_of, clusters, self.exact_of, (self.candidate_links, self.unconfirmed))
    }
}

/// The union-find of either join.
enum Either {
    Min(UnionFind),
    BySize(datatrove::SizeUnion),
}

impl Either {
    fn roots(self) -> FxHashMap<u64, u64> {
        match self {
            Either::Min(uf) => uf.roots(),
            Either::BySize(uf) => uf.roots(),
        }
    }
}

fn signature_columns(c: &[ArrayRef]) -> Result<(&UInt64Array, &UInt64Array, &FixedSizeListArray)> {
    let bad = || Error::InvalidArgument("the dedup signature part has other columns: remove its work directory".into());
    let hi = c.first().and_then(|a| a.as_any().downcast_ref::<UInt64Array>()).ok_or_else(bad)?;
    let lo = c.get(1).and_then(|a| a.as_any().downcast_ref::<UInt64Array>()).ok_or_else(bad)?;
    let keys = c.get(2).and_then(|a| a.as_any().downcast_ref::<FixedSizeListArray>()).ok_or_else(bad)?;
    Ok((hi, lo, keys))
}

/// The output table of `score dedup`.
pub fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(COL_ID, DataType::Utf8, false),
        Field::new(COL_DUP_EXACT, DataType::Utf8, false),
        Field::new(COL_DUP_CLUSTER, DataType::Utf8, false),
        Field::new(COL_DUP_COUNT, DataType::UInt64, false),
        Field::new(COL_DUP_KEEP, DataType::Boolean, false),
    ]))
}

/// A row's decision.
pub struct Decision<'a> {
    pub exact: &'a str,
    pub cluster: &'a str,
    pub count: u64,
    pub keep: bool,
    /// Removed as an exact copy of an earlier row (else, when removed, as a near duplicate).
    pub exact_copy: bool,
}

/// Decides the rows of a [`Found`] one by one, in lake order, naming the rows they point to.
pub struct Decider<'f> {
    found: &'f Found,
    /// Rows later rows name (a cluster's first, an exact group's first).
    named: rustc_hash::FxHashSet<u64>,
    names: FxHashMap<u64, String>,
}

impl<'f> Decider<'f> {
    pub fn new(found: &'f Found) -> Self {
        let named = found
            .clusters
            .values()
            .map(|c| c.first)
            .chain(found.exact.iter().filter(|(r, f)| r == f).map(|(r, _)| *r))
            .collect();
        Decider { found, named, names: FxHashMap::default() }
    }

    /// The decision for `row` (its number in the join) with id `id`; rows come in lake order.
    pub fn row<'a>(&'a mut self, row: u64, id: &'a str) -> Result<Decision<'a>> {
        if self.named.contains(&row) {
            self.names.insert(row, id.to_string());
        }
        let f = self.found;
        let exact_first = f.exact.get(&row).copied().unwrap_or(row);
        let kept = f.kept_of.get(&row).copied().unwrap_or(row);
        let cluster = f.clusters.get(&kept).copied().unwrap_or(Cluster { first: row, size: 1 });
        let names = &self.names;
        let name = |r: u64| -> Result<&'a str> {
            if r == row {
                return Ok(id);
            }
            names.get(&r).map(String::as_str).ok_or_else(|| {
                Error::InvalidArgument(format!("dedup: row {row} names row {r}, which was not read before it"))
            })
        };
        Ok(Decision {
            exact: name(exact_first)?,
            cluster: name(cluster.first)?,
            count: cluster.size,
            keep: kept == row,
            exact_copy: exact_first != row,
        })
    }
}

/// The per-row table's columns, built a batch at a time.
#[derive(Default)]
pub struct Columns {
    ids: StringBuilder,
    exact: StringBuilder,
    cluster: StringBuilder,
    counts: Vec<u64>,
    keep: Vec<bool>,
}

impl Columns {
    pub fn push(&mut self, id: &str, d: &Decision) {
        self.ids.append_value(id);
        self.exact.append_value(d.exact);
        self.cluster.append_value(d.cluster);
        self.counts.push(d.count);
        self.keep.push(d.keep);
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The batch so far (and start a new one).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.exact.finish()),
            Arc::new(self.cluster.finish()),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.counts))),
            Arc::new(BooleanArray::from(std::mem::take(&mut self.keep))),
        ];
        RecordBatch::try_new(output_schema(), columns).map_err(|e| Error::arrow("building dedup rows", e))
    }
}

impl Found {
    /// Join results made elsewhere (a cluster's group-by): `rows` and `files` for the report.
    pub fn from_join(join: Join, files: Vec<FileStats>, without_shingles: u64) -> Found {
        let rows = files.iter().map(|f| f.kept).sum();
        let (kept_of, clusters, exact, (candidate_links, unconfirmed)) = join.finish();
        let report = DedupReport {
            rows,
            without_shingles,
            candidate_links,
            unconfirmed,
            clusters: clusters.len() as u64,
            ..Default::default()
        };
        Found { files, kept_of, clusters, exact, report }
    }

    /// The report, once every row was decided: removed rows per file and reason.
    pub fn report(&self, per_file: Vec<FileRemoved>) -> DedupReport {
        let mut report = self.report.clone();
        report.removed_exact = per_file.iter().map(|f| f.removed_exact).sum();
        report.removed_near = per_file.iter().map(|f| f.removed_near).sum();
        report.kept = report.rows - report.removed_exact - report.removed_near;
        report.per_file = per_file;
        report
    }

    /// Per file, no rows removed yet.
    pub fn per_file(&self) -> Vec<FileRemoved> {
        self.files.iter().map(|f| FileRemoved { file: f.file.clone(), rows: f.kept, ..Default::default() }).collect()
    }

    /// Decide every row (in lake order, from the kept signatures), write the per-row table
    /// to `out` if given, and count.
    pub fn decide(self, lake: &ScoredLake, settings: &DedupSettings, out: Option<&Path>) -> Result<Outcome> {
        let mut writer = out.map(|p| TableWriter::create(p, output_schema())).transpose()?;
        let mut per_file = self.per_file();
        let mut removed_locs: Vec<Vec<u64>> = vec![Vec::new(); self.files.len()];
        let fields = SignaturePass::new(settings)?.output_fields();
        let bar = lake.progress.rows("decide");
        let mut decider = Decider::new(&self);
        let mut columns = Columns::default();
        lake.replay(&fields, |b| {
            for i in 0..b.ids.len() {
                let id = b.ids.value(i);
                let d = decider.row(b.first_row + i as u64, id)?;
                if !d.keep {
                    removed_locs[b.file].push(b.locations[i]);
                    if d.exact_copy {
                        per_file[b.file].removed_exact += 1;
                    } else {
                        per_file[b.file].removed_near += 1;
                    }
                }
                if writer.is_some() {
                    columns.push(id, &d);
                }
            }
            if let Some(w) = writer.as_mut() {
                w.write(&columns.finish()?)?;
            }
            bar.inc(b.ids.len() as u64);
            Ok(())
        })?;
        bar.finish_and_clear();
        if let Some(w) = writer {
            w.finish()?;
        }
        let report = self.report(per_file);
        let mut removed = Exclusions::default();
        for (f, locs) in lake.raw.iter().zip(removed_locs) {
            removed.insert(f.path.clone(), locs);
        }
        Ok(Outcome { report, removed })
    }
}

/// Write the rows of `lake` that `removed` does not name, with all their columns, in lake
/// order (the second read of `select dedup`); rows written per file.
pub fn write_kept(lake: &ScoredLake, files: &[FileStats], removed: Exclusions, out: &Path) -> Result<Vec<u64>> {
    let removed = Arc::new(removed.union(lake.read.exclude.as_deref().unwrap_or(&Exclusions::default())));
    let read = crate::source::ReadOptions { exclude: Some(removed), ..lake.read.clone() };
    let extras = crate::source::lake_extras(lake.raw, files, &read)?;
    let mut reader =
        crate::source::LakeReader::new(lake.raw, &read, extras, None).with_file_column(lake.file_column.clone());
    let mut writer = TableWriter::create(out, reader.schema())?;
    let mut per_file = vec![0u64; lake.raw.len()];
    let bar = lake.progress.rows("write");
    for b in reader.by_ref() {
        let b = b?;
        per_file[b.file] += b.batch.num_rows() as u64;
        bar.inc(b.batch.num_rows() as u64);
        writer.write(&b.batch)?;
    }
    bar.finish_and_clear();
    writer.finish()?;
    Ok(per_file)
}

/// The stage's counts on stderr: rows removed per file and reason.
pub fn print_report(what: &str, d: &DedupReport) {
    eprintln!(
        "syllabus {what}: {} rows, {} kept; removed {} exact and {} near duplicates in {} clusters ({} rows without words; {} spilled runs)",
        d.rows, d.kept, d.removed_exact, d.removed_near, d.clusters, d.without_shingles, d.spilled_runs
    );
    if d.unconfirmed > 0 {
        eprintln!(
            "  {} times a row shared a band key but agreed with none of its group's representatives on --min-jaccard of the values",
            d.unconfirmed
        );
    }
    let width = d.per_file.iter().map(|f| f.file.len()).max().unwrap_or(4).max(4);
    if d.per_file.len() > 1 {
        eprintln!("  {:<width$}  {:>9} {:>9} {:>9}", "file", "rows", "exact", "near");
        for f in &d.per_file {
            eprintln!("  {:<width$}  {:>9} {:>9} {:>9}", f.file, f.rows, f.removed_exact, f.removed_near);
        }
    }
}

/// Where the stage of a pipeline keeps its work: `OUT/work/dedup`.
pub fn stage_dir(work: &Path) -> PathBuf {
    work.join("dedup")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("2GB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512mb"), Ok(512 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1.5K"), Ok(1536));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1GB").is_err());
    }
}
