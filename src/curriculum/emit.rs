//! Stage "emit": follow the schedule document by document, reweight in windows, pack into
//! sequences, cut into shards and write them, journaled so an interrupted run resumes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, StringBuilder, UInt32Builder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use indexmap::IndexMap;

use crate::batch::RecordBatch;
use crate::curriculum::order::{sort_file, sort_key, Rec, RecFile};
use crate::curriculum::prepare::{Prepared, Stores};
use crate::curriculum::reweight::window_weights;
use crate::curriculum::schedule::{Mixer, Schedule};
use crate::curriculum::{CurriculumSpec, Exhausted, OrderMethod, Packing, ShardFormat};
use crate::error::{Error, Result};
use crate::shard::manifest::{FileEntry, PhaseReport, ShardEntry, Totals};
use crate::shard::{checksum, megatron, DocPiece, SeqMeta, Shard, TokenDtype, DOC_CONTINUED, DOC_CONTINUES};
use crate::sink::TableWriter;

/// Packs documents into sequences and sequences into shards.
pub struct ShardBuilder {
    dtype: TokenDtype,
    packed: bool,
    seq_len: usize,
    pad_id: u32,
    seqs_per_shard: usize,
    cur: Shard,
    /// Per domain: tokens of the current (open) sequence; and their weight sum.
    seq_domain_tokens: Vec<u64>,
    seq_weight_sum: f64,
    seq_tokens: u64,
    /// Index in `cur.docs` of the document still being written, if it is open.
    open_doc: Option<usize>,
    pub ready: Vec<Shard>,
    pub padding_tokens: u64,
}

impl ShardBuilder {
    pub fn new(
        dtype: TokenDtype,
        packing: Packing,
        seq_len: u32,
        pad_id: u32,
        seqs_per_shard: u64,
        domains: usize,
    ) -> Self {
        let cur = Shard {
            dtype,
            packed: packing == Packing::Concat,
            seq_len,
            pad_id,
            first_seq: 0,
            tokens: Vec::new(),
            seqs: Vec::new(),
            docs: Vec::new(),
        };
        ShardBuilder {
            dtype,
            packed: packing == Packing::Concat,
            seq_len: seq_len as usize,
            pad_id,
            seqs_per_shard: seqs_per_shard as usize,
            cur,
            seq_domain_tokens: vec![0; domains],
            seq_weight_sum: 0.0,
            seq_tokens: 0,
            open_doc: None,
            ready: Vec::new(),
            padding_tokens: 0,
        }
    }

    /// Global index of the sequence the next token goes into.
    fn next_seq(&self) -> u64 {
        self.cur.first_seq + (self.cur.tokens.len() / self.seq_len) as u64
    }

    /// Add a document (its end-of-document token included); returns the global index of the
    /// sequence its first token lands in.
    pub fn push_doc(&mut self, doc: u64, domain: u16, weight: f32, tokens: &[u32]) -> u64 {
        let first = self.next_seq();
        let mut rest = tokens;
        self.open_doc = None;
        while !rest.is_empty() {
            let fill = self.cur.tokens.len() % self.seq_len;
            let take = rest.len().min(self.seq_len - fill);
            match self.open_doc {
                Some(i) => self.cur.docs[i].len += take as u32,
                None => {
                    let flags = if rest.len() < tokens.len() { DOC_CONTINUED } else { 0 };
                    self.cur.docs.push(DocPiece {
                        start: self.cur.tokens.len() as u64,
                        doc,
                        len: take as u32,
                        weight,
                        domain,
                        flags,
                    });
                    self.open_doc = Some(self.cur.docs.len() - 1);
                }
            }
            self.cur.tokens.extend_from_slice(&rest[..take]);
            self.seq_domain_tokens[domain as usize] += take as u64;
            self.seq_weight_sum += weight as f64 * take as f64;
            self.seq_tokens += take as u64;
            rest = &rest[take..];
            let full = self.cur.tokens.len().is_multiple_of(self.seq_len);
            if !self.packed && !full && rest.is_empty() {
                self.pad_sequence();
            }
            if self.cur.tokens.len().is_multiple_of(self.seq_len) {
                self.close_sequence(!rest.is_empty());
            }
        }
        self.open_doc = None;
        first
    }

