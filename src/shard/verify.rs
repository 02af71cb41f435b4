//! `syllabus verify OUT`: re-read every file the manifest lists and check it: size, checksum,
//! structure, sequence numbering, token counts against the manifest's totals and phases, and,
//! when both formats were written, that the Megatron files hold the same tokens as the shards.
//!
//! Memory: one shard (and its Megatron pair) at a time.

use std::path::Path;

use crate::error::{Error, Result};
use crate::shard::manifest::{Manifest, ShardEntry};
use crate::shard::{megatron, read_verified, Shard};

/// What verification found. `problems` is empty when everything checks.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub files: u64,
    pub bytes: u64,
    pub shards: u64,
    pub sequences: u64,
    pub tokens: u64,
    pub problems: Vec<String>,
}

fn read_checked(dir: &Path, rel: &str, bytes: u64, sum: &str, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    read_verified(&dir.join(rel), bytes, sum).map_err(|what| problems.push(format!("{rel}: {what}"))).ok()
}

/// Verify the curriculum under `dir`.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let m = Manifest::load(dir)?;
    let mut r = VerifyReport::default();
    let mut next_seq: std::collections::HashMap<&str, u64> = Default::default();
    let mut tokens_by_format: std::collections::HashMap<&str, u64> = Default::default();
    let mut seqs_by_format: std::collections::HashMap<&str, u64> = Default::default();
    // Shard streams per index, to compare formats: the syllabus shard of the same index.
    let mut last_syllabus: Option<(u64, Shard)> = None;
    for e in &m.shards {
        let ShardEntry { path, format, bytes, tokens, sequences, first_sequence, documents, checksum: sum, index } = e;
        let expect_first = next_seq.entry(format.as_str()).or_default();
        if *first_sequence != *expect_first {
            r.problems.push(format!("{path}: starts at sequence {first_sequence}, expected {expect_first}"));
        }
        *expect_first = first_sequence + sequences;
        *tokens_by_format.entry(format.as_str()).or_default() += tokens;
        *seqs_by_format.entry(format.as_str()).or_default() += sequences;
        r.files += 1;
        r.bytes += bytes;
        let Some(data) = read_checked(dir, path, *bytes, sum, &mut r.problems) else { continue };
        match format.as_str() {
            "syllabus" => {
                r.shards += 1;
                let shard = match Shard::decode(&data) {
                    Ok(s) => s,
                    Err(err) => {
                        r.problems.push(format!("{path}: {err}"));
                        continue;
                    }
                };
                let mut bad = |what: String| r.problems.push(format!("{path}: {what}"));
                if shard.seq_len != m.seq_len {
                    bad(format!("sequence length {}, the manifest says {}", shard.seq_len, m.seq_len));
                }
                if shard.first_seq != *first_sequence || shard.seqs.len() as u64 != *sequences {
                    bad(format!("holds sequences {}..+{}, the manifest says {first_sequence}..+{sequences}", shard.first_seq, shard.seqs.len()));
                }
                if shard.doc_tokens() != *tokens || shard.docs.len() as u64 != *documents {
                    bad(format!("{} tokens in {} documents, the manifest says {tokens} in {documents}", shard.doc_tokens(), shard.docs.len()));
                }
                if shard.seqs.iter().any(|s| s.domain as usize >= m.domains.len()) || shard.docs.iter().any(|d| d.domain as usize >= m.domains.len()) {
                    bad(format!("a domain id outside the manifest's {} domains", m.domains.len()));
                }
                if shard.tokens.iter().any(|&t| t >= m.vocab_size) {
                    bad(format!("a token id outside the vocabulary of {}", m.vocab_size));
                }
                r.sequences += shard.seqs.len() as u64;
                r.tokens += shard.doc_tokens();
                last_syllabus = Some((*first_sequence, shard));
            }
            "megatron" => {
                let Some(idx) = index else {
                    r.problems.push(format!("{path}: no index file listed"));
                    continue;
                };
                let Some(idx_data) = read_checked(dir, &idx.path, idx.bytes, &idx.checksum, &mut r.problems) else { continue };
                match megatron::decode(&data, &idx_data) {
                    Err(err) => r.problems.push(format!("{path}: {err}")),
                    Ok(ix) => {
                        let n: u64 = ix.lengths.iter().map(|&l| l as u64).sum();
                        if n != *tokens {
                            r.problems.push(format!("{path}: {n} tokens, the manifest says {tokens}"));
                        }
                        if let Some((first, shard)) = &last_syllabus {
                            if first == first_sequence
                                && !shard.doc_token_stream().map(|t| t.to_vec()).eq(ix.sequences.iter().cloned())
                            {
                                r.problems.push(format!("{path}: tokens differ from the syllabus shard of the same sequences"));
                            }
                        }
                    }
                }
                r.files += 1;
                r.bytes += idx.bytes;
            }
            other => r.problems.push(format!("{path}: unknown format {other:?}")),
        }
    }
    for (format, &t) in &tokens_by_format {
        if t != m.totals.tokens {
            r.problems.push(format!("{format} shards hold {t} tokens, the manifest's totals say {}", m.totals.tokens));
        }
    }
    for (format, &s) in &seqs_by_format {
        if s != m.totals.sequences {
            r.problems.push(format!("{format} shards hold {s} sequences, the manifest's totals say {}", m.totals.sequences));
        }
    }
    let phase_tokens: u64 = m.phases.iter().flat_map(|p| p.tokens.values()).sum();
    if phase_tokens != m.totals.tokens {
        r.problems.push(format!("the phases add up to {phase_tokens} tokens, the totals say {}", m.totals.tokens));
    }
    if r.shards == 0 && r.files == 0 && !m.shards.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: no shard could be read", dir.display())));
    }
    Ok(r)
}
