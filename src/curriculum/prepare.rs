//! Stage "prepare": one pass over the document table that tokenizes every document into a token
//! store and writes one [`Rec`] per document to its domain's record file, in table order.
//!
//! Tokenization runs in parallel batches and is handed on in input order, so the stores are the
//! same bytes for any thread count. Documents with no tokens are counted and left out.
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
use crate::source::{Extras, InputFile, LakeReader, ReadOptions, RejectWriter, SourceBatch};
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
    pub loss_by: Option<String>,
    pub tok: &'a Tok,
    pub progress: &'a Progress,
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
            _ => vec![None; n],
        };
        let score = self.numbers(b, self.order_by.as_deref(), "order")?;
        let loss = self.numbers(b, self.loss_by.as_deref(), "loss")?;
        Ok(BatchOut { tokens, domain, score, loss })
    }

    /// Run the pass, writing the stores under `work`.
    pub fn run(&self, work: &Path, rejects: Option<&mut RejectWriter>) -> Result<Prepared> {
        std::fs::create_dir_all(work.join("records")).map_err(|e| Error::io(work, e))?;
        let tokens_path = work.join(TOKENS_FILE);
        let ids_path = work.join(IDS_FILE);
        let mut tokens_out = Store::create(&tokens_path)?;
        let mut ids_out = Store::create(&ids_path)?;
        // Domains in order of first appearance while reading; sorted by name at the end for a
        // column, kept in configuration order for files.
        let mut names: Vec<String> = match &self.domains {
            DomainOf::Single(n) => vec![n.clone()],
            DomainOf::PerFile { names, .. } => names.clone(),
            DomainOf::Column(_, preset) => preset.clone(),
        };
        let rec_path = |i: usize| work.join("records").join(format!("domain-{i}.rec"));
        let mut writers: Vec<RecWriter> = (0..names.len()).map(|i| RecWriter::create(&rec_path(i))).collect::<Result<_>>()?;
        let mut documents = vec![0u64; names.len()];
        let mut tokens = vec![0u64; names.len()];
        let (mut read, mut empty, mut tok_off, mut id_off, mut batches) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let bar = self.progress.rows("tokenize");
        let extras = self.extras();
        let mut reader = LakeReader::new(self.files, self.read, extras, rejects);
        for_each_ordered(&mut reader, |b| self.work(b), |b, out| {
            let ids = id_column(&b.batch)?;
            for (i, toks) in out.tokens.iter().enumerate() {
                read += 1;
                if toks.is_empty() {
                    empty += 1;
                    continue;
                }
                let d = match (&self.domains, &out.domain[i]) {
                    (DomainOf::Single(_), _) => 0,
                    (DomainOf::PerFile { of_file, .. }, _) => of_file[b.file],
                    (DomainOf::Column(..), Some(name)) => match names.iter().position(|n| n == name) {
                        Some(d) => d,
                        None => {
                            if names.len() >= u16::MAX as usize {
                                return Err(Error::InvalidArgument("more than 65,535 domains".into()));
                            }
                            names.push(name.clone());
                            writers.push(RecWriter::create(&rec_path(names.len() - 1))?);
                            documents.push(0);
                            tokens.push(0);
                            names.len() - 1
                        }
                    },
                    (DomainOf::Column(..), None) => unreachable!("domains are read for every row"),
                };
                let id = ids.value(i).as_bytes();
                let n_tokens = u32::try_from(toks.len())
                    .map_err(|_| Error::InvalidArgument(format!("document {} has over 4 billion tokens", ids.value(i))))?;
                let rec = Rec {
                    score: out.score[i],
                    loss: out.loss[i],
                    doc: read - 1,
                    tok_off,
                    id_off,
                    id_len: id.len() as u32,
                    n_tokens,
                };
                for t in toks {
                    tokens_out.write(&t.to_le_bytes())?;
                }
                ids_out.write(id)?;
                tok_off += toks.len() as u64;
                id_off += id.len() as u64;
                writers[d].push(&rec)?;
                documents[d] += 1;
                tokens[d] += rec.emitted_len();
            }
            bar.inc(b.batch.num_rows() as u64);
            batches += 1;
            crate::failpoint::hit(format_args!("prepare-batch-{batches}"));
            Ok(Flow::Continue)
        })?;
        bar.finish_and_clear();
        let rejected = reader.into_stats().iter().map(|s| s.rejected).sum();
        tokens_out.finish()?;
        ids_out.finish()?;
        for w in writers {
            w.finish()?;
        }
        // Domain ids: as configured, then the names found in a column sorted (stable whatever
        // the row order).
        let mut ids: Vec<usize> = (0..names.len()).collect();
        if let DomainOf::Column(_, preset) = &self.domains {
            ids[preset.len()..].sort_by(|&a, &b| names[a].cmp(&names[b]));
        }
        Ok(Prepared {
            domains: ids.iter().map(|&i| names[i].clone()).collect(),
            record_files: ids.iter().map(|&i| format!("records/domain-{i}.rec")).collect(),
            documents: ids.iter().map(|&i| documents[i]).collect(),
            tokens: ids.iter().map(|&i| tokens[i]).collect(),
            read,
            empty,
            rejected,
        })
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
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|e| Error::io(&self.path, e))
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
