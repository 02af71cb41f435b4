//! What `eval` trains and validates on, as token streams.
//!
//! A [`Unit`] is a stream of token ids with a sample weight: the model reads `tokens[..n-1]`
//! and predicts `tokens[1..]`. A document of a table is `[EOS] + tokens + [EOS]` (every token
//! and the document's end predicted, as the `lm` proxy scores it); a sequence of a curriculum
//! is its tokens as packed in the shard, padding left out, with the sequence's weight.
//!
//! Memory: a candidate's tokens are held in memory (training repeats and shuffles them), as
//! the proxy's training set is; four bytes per token. Hashed n-gram counts (10,000 buckets)
//! are the only thing kept of the raw pool.

use std::path::Path;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field};

use crate::batch::text_column;
use crate::error::{Error, Result};
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::score::dsir::Counts;
use crate::shard::manifest::{Manifest, MANIFEST_FILE};
use crate::source::{expand_inputs, Extras, LakeReader, ReadOptions, SourceBatch};
use crate::tokenize::Tok;

/// The column a document table may carry its sample weight in.
pub const COL_WEIGHT: &str = "weight";

/// A token stream and its sample weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub tokens: Vec<u32>,
    pub weight: f32,
}

impl Unit {
    /// The predictions it holds.
    pub fn predictions(&self) -> u64 {
        self.tokens.len().saturating_sub(1) as u64
    }
}

/// How a candidate was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A document table: shuffled by the seed, once per pass.
    Table,
    /// A curriculum: read in manifest order, every pass the same.
    Curriculum,
}

/// A candidate (or a validation set) ready to train or validate on.
#[derive(Debug, Clone)]
pub struct Streams {
    pub kind: Kind,
    pub units: Vec<Unit>,
    /// Documents read.
    pub documents: u64,
    /// DSIR's hashed n-gram counts of its text (KL reduction).
    pub counts: Counts,
    /// A hash of the inputs' bytes (xxh3-128 of the files, or of the manifest).
    pub hash: String,
}

impl Streams {
    pub fn predictions(&self) -> u64 {
        self.units.iter().map(Unit::predictions).sum()
    }
}

/// `PATH` is a curriculum when it is a directory with a manifest.json.
pub fn is_curriculum(path: &str) -> bool {
    crate::store::is_file(&Path::new(path).join(MANIFEST_FILE))
}

/// A syllabus output directory without a curriculum stands for its `selected.parquet`.
pub(super) fn table_paths(path: &str) -> Vec<String> {
    let sel = Path::new(path).join("selected.parquet");
    if crate::store::is_file(&sel) {
        vec![sel.display().to_string()]
    } else {
        vec![path.to_string()]
    }
}

/// Read a candidate: a curriculum directory, or a document table (files, a directory, a glob,
/// or a syllabus output directory's `selected.parquet`).
pub fn load_candidate(path: &str, read: &ReadOptions, tok: &Tok, progress: &Progress) -> Result<Streams> {
    if is_curriculum(path) {
        load_curriculum(Path::new(path), tok)
    } else {
        load_table(&table_paths(path), read, tok, true, progress)
    }
}

/// Read, tokenize and count the documents of a table; with `weights`, read the `weight`
/// column where a file has one (1 where it has not).
pub fn load_table(
    paths: &[String],
    read: &ReadOptions,
    tok: &Tok,
    weights: bool,
    progress: &Progress,
) -> Result<Streams> {
    load_rows(paths, read, tok, weights, false, progress).map(|(s, _)| s)
}