    fn pad_sequence(&mut self) {
        let fill = self.cur.tokens.len() % self.seq_len;
        if fill != 0 {
            let pad = self.seq_len - fill;
            self.cur.tokens.resize(self.cur.tokens.len() + pad, self.pad_id);
            self.padding_tokens += pad as u64;
        }
    }

    /// The open sequence is full: record its weight and domain; cut the shard when it is full.
    fn close_sequence(&mut self, doc_goes_on: bool) {
        let (mut best, mut best_n) = (0usize, 0u64);
        for (d, &n) in self.seq_domain_tokens.iter().enumerate() {
            if n > best_n {
                (best, best_n) = (d, n);
            }
        }
        let weight = if self.seq_tokens == 0 { 0.0 } else { (self.seq_weight_sum / self.seq_tokens as f64) as f32 };
        self.cur.seqs.push(SeqMeta { weight, domain: best as u16 });
        self.seq_domain_tokens.iter_mut().for_each(|n| *n = 0);
        self.seq_weight_sum = 0.0;
        self.seq_tokens = 0;
        if self.cur.seqs.len() == self.seqs_per_shard {
            if doc_goes_on {
                if let Some(i) = self.open_doc {
                    self.cur.docs[i].flags |= DOC_CONTINUES;
                }
            }
            self.open_doc = None;
            self.cut();
        }
    }

    fn cut(&mut self) {
        let next_first = self.cur.first_seq + self.cur.seqs.len() as u64;
        let fresh = Shard {
            dtype: self.dtype,
            packed: self.packed,
            seq_len: self.seq_len as u32,
            pad_id: self.pad_id,
            first_seq: next_first,
            tokens: Vec::new(),
            seqs: Vec::new(),
            docs: Vec::new(),
        };
        let done = std::mem::replace(&mut self.cur, fresh);
        self.ready.push(done);
    }

    /// Pad the last sequence and hand over the last shard.
    pub fn finish(&mut self) {
        if !self.cur.tokens.len().is_multiple_of(self.seq_len) {
            self.pad_sequence();
            self.close_sequence(false);
        }
        if !self.cur.seqs.is_empty() {
            self.cut();
        }
    }
}

/// Completed files, recorded as they are written so a resumed run does not write them again.
struct Journal {
    path: PathBuf,
    done: HashMap<String, String>,
    out: File,
}

impl Journal {
    fn open(path: &Path) -> Result<Journal> {
        let mut done = HashMap::new();
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let line = line.map_err(|e| Error::io(path, e))?;
                // A line cut short by a crash is ignored: its file is simply written again.
                if let Ok(e) = serde_json::from_str::<FileEntry>(&line) {
                    done.insert(e.path, e.checksum);
                }
            }
        }
        let out = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Journal { path: path.to_path_buf(), done, out })
    }

    fn record(&mut self, entries: &[FileEntry]) -> Result<()> {
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e).expect("entries serialize");
            buf.push(b'\n');
        }
        self.out.write_all(&buf).map_err(|e| Error::io(&self.path, e))?;
        self.out.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Writes shards in their formats and collects the manifest's entries.
struct ShardSink<'a> {
    out: &'a Path,
    formats: &'a [ShardFormat],
    megatron_code: u8,
    journal: Journal,
    pub entries: Vec<ShardEntry>,
    index: u64,
}

