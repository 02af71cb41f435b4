//! Tokenizers: a Hugging Face `tokenizer.json` to turn documents into token ids, and BPE
//! training for users who have none (`syllabus tokenizer train`).
//!
//! Documents are encoded without the tokenizer's own special tokens (no BOS/CLS added by a
//! post-processor); the curriculum appends one end-of-document token itself.
//!
//! Memory: encoding is per document. Training keeps one count per distinct pre-token (word)
//! of the training text, as BPE needs; the text itself is streamed batch by batch.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerImpl,
};

use crate::batch::text_column;
use crate::error::{Error, Result};
use crate::source::{Extras, InputFile, LakeReader, ReadOptions, RejectWriter};

/// End-of-document tokens looked for, in order, when none is named.
pub const EOS_CANDIDATES: &[&str] = &["<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]"];
/// Padding tokens looked for, in order, when none is named (the EOS token is the fallback).
pub const PAD_CANDIDATES: &[&str] = &["<pad>", "<|pad|>", "[PAD]"];
/// Special tokens of a tokenizer that syllabus trains.
pub const TRAINED_SPECIALS: &[&str] = &["<|endoftext|>", "<pad>"];

/// A loaded `tokenizer.json`.
pub struct Tok {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// `sha256:` and the hex digest of the file's bytes.
    hash: String,
    vocab_size: u32,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: {e}", path.display()))
}

impl Tok {
    pub fn load(path: &Path) -> Result<Tok> {
        let bytes = crate::store::read(path)?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| tok_err(path, format!("not a tokenizer.json: {e}")))?;
        let hash = format!("sha256:{:x}", Sha256::digest(&bytes));
        // Ids are dense from 0; added tokens may sit above the model's vocabulary.
        let max_added = inner.get_added_tokens_decoder().keys().max().map_or(0, |&id| id + 1);
        let vocab_size = (inner.get_vocab_size(true) as u32).max(max_added);
        Ok(Tok { inner, path: path.to_path_buf(), hash, vocab_size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// One more than the largest token id.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The id of `name`, or of the first of `candidates` the vocabulary has.
    pub fn special_id(&self, name: Option<&str>, candidates: &[&str], what: &str) -> Result<Option<u32>> {
        match name {
            Some(n) => self
                .inner
                .token_to_id(n)
                .map(Some)
                .ok_or_else(|| tok_err(&self.path, format!("the {what} token {n:?} is not in the vocabulary"))),
            None => Ok(candidates.iter().find_map(|c| self.inner.token_to_id(c))),
        }
    }

    /// The end-of-document token: `name`, or the first of [`EOS_CANDIDATES`] it has.
    pub fn eos_id(&self, name: Option<&str>) -> Result<u32> {
        self.special_id(name, EOS_CANDIDATES, "end-of-document")?.ok_or_else(|| {
            tok_err(&self.path, format!("no end-of-document token among {EOS_CANDIDATES:?}: name one (tokenize.eos)"))
        })
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc =
            self.inner.encode_fast(text, false).map_err(|e| tok_err(&self.path, format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| tok_err(&self.path, format!("decoding failed: {e}")))
    }
}

/// How to train a BPE tokenizer.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub vocab_size: usize,
    pub min_frequency: u64,
}

/// What training read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    pub documents: u64,
    pub vocab_size: usize,
    pub out: PathBuf,
}

/// Train a byte-level BPE tokenizer (GPT-2 style pre-tokenization, so any text encodes
/// without unknown tokens) on the text of a lake, with `<|endoftext|>` and `<pad>` as
/// special tokens 0 and 1, and write it as `tokenizer.json` (atomically).
///
/// Training is deterministic: the same text and options give the same file.
pub fn train(
    files: &[InputFile],
    read: &ReadOptions,
    opts: &TrainOptions,
    rejects: Option<&mut RejectWriter>,
    out: &Path,
) -> Result<TrainReport> {
    let specials: Vec<AddedToken> = TRAINED_SPECIALS.iter().map(|s| AddedToken::from(s.to_string(), true)).collect();
    if opts.vocab_size < 256 + specials.len() {
        return Err(Error::InvalidArgument(format!(
            "--vocab-size {} is too small: byte-level BPE needs at least {} (256 bytes and the special tokens)",
            opts.vocab_size,
            256 + specials.len()
        )));
    }
    crate::limits::VOCAB_SIZE
        .check(opts.vocab_size as u64)
        .map_err(|e| Error::InvalidArgument(format!("--vocab-size: {e}")))?;
    let mut trainer = BpeTrainer::builder()
        .vocab_size(opts.vocab_size)
        .min_frequency(opts.min_frequency)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tk: TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper> =
        TokenizerImpl::new(BPE::default());
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tk.with_decoder(Some(ByteLevelDecoder::default()));

    // Feed the text batch by batch; the trainer's word counts are what stays in memory.
    let mut reader = LakeReader::new(files, read, Extras::none(), rejects);
    let mut documents = 0u64;
    let mut failure: Option<Error> = None;
    let texts = std::iter::from_fn(|| match reader.next()? {
        Ok(b) => {
            let texts: Vec<String> = match text_column(&b.batch) {
                Ok(t) => t.iter().map(|s| s.unwrap_or("").to_string()).collect(),
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            documents += texts.len() as u64;
            Some(texts)
        }
        Err(e) => {
            failure = Some(e);
            None
        }
    })
    .flatten();
    tk.train(&mut trainer, texts).map_err(|e| tok_err(out, format!("training failed: {e}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    if documents == 0 {
        return Err(Error::InvalidArgument("no documents to train a tokenizer on".into()));
    }
    let tokenizer: tokenizers::Tokenizer = tk.into();
    let json = tokenizer.to_string(true).map_err(|e| tok_err(out, e))?;
    crate::sink::write_atomic(out, json.as_bytes())?;
    Ok(TrainReport { documents, vocab_size: tokenizer.get_vocab_size(true), out: out.to_path_buf() })
}
