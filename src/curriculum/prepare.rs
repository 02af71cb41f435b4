//! Stage "prepare": one pass over the document table that tokenizes every document into a token
//! store and writes one [`Rec`] per document to its domain's record file, in table order.
//!
//! Tokenization runs in parallel batches and is handed on in input order, so the stores are the
//! same bytes for any thread count. Documents with no tokens are counted and left out.
//!
//! Resume: every `checkpoint_bytes` of stores written (16 MiB by default, about 4M tokens: a second or two of tokenization on two cores),
//! the stores are fsynced and a checkpoint records where the reader stands (file, line or row,
//! byte offset) and the counts so far. A run killed at any point and started again cuts the
//! stores back to the last checkpoint and reads on from there: it redoes at most one
//! checkpoint's worth of tokenization (plus, in a compressed file, decompressing up to the
//! resume point).
//!
//! Memory: a chunk of batches; the stores and record files are on disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

use crate::batch::{id_column, text_column};
use crate::curriculum::order::{Rec, RecWriter};
use crate::error::{Error, Result};
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::source::{Extras, FileStats, InputFile, LakeReader, ReadOptions, ReadPoint, RejectWriter, SourceBatch};
use crate::tokenize::Tok;

/// Where each document's domain comes from.
#[derive(Debug, Clone)]
pub enum DomainOf {
    /// Every document in one domain.
    Single(String),
    /// A column of the table; the listed names take the first ids, in order, and names not
    /// listed follow, sorted.
    Column(String, Vec<String>),
    /// One domain per input file (`of_file[i]` indexes `names`).
    PerFile { names: Vec<String>, of_file: Vec<usize> },
    /// Each document's domain looked up by its id (k-means clusters); `what` names the table
    /// in errors. Names are ordered as numbers where they are numbers.
    ById { what: String, by_id: std::sync::Arc<std::collections::HashMap<String, String>> },
}

/// What prepare produced; saved as its completion marker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prepared {
    /// Domains, by id.
    pub domains: Vec<String>,
    /// Record file of each domain, relative to the work directory.
    pub record_files: Vec<String>,
    pub documents: Vec<u64>,
    /// Tokens each domain would emit once, end-of-document tokens included.
    pub tokens: Vec<u64>,
    /// Documents read from the table.
    pub read: u64,
    /// Documents with no tokens, left out.
    pub empty: u64,
    /// Bad records skipped while reading (`on_bad_record = "skip"`).
    pub rejected: u64,
    /// Documents an interrupted run had already tokenized when this pass resumed (at its last
    /// checkpoint); none when it ran from the start.
    #[serde(default)]
    pub resumed_from: Option<u64>,
}

impl Prepared {
    pub fn total_tokens(&self) -> u64 {
        self.tokens.iter().sum()
    }
}

/// The files prepare writes under the work directory.
pub const TOKENS_FILE: &str = "tokens.bin";
pub const IDS_FILE: &str = "ids.bin";

/// What one batch becomes, computed in parallel.
struct BatchOut {
    tokens: Vec<Vec<u32>>,
    domain: Vec<Option<String>>,
    score: Vec<f64>,
    loss: Vec<f64>,
}

pub struct Prepare<'a> {
    pub files: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub domains: DomainOf,
    pub order_by: Option<String>,
    /// The order score of each row by position instead of a column (`related`).
    pub order_positions: Option<std::sync::Arc<Vec<u32>>>,
    pub loss_by: Option<String>,
    pub tok: &'a Tok,
    pub progress: &'a Progress,
    /// Store bytes (4 per token plus the ids) between checkpoints: the most work a resumed
    /// run redoes.
    pub checkpoint_bytes: u64,
}