impl ShardSink<'_> {
    /// Write `bytes` at `rel` unless the journal says an identical file is there.
    fn put(&self, rel: &str, bytes: &[u8]) -> Result<FileEntry> {
        let sum = checksum(bytes);
        let path = self.out.join(rel);
        let present = self.journal.done.get(rel) == Some(&sum)
            && std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !present {
            crate::sink::write_atomic(&path, bytes)?;
        }
        Ok(FileEntry { path: rel.to_string(), bytes: bytes.len() as u64, checksum: sum })
    }

    fn write(&mut self, shard: &Shard) -> Result<()> {
        let i = self.index;
        self.index += 1;
        let tokens = shard.doc_tokens();
        let mut written = Vec::new();
        for f in self.formats {
            let (format, file, index) = match f {
                ShardFormat::Syllabus => {
                    let file = self.put(&format!("shards/shard-{i:05}.syl"), &shard.encode())?;
                    written.push(file.clone());
                    ("syllabus", file, None)
                }
                ShardFormat::Megatron => {
                    let (bin, idx) = megatron::encode(shard, self.megatron_code);
                    let bin = self.put(&format!("megatron/part-{i:05}.bin"), &bin)?;
                    let idx = self.put(&format!("megatron/part-{i:05}.idx"), &idx)?;
                    written.extend([bin.clone(), idx.clone()]);
                    ("megatron", bin, Some(idx))
                }
            };
            let entry = ShardEntry {
                path: file.path,
                format: format.into(),
                bytes: file.bytes,
                tokens,
                sequences: shard.seqs.len() as u64,
                first_sequence: shard.first_seq,
                documents: shard.docs.len() as u64,
                checksum: file.checksum,
                index,
            };
            self.entries.push(entry);
        }
        self.journal.record(&written)?;
        crate::failpoint::hit(format_args!("shard-{}", i + 1));
        Ok(())
    }
}

/// The documents of one domain in its ordering, pass after pass.
struct DomainStream {
    d: usize,
    unsorted: PathBuf,
    order_dir: PathBuf,
    method: OrderMethod,
    seed: u32,
    stride: u64,
    memory: usize,
    file: Option<RecFile>,
    /// Current (repeat) pass, and whether anything of it was emitted.
    pass: u32,
    used: bool,
    /// Folding sub-pass and next position.
    sub: u64,
    pos: u64,
    peeked: Option<Rec>,
}

impl DomainStream {
    fn sorted_path(&self, pass: u32) -> PathBuf {
        self.order_dir.join(format!("domain-{}-pass-{pass}.rec", self.d))
    }

    /// Begin pass `pass`: a fresh shuffle for random orderings, the same order otherwise.
    fn start(&mut self, pass: u32) -> Result<()> {
        let sorted_pass = if self.method == OrderMethod::Random { pass } else { 0 };
        let path = self.sorted_path(sorted_pass);
        if !path.exists() {
            let (method, seed) = (self.method, self.seed);
            sort_file(&self.unsorted, &path, &self.order_dir, self.memory, |r| sort_key(method, seed, sorted_pass, r))?;
            if sorted_pass > 0 {
                let _ = std::fs::remove_file(self.sorted_path(sorted_pass - 1));
            }
        }
        self.file = Some(RecFile::open(&path)?);
        self.pass = pass;
        self.used = false;
        self.sub = 0;
        self.pos = 0;
        Ok(())
    }

    /// The next document of the current pass.
    fn next(&mut self) -> Result<Option<Rec>> {
        let file = self.file.as_mut().expect("started");
        loop {
            if self.sub >= self.stride || self.sub >= file.len {
                return Ok(None);
            }
            if self.pos < file.len {
                let r = file.get(self.pos)?;
                self.pos += self.stride;
                return Ok(Some(r));
            }
            self.sub += 1;
            self.pos = self.sub;
        }
    }

    /// The document that comes next, starting another pass at the end of one when `repeat`;
    /// `None` when the domain has run out.
    fn peek(&mut self, repeat: bool) -> Result<Option<Rec>> {
        if self.peeked.is_none() {
            self.peeked = self.next()?;
            if self.peeked.is_none() && repeat {
                self.start(self.pass + 1)?;
                self.peeked = self.next()?;
            }
        }
        Ok(self.peeked)
    }

    fn take(&mut self) -> Rec {
        self.used = true;
        self.peeked.take().expect("peeked before taken")
    }

    fn passes_begun(&self) -> u32 {
        self.pass + u32::from(self.used)
    }
}

/// A document chosen, waiting for its window's weights.
struct Pending {
    rec: Rec,
    domain: usize,
    phase: usize,
    pass: u32,
}