/// [`load_table`], and with `ids` each unit's document id beside it (else none).
pub fn load_rows(
    paths: &[String],
    read: &ReadOptions,
    tok: &Tok,
    weights: bool,
    ids: bool,
    progress: &Progress,
) -> Result<(Streams, Vec<String>)> {
    let files = expand_inputs(paths)?;
    let eos = tok.eos_id(None)?;
    let params = super::kl::params();
    let extras =
        if weights { Extras { fields: vec![Field::new(COL_WEIGHT, DataType::Utf8, true)] } } else { Extras::none() };
    let mut reader = LakeReader::new(&files, read, extras, None);
    let mut out = Streams {
        kind: Kind::Table,
        units: Vec::new(),
        documents: 0,
        counts: Counts::new(params.buckets),
        hash: files_hash(&files)?,
    };
    let mut out_ids = Vec::new();
    let bar = progress.rows("tokenize");
    for_each_ordered(
        &mut reader,
        |b: &SourceBatch| {
            let t = text_column(&b.batch)?;
            let batch_ids: Vec<String> = if ids {
                let c = crate::batch::id_column(&b.batch)?;
                (0..c.len()).map(|i| c.value(i).to_string()).collect()
            } else {
                Vec::new()
            };
            let w = b.utf8_column(COL_WEIGHT);
            let mut counts = Counts::new(params.buckets);
            let mut units = Vec::with_capacity(t.len());
            for i in 0..t.len() {
                let text = t.value(i);
                counts.add_text(&params, text);
                let weight = match w.filter(|c| c.is_valid(i)) {
                    None => 1.0,
                    Some(c) => {
                        let v = c.value(i).trim().trim_matches('"');
                        match v.parse::<f32>() {
                            Ok(x) if x.is_finite() && x >= 0.0 => x,
                            _ => {
                                return Err(files[b.file].bad_record(
                                    b.locations[i],
                                    format!("the {COL_WEIGHT} column is {v:?}, not a non-negative number"),
                                ))
                            }
                        }
                    }
                };
                // Exactly sized: a candidate's ids are what eval holds in memory.
                let ids = tok.encode(text)?;
                let mut tokens = Vec::with_capacity(ids.len() + 2);
                tokens.push(eos);
                tokens.extend(ids);
                tokens.push(eos);
                units.push(Unit { tokens, weight });
            }
            Ok((units, counts, batch_ids))
        },
        |b, (units, counts, batch_ids)| {
            out.units.extend(units);
            out_ids.extend(batch_ids);
            out.counts.merge(&counts);
            out.documents += b.batch.num_rows() as u64;
            bar.inc(b.batch.num_rows() as u64);
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    Ok((out, out_ids))
}

/// Read a curriculum's syllabus shards in manifest order (each checked against its size and
/// checksum): one unit per sequence, and the documents' text decoded for the n-gram counts.
pub fn load_curriculum(dir: &Path, tok: &Tok) -> Result<Streams> {
    let m = Manifest::load(dir)?;
    if m.tokenizer_hash != tok.hash() {
        return Err(Error::InvalidArgument(format!(
            "{}: the curriculum was tokenized with {} ({}), eval uses {} ({}): pass the curriculum's tokenizer",
            dir.display(),
            m.tokenizer,
            m.tokenizer_hash,
            tok.path().display(),
            tok.hash()
        )));
    }
    let params = super::kl::params();
    let manifest_bytes = crate::store::read(&dir.join(MANIFEST_FILE))?;
    let mut out = Streams {
        kind: Kind::Curriculum,
        units: Vec::new(),
        documents: 0,
        counts: Counts::new(params.buckets),
        hash: format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(&manifest_bytes)),
    };
    // A document's pieces, joined across shards, decoded once it is complete.
    let mut doc: Vec<u32> = Vec::new();
    let shards = m.shards.iter().filter(|e| e.format == "syllabus").collect::<Vec<_>>();
    if shards.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: the curriculum has no syllabus shards (formats include \"syllabus\")",
            dir.display()
        )));
    }
    for e in shards {
        // What verify refuses, eval refuses (as serve and SQL do).
        let (_, shard) = crate::shard::read_listed(dir, &m, e)
            .map_err(|why| Error::InvalidArgument(format!("{}: {why}", dir.join(&e.path).display())))?;
        let len = (shard.seq_len as usize).max(1);
        let mut ends = vec![0usize; shard.seqs.len()];
        for d in &shard.docs {
            let (start, end) = (d.start as usize, d.start as usize + d.len as usize);
            // A piece may run over several sequences: each ends where the piece leaves it.
            for (s, e) in ends.iter_mut().enumerate().take(end.div_ceil(len)).skip(start / len) {
                *e = (*e).max(end.min((s + 1) * len));
            }
            doc.extend_from_slice(&shard.tokens[start..end]);
            if d.flags & crate::shard::DOC_CONTINUES == 0 {
                out.counts.add_text(&params, &tok.decode(&doc)?);
                out.documents += 1;
                doc.clear();
            }
        }
        for (s, meta) in shard.seqs.iter().enumerate() {
            let start = s * len;
            let end = ends[s].max(start);
            if end > start {
                out.units.push(Unit { tokens: shard.tokens[start..end].to_vec(), weight: meta.weight });
            }
        }
    }
    Ok(out)
}

/// Validation units: the documents of a table, cut to at most `cap` predictions (whole
/// documents in file order, the last one cut short), and the n-gram counts of all of them.
/// A curriculum directory gives its packed sequences instead, in manifest order: validation
/// windows that hold what the packing put together (In-Context Pretraining's related
/// documents, for one).
pub fn load_valid(paths: &[String], read: &ReadOptions, tok: &Tok, cap: u64, progress: &Progress) -> Result<Streams> {
    let mut s = match paths {
        [one] if is_curriculum(one) => load_curriculum(Path::new(one), tok)?,
        _ => load_table(paths, read, tok, false, progress)?,
    };
    let mut left = cap;
    let mut units = Vec::new();
    for mut u in std::mem::take(&mut s.units) {
        if left == 0 {
            break;
        }
        let n = u.predictions();
        if n > left {
            u.tokens.truncate(left as usize + 1);
        }
        left -= u.predictions();
        units.push(u);
    }
    s.units = units;
    if s.predictions() == 0 {
        return Err(Error::InvalidArgument(format!("the validation set {} has no documents", paths.join(" "))));
    }
    Ok(s)
}

/// DSIR's hashed n-gram counts of every document of a lake (the raw pool of KL reduction).
pub fn raw_counts(paths: &[String], read: &ReadOptions, progress: &Progress) -> Result<(Counts, String)> {
    let files = expand_inputs(paths)?;
    let params = super::kl::params();
    let mut reader = LakeReader::new(&files, read, Extras::none(), None);
    let mut counts = Counts::new(params.buckets);
    let bar = progress.rows("raw n-grams");
    for_each_ordered(
        &mut reader,
        |b: &SourceBatch| {
            let t = text_column(&b.batch)?;
            let mut c = Counts::new(params.buckets);
            for i in 0..t.len() {
                c.add_text(&params, t.value(i));
            }
            Ok(c)
        },
        |b, c| {
            counts.merge(&c);
            bar.inc(b.batch.num_rows() as u64);
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    Ok((counts, files_hash(&files)?))
}

/// xxh3-128 over the files' names and bytes, in order.
fn files_hash(files: &[crate::source::InputFile]) -> Result<String> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update(&[0]);
        let mut file = crate::store::open(&f.path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| Error::io(&f.path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("xxh3:{:032x}", h.digest128()))
}