impl Prepare<'_> {
    fn extras(&self) -> Extras {
        let mut names: Vec<&str> = Vec::new();
        if let DomainOf::Column(c, _) = &self.domains {
            names.push(c);
        }
        names.extend(self.order_by.as_deref());
        names.extend(self.loss_by.as_deref());
        let mut fields: Vec<Field> = Vec::new();
        for n in names {
            if !fields.iter().any(|f| f.name() == n) {
                fields.push(Field::new(n, DataType::Utf8, true));
            }
        }
        Extras { fields }
    }

    fn numbers(&self, b: &SourceBatch, name: Option<&str>, what: &str) -> Result<Vec<f64>> {
        let n = b.batch.num_rows();
        let Some(name) = name else { return Ok(vec![f64::NAN; n]) };
        let file = &self.files[b.file];
        let col = b.utf8_column(name);
        (0..n)
            .map(|i| {
                let v = col.filter(|c| c.is_valid(i)).map(|c| c.value(i));
                let parsed = v.and_then(|s| s.trim().parse::<f64>().ok()).filter(|x| x.is_finite());
                parsed.ok_or_else(|| {
                    file.bad_record(
                        b.locations[i],
                        match v {
                            None => format!("the {what} column {name:?} is missing"),
                            Some(s) => format!("the {what} column {name:?} is not a finite number: {s:?}"),
                        },
                    )
                })
            })
            .collect()
    }

    fn work(&self, b: &SourceBatch) -> Result<BatchOut> {
        let texts = text_column(&b.batch)?;
        let tokens = (0..texts.len()).map(|i| self.tok.encode(texts.value(i))).collect::<Result<Vec<_>>>()?;
        let n = b.batch.num_rows();
        let domain = match &self.domains {
            DomainOf::Column(c, _) => {
                let col = b.utf8_column(c);
                let file = &self.files[b.file];
                (0..n)
                    .map(|i| match col.filter(|a| a.is_valid(i)) {
                        Some(a) => Ok(Some(a.value(i).to_string())),
                        None => Err(file.bad_record(b.locations[i], format!("the domain column {c:?} is missing"))),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            DomainOf::ById { what, by_id } => {
                let ids = id_column(&b.batch)?;
                let file = &self.files[b.file];
                (0..n)
                    .map(|i| match by_id.get(ids.value(i)) {
                        Some(d) => Ok(Some(d.clone())),
                        None => Err(file
                            .bad_record(b.locations[i], format!("the document {:?} is not in {what}", ids.value(i)))),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            _ => vec![None; n],
        };
        let score = match &self.order_positions {
            Some(p) => (0..n as u64)
                .map(|i| {
                    p.get((b.first_row + i) as usize).map(|&x| f64::from(x)).ok_or_else(|| {
                        Error::InvalidArgument(format!("row {} has no position in the related order", b.first_row + i))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            None => self.numbers(b, self.order_by.as_deref(), "order")?,
        };
        let loss = self.numbers(b, self.loss_by.as_deref(), "loss")?;
        Ok(BatchOut { tokens, domain, score, loss })
    }

    /// Run the pass, writing the stores under `work`, from its last checkpoint when an earlier
    /// run of the same work was interrupted. Bad records go to `rejects` (skip mode).
    pub fn run(&self, work: &Path, rejects: Option<&Path>) -> Result<Prepared> {
        std::fs::create_dir_all(work.join("records")).map_err(|e| Error::io(work, e))?;
        let fits = |ck: &Checkpoint| ck.point.file < self.files.len() && ck.files.len() == ck.point.file + 1;
        let resumed = match crate::resume::load_marker::<Checkpoint>(work, CHECKPOINT_FILE).filter(fits) {
            Some(ck) => match self.reopen(work, rejects, &ck) {
                Ok(open) => Some((ck, open)),
                Err(e) => {
                    // A checkpoint whose files do not match it: start the pass over.
                    eprintln!("syllabus: the prepare checkpoint cannot be used ({e}); tokenizing from the start");
                    None
                }
            },
            None => None,
        };
        let (mut st, mut out, mut rejects_out, point) = match resumed {
            Some((ck, (out, rejects_out))) => (ck.state, out, rejects_out, Some((ck.point, ck.files))),
            None => {
                let names: Vec<String> = match &self.domains {
                    DomainOf::Single(n) => vec![n.clone()],
                    DomainOf::PerFile { names, .. } => names.clone(),
                    DomainOf::Column(_, preset) => preset.clone(),
                    DomainOf::ById { .. } => Vec::new(),
                };
                let out = Outputs {
                    tokens: Store::create(&work.join(TOKENS_FILE))?,
                    ids: Store::create(&work.join(IDS_FILE))?,
                    records: (0..names.len()).map(|i| RecWriter::create(&rec_path(work, i))).collect::<Result<_>>()?,
                };
                let n = names.len();
                let st = State { names, documents: vec![0; n], tokens: vec![0; n], ..Default::default() };
                (st, out, rejects.map(RejectWriter::create).transpose()?, None)
            }
        };
        let resumed_from = point.as_ref().map(|_| st.read);
        let mut files: Vec<FileStats> = Vec::new();
        let mut reader = LakeReader::new(self.files, self.read, self.extras(), rejects_out.as_mut()).tracked();
        if let Some((point, stats)) = point {
            files = stats.clone();
            reader = reader.starting_at(&point, stats)?;
        }
        let bar = self.progress.rows("tokenize");
        bar.set_position(st.read);
        let (mut batches, mut checkpoints) = (0u64, 0u64);
        let mut since_checkpoint = 0u64;
        for_each_ordered(
            &mut reader,
            |b| self.work(b),
            |b, batch_out| {
                since_checkpoint += self.push(&b, batch_out, &mut st, &mut out, work)?;
                let end = b.end.as_deref().expect("a tracked reader");
                if files.len() <= b.file {
                    files.resize_with(b.file + 1, FileStats::default);
                }
                files[b.file] = end.stats.clone();
                bar.inc(b.batch.num_rows() as u64);
                batches += 1;
                crate::failpoint::hit(format_args!("prepare-batch-{batches}"));
                if since_checkpoint >= self.checkpoint_bytes {
                    out.sync()?;
                    if let Some(path) = rejects {
                        // The reader flushed each reject as it wrote it; make them durable too.
                        std::fs::File::open(path).and_then(|f| f.sync_data()).map_err(|e| Error::io(path, e))?;
                    }
                    let ck = Checkpoint {
                        point: end.point.clone(),
                        files: files.clone(),
                        rejects_len: end.rejects_len,
                        state: st.clone(),
                    };
                    crate::resume::save_marker(work, CHECKPOINT_FILE, &ck)?;
                    since_checkpoint = 0;
                    checkpoints += 1;
                    crate::failpoint::hit(format_args!("prepare-checkpoint-{checkpoints}"));
                }
                Ok(Flow::Continue)
            },
        )?;
        bar.finish_and_clear();
        let rejected = reader.into_stats().iter().map(|s| s.rejected).sum();
        out.finish()?;
        if let Some(r) = rejects_out {
            r.finish()?;
        }
        let State { names, documents, tokens, read, empty, .. } = st;
        // Domain ids: as configured, then the names found in a column sorted (stable whatever
        // the row order).
        let mut ids: Vec<usize> = (0..names.len()).collect();
        match &self.domains {
            DomainOf::Column(_, preset) => ids[preset.len()..].sort_by(|&a, &b| names[a].cmp(&names[b])),
            DomainOf::ById { .. } => {
                let key = |s: &str| (s.parse::<u64>().map_or(u64::MAX, |n| n), s.to_string());
                ids.sort_by_key(|&i| key(&names[i]));
            }
            _ => {}
        }
        Ok(Prepared {
            domains: ids.iter().map(|&i| names[i].clone()).collect(),
            record_files: ids.iter().map(|&i| format!("records/domain-{i}.rec")).collect(),
            documents: ids.iter().map(|&i| documents[i]).collect(),
            tokens: ids.iter().map(|&i| tokens[i]).collect(),
            read,
            empty,
            rejected,
            resumed_from,
        })
    }

    /// The stores and the rejects file of an interrupted run, cut back to its checkpoint.
    fn reopen(&self, work: &Path, rejects: Option<&Path>, ck: &Checkpoint) -> Result<(Outputs, Option<RejectWriter>)> {
        let st = &ck.state;
        let out = Outputs {
            tokens: Store::resume(&work.join(TOKENS_FILE), st.tok_off * 4)?,
            ids: Store::resume(&work.join(IDS_FILE), st.id_off)?,
            records: st
                .documents
                .iter()
                .enumerate()
                .map(|(i, &n)| RecWriter::resume(&rec_path(work, i), n))
                .collect::<Result<_>>()?,
        };
        let records = ck.files.iter().map(|f| f.rejected).sum();
        let rejects = rejects.map(|p| RejectWriter::reopen(p, Some((ck.rejects_len, records)))).transpose()?;
        Ok((out, rejects))
    }

    /// Append one batch's documents to the stores; returns the store bytes written.
    fn push(
        &self,
        b: &SourceBatch,
        batch_out: BatchOut,
        st: &mut State,
        out: &mut Outputs,
        work: &Path,
    ) -> Result<u64> {
        let ids = id_column(&b.batch)?;
        let before = st.tok_off * 4 + st.id_off;
        for (i, toks) in batch_out.tokens.iter().enumerate() {
            st.read += 1;
            if toks.is_empty() {
                st.empty += 1;
                continue;
            }
            let d = match (&self.domains, &batch_out.domain[i]) {
                (DomainOf::Single(_), _) => 0,
                (DomainOf::PerFile { of_file, .. }, _) => of_file[b.file],
                (DomainOf::Column(..) | DomainOf::ById { .. }, Some(name)) => {
                    match st.names.iter().position(|n| n == name) {
                        Some(d) => d,
                        None => {
                            if st.names.len() >= u16::MAX as usize {
                                return Err(Error::InvalidArgument("more than 65,535 domains".into()));
                            }
                            st.names.push(name.clone());
                            out.records.push(RecWriter::create(&rec_path(work, st.names.len() - 1))?);
                            st.documents.push(0);
                            st.tokens.push(0);
                            st.names.len() - 1
                        }
                    }
                }
                (DomainOf::Column(..) | DomainOf::ById { .. }, None) => unreachable!("domains are read for every row"),
            };
            let id = ids.value(i).as_bytes();
            let n_tokens = u32::try_from(toks.len())
                .map_err(|_| Error::InvalidArgument(format!("document {} has over 4 billion tokens", ids.value(i))))?;
            let rec = Rec {
                score: batch_out.score[i],
                loss: batch_out.loss[i],
                doc: st.read - 1,
                tok_off: st.tok_off,
                id_off: st.id_off,
                id_len: id.len() as u32,
                n_tokens,
            };
            out.tokens.write_tokens(toks)?;
            out.ids.write(id)?;
            st.tok_off += toks.len() as u64;
            st.id_off += id.len() as u64;
            out.records[d].push(&rec)?;
            st.documents[d] += 1;
            st.tokens[d] += rec.emitted_len();
        }
        Ok(st.tok_off * 4 + st.id_off - before)
    }
}

fn rec_path(work: &Path, domain: usize) -> PathBuf {
    work.join("records").join(format!("domain-{domain}.rec"))
}

/// Where prepare stands: everything that is not in the stores themselves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// Domains in order of first appearance while reading; sorted by name at the end for a
    /// column, kept in configuration order for files.
    names: Vec<String>,
    documents: Vec<u64>,
    tokens: Vec<u64>,
    read: u64,
    empty: u64,
    /// Tokens and id bytes in the stores.
    tok_off: u64,
    id_off: u64,
}

/// A resume point of prepare: where the reader stood after a batch and what was written up to
/// it. The stores are fsynced before it is saved, so they hold at least what it says; a resumed
/// run cuts them back to it and reads on from `point`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    point: ReadPoint,
    /// Counts of the files read so far.
    files: Vec<FileStats>,
    /// Bytes of the rejects file.
    rejects_len: u64,
    state: State,
}

/// Prepare's checkpoint in the work directory.
pub const CHECKPOINT_FILE: &str = "prepare.checkpoint.json";

/// The files a pass appends to.
struct Outputs {
    tokens: Store,
    ids: Store,
    records: Vec<RecWriter>,
}

impl Outputs {
    fn sync(&mut self) -> Result<()> {
        self.tokens.sync()?;
        self.ids.sync()?;
        self.records.iter_mut().try_for_each(RecWriter::sync)
    }

    fn finish(self) -> Result<()> {
        self.tokens.finish()?;
        self.ids.finish()?;
        self.records.into_iter().try_for_each(|w| w.finish().map(|_| ()))
    }
}

/// An append-only byte store, fsynced on finish.
struct Store {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Store {
    fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(Store { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 20, f) })
    }
    fn resume(path: &Path, len: u64) -> Result<Self> {
        let f = crate::sink::append_at(path, len)?;
        Ok(Store { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 20, f) })
    }
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|e| Error::io(&self.path, e))
    }
    /// Tokens as little-endian u32, in one copy.
    fn write_tokens(&mut self, toks: &[u32]) -> Result<()> {
        let mut bytes = Vec::with_capacity(toks.len() * 4);
        for t in toks {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        self.write(&bytes)
    }
    fn sync(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out.get_ref().sync_data().map_err(|e| Error::io(&self.path, e))
    }
    fn finish(self) -> Result<()> {
        let f = self.out.into_inner().map_err(|e| Error::io(&self.path, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

/// Random access to the token and id stores.
pub struct Stores {
    tokens: (PathBuf, File),
    ids: (PathBuf, File),
}

impl Stores {
    pub fn open(work: &Path) -> Result<Arc<Stores>> {
        let open = |name: &str| -> Result<(PathBuf, File)> {
            let p = work.join(name);
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            Ok((p, f))
        };
        Ok(Arc::new(Stores { tokens: open(TOKENS_FILE)?, ids: open(IDS_FILE)? }))
    }

    /// A document's tokens, appended to `out`.
    pub fn tokens(&self, r: &Rec, out: &mut Vec<u32>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; r.n_tokens as usize * 4];
        let (p, f) = &self.tokens;
        f.read_exact_at(&mut buf, r.tok_off * 4).map_err(|e| Error::io(p, e))?;
        out.extend(buf.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())));
        Ok(())
    }

    pub fn id(&self, r: &Rec) -> Result<String> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; r.id_len as usize];
        let (p, f) = &self.ids;
        f.read_exact_at(&mut buf, r.id_off).map_err(|e| Error::io(p, e))?;
        String::from_utf8(buf).map_err(|_| Error::InvalidArgument(format!("{}: corrupt id store", p.display())))
    }
}