/// The per-document table of the curriculum (`curriculum.parquet`).
struct CurriculumTable {
    writer: TableWriter,
    schema: SchemaRef,
    rows: usize,
    position: UInt64Builder,
    id: StringBuilder,
    domain: StringBuilder,
    phase: UInt32Builder,
    pass: UInt32Builder,
    tokens: UInt32Builder,
    score: Float64Builder,
    loss: Float64Builder,
    weight: Float64Builder,
    first_sequence: UInt64Builder,
}

impl CurriculumTable {
    fn create(path: &Path) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("position", DataType::UInt64, false),
            Field::new("id", DataType::Utf8, false),
            Field::new("domain", DataType::Utf8, false),
            Field::new("phase", DataType::UInt32, false),
            Field::new("pass", DataType::UInt32, false),
            Field::new("tokens", DataType::UInt32, false),
            Field::new("score", DataType::Float64, true),
            Field::new("loss", DataType::Float64, true),
            Field::new("weight", DataType::Float64, false),
            Field::new("first_sequence", DataType::UInt64, false),
        ]));
        Ok(CurriculumTable {
            writer: TableWriter::create(path, schema.clone())?,
            schema,
            rows: 0,
            position: UInt64Builder::new(),
            id: StringBuilder::new(),
            domain: StringBuilder::new(),
            phase: UInt32Builder::new(),
            pass: UInt32Builder::new(),
            tokens: UInt32Builder::new(),
            score: Float64Builder::new(),
            loss: Float64Builder::new(),
            weight: Float64Builder::new(),
            first_sequence: UInt64Builder::new(),
        })
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.position.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.phase.finish()),
            Arc::new(self.pass.finish()),
            Arc::new(self.tokens.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.loss.finish()),
            Arc::new(self.weight.finish()),
            Arc::new(self.first_sequence.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| Error::arrow("building the curriculum table", e))?;
        self.rows = 0;
        self.writer.write(&batch)
    }
}

/// What emission needs besides the spec.
pub struct Emit<'a> {
    pub spec: &'a CurriculumSpec,
    pub prepared: &'a Prepared,
    pub work: &'a Path,
    pub out: &'a Path,
    pub vocab_size: u32,
    pub eos: u32,
    pub pad: u32,
}

/// What emission produced, for the manifest.
pub struct Emitted {
    pub budget: u64,
    pub totals: Totals,
    pub phases: Vec<PhaseReport>,
    pub shards: Vec<ShardEntry>,
}

fn opt(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

impl Emit<'_> {
    pub fn run(&self) -> Result<Emitted> {
        let spec = self.spec;
        let prepared = self.prepared;
        let n = prepared.domains.len();
        let stores = Stores::open(self.work)?;
        let order_dir = self.work.join("order");
        std::fs::create_dir_all(&order_dir).map_err(|e| Error::io(&order_dir, e))?;
        let stride = if spec.order.method == OrderMethod::Folding { spec.order.passes as u64 } else { 1 };
        let mut streams = (0..n)
            .map(|d| {
                let mut s = DomainStream {
                    d,
                    unsorted: self.work.join(&prepared.record_files[d]),
                    order_dir: order_dir.clone(),
                    method: spec.order.method,
                    seed: spec.seed,
                    stride,
                    memory: (spec.order.sort_memory_mb << 20).max(1),
                    file: None,
                    pass: 0,
                    used: false,
                    sub: 0,
                    pos: 0,
                    peeked: None,
                };
                s.start(0)?;
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        let schedule = match &spec.schedule {
            Some(s) => Schedule::resolve(s, &prepared.domains, prepared.total_tokens())?,
            None => Schedule::natural(&prepared.tokens),
        };
        let on_exhausted = spec.schedule.as_ref().map_or(Exhausted::Stop, |s| s.on_exhausted);
        let dtype = TokenDtype::for_vocab(self.vocab_size);
        let mut builder =
            ShardBuilder::new(dtype, spec.tokenize.packing, spec.tokenize.seq_len, self.pad, spec.seqs_per_shard(), n);
        let mut sink = ShardSink {
            out: self.out,
            formats: &spec.output.formats,
            megatron_code: megatron::dtype_code(self.vocab_size),
            journal: Journal::open(&self.work.join("shards.journal"))?,
            entries: Vec::new(),
            index: 0,
        };
        let mut table = CurriculumTable::create(&self.out.join("curriculum.parquet"))?;
        let window = spec.reweight.as_ref().map_or(1024, |r| r.window);
        let mut pending: Vec<Pending> = Vec::with_capacity(window.min(1 << 16));
        let mut position = 0u64;
        let mut totals = Totals::default();
        let mut flush = |pending: &mut Vec<Pending>,
                         builder: &mut ShardBuilder,
                         sink: &mut ShardSink,
                         table: &mut CurriculumTable|
         -> Result<()> {
            let weights: Vec<f64> = match &spec.reweight {
                Some(r) => {
                    let losses: Vec<f64> = pending.iter().map(|p| p.rec.loss).collect();
                    let k = losses.len() as f64;
                    window_weights(&losses, r.strategy, r.temperature).into_iter().map(|w| w * k).collect()
                }
                None => vec![1.0; pending.len()],
            };
            let mut toks = Vec::new();
            for (p, w) in pending.drain(..).zip(weights) {
                toks.clear();
                stores.tokens(&p.rec, &mut toks)?;
                toks.push(self.eos);
                let first_seq = builder.push_doc(position, p.domain as u16, w as f32, &toks);
                for shard in builder.ready.drain(..) {
                    sink.write(&shard)?;
                }
                table.position.append_value(position);
                table.id.append_value(stores.id(&p.rec)?);
                table.domain.append_value(&prepared.domains[p.domain]);
                table.phase.append_value(p.phase as u32);
                table.pass.append_value(p.pass);
                table.tokens.append_value(toks.len() as u32);
                table.score.append_option(opt(p.rec.score));
                table.loss.append_option(opt(p.rec.loss));
                table.weight.append_value(w);
                table.first_sequence.append_value(first_seq);
                table.rows += 1;
                if table.rows == 8192 {
                    table.flush()?;
                }
                position += 1;
                totals.documents += 1;
                totals.tokens += toks.len() as u64;
            }
            Ok(())
        };

        let mut live: Vec<bool> = prepared.documents.iter().map(|&d| d > 0).collect();
        let mut total = 0u64;
        let mut phases = Vec::with_capacity(schedule.phases.len());
        for (pi, phase) in schedule.phases.iter().enumerate() {
            let mut mixer = Mixer::new(n);
            let mut exhausted = Vec::new();
            while total < phase.end_token {
                let m = schedule.mixture_at(pi, total);
                let Some(lm) = Mixer::live_mixture(&m, &live) else { break };
                let mut next_len = vec![0u64; n];
                let mut ran_out = false;
                for (d, stream) in streams.iter_mut().enumerate() {
                    if lm[d] > 0.0 {
                        match stream.peek(on_exhausted == Exhausted::Repeat)? {
                            Some(r) => next_len[d] = r.emitted_len(),
                            None => {
                                live[d] = false;
                                exhausted.push(prepared.domains[d].clone());
                                ran_out = true;
                            }
                        }
                    }
                }
                if ran_out {
                    continue;
                }
                let d = mixer.choose(&lm, &next_len).expect("a live domain with a share");
                let rec = streams[d].take();
                mixer.emitted(d, rec.emitted_len(), &lm);
                total += rec.emitted_len();
                pending.push(Pending { rec, domain: d, phase: pi, pass: streams[d].pass });
                if pending.len() == window {
                    flush(&mut pending, &mut builder, &mut sink, &mut table)?;
                }
            }
            let by_domain = |v: &[u64]| -> IndexMap<String, u64> {
                prepared.domains.iter().cloned().zip(v.iter().copied()).collect()
            };
            phases.push(PhaseReport {
                start_token: phase.start_token,
                end_token: phase.end_token,
                mixture: prepared.domains.iter().cloned().zip(phase.mixture.iter().copied()).collect(),
                tokens: by_domain(&mixer.tokens),
                documents: by_domain(&mixer.documents),
                passes: prepared.domains.iter().cloned().zip(streams.iter().map(|s| s.passes_begun())).collect(),
                exhausted,
            });
        }
        flush(&mut pending, &mut builder, &mut sink, &mut table)?;
        if totals.documents == 0 {
            let empty: Vec<&str> = prepared
                .domains
                .iter()
                .zip(&prepared.documents)
                .filter(|(_, &n)| n == 0)
                .map(|(d, _)| d.as_str())
                .collect();
            return Err(Error::InvalidArgument(format!(
                "no document to write: every phase puts its share on domains without documents ({}; their files are empty or every record was rejected)",
                if empty.is_empty() { "none listed".to_string() } else { empty.join(", ") }
            )));
        }
        builder.finish();
        for shard in builder.ready.drain(..) {
            sink.write(&shard)?;
        }
        table.flush()?;
        table.writer.finish()?;
        totals.padding_tokens = builder.padding_tokens;
        totals.sequences =
            sink.entries.iter().filter(|e| e.format == sink.entries[0].format).map(|e| e.sequences).sum();
        totals.shards = sink.index;
        Ok(Emitted { budget: schedule.budget, totals, phases, shards: sink.entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(packing: Packing, seq_len: u32, per_shard: u64, docs: &[(u16, Vec<u32>)]) -> (Vec<Shard>, u64) {
        let mut b = ShardBuilder::new(TokenDtype::U16, packing, seq_len, 99, per_shard, 3);
        for (i, (d, t)) in docs.iter().enumerate() {
            b.push_doc(i as u64, *d, 1.0 + i as f32, t);
        }
        b.finish();
        (std::mem::take(&mut b.ready), b.padding_tokens)
    }

    #[test]
    fn packing_keeps_the_token_stream_and_marks_boundaries() {
        let docs = vec![(0, vec![1, 2, 3]), (1, vec![4, 5, 6, 7, 8]), (2, vec![9])];
        let (shards, pad) = build(Packing::Concat, 4, 1, &docs);
        assert_eq!(shards.len(), 3);
        assert_eq!(pad, 3);
        let stream: Vec<u32> =
            shards.iter().flat_map(|s| s.doc_token_stream().flatten().copied().collect::<Vec<_>>()).collect();
        assert_eq!(stream, (1..=9).collect::<Vec<u32>>());
        // Doc 1 spans shards 0 and 1: flagged on both sides.
        assert_eq!(shards[0].docs[1].flags, DOC_CONTINUES);
        assert_eq!(shards[1].docs[0].flags, DOC_CONTINUED);
        assert_eq!(shards[1].docs[0].doc, 1);
        // Sequence 1 holds doc 1 (4 tokens): its domain and weight.
        assert_eq!(shards[1].seqs[0], SeqMeta { weight: 2.0, domain: 1 });
        // The last sequence: doc 2 (1 token) + 3 pads; padding does not count in the weight.
        assert_eq!(shards[2].tokens, vec![9, 99, 99, 99]);
        assert_eq!(shards[2].seqs[0], SeqMeta { weight: 3.0, domain: 2 });
        assert_eq!(shards.iter().map(|s| s.first_seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn padded_packing_gives_each_document_its_own_sequences() {
        let docs = vec![(0, vec![1, 2, 3]), (1, vec![4, 5, 6, 7, 8]), (2, vec![9])];
        let (shards, pad) = build(Packing::Pad, 4, 8, &docs);
        assert_eq!(shards.len(), 1);
        let s = &shards[0];
        assert_eq!(s.tokens, vec![1, 2, 3, 99, 4, 5, 6, 7, 8, 99, 99, 99, 9, 99, 99, 99]);
        assert_eq!(pad, 7);
        assert_eq!(s.seqs.iter().map(|m| m.domain).collect::<Vec<_>>(), vec![0, 1, 1, 2]);
        assert_eq!(s.docs.iter().map(|d| (d.start, d.len)).collect::<Vec<_>>(), vec![(0, 3), (4, 5), (12, 1)]);
    }
}
