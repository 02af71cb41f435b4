//! `syllabus verify OUT`: re-read every file the manifest lists and check it: size, checksum,
//! structure, sequence numbering, token counts against the manifest's totals and phases, and,
//! when both formats were written, that the Megatron files hold the same tokens as the shards.
//!
//! Memory: one shard (and its Megatron pair) at a time.

use std::path::Path;

use crate::error::{Error, Result};
use crate::shard::manifest::{Manifest, ShardEntry};
use crate::shard::{megatron, read_verified, Shard, DOC_CONTINUED};

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
    read_verified(dir, rel, bytes, sum).map_err(|what| problems.push(format!("{rel}: {what}"))).ok()
}

/// Files under `shards/` and `megatron/` that the manifest does not list.
fn unlisted(dir: &Path, m: &Manifest) -> Vec<String> {
    let listed: std::collections::HashSet<&str> = m
        .shards
        .iter()
        .flat_map(|e| std::iter::once(e.path.as_str()).chain(e.index.as_ref().map(|i| i.path.as_str())))
        .collect();
    let mut out = Vec::new();
    for sub in ["shards", "megatron"] {
        // A local directory, or a store prefix.
        let Ok(entries) = crate::store::list_dir(&dir.join(sub)) else { continue };
        let mut names: Vec<String> =
            entries.iter().filter_map(|p| p.file_name()).map(|n| format!("{sub}/{}", n.to_string_lossy())).collect();
        names.sort();
        out.extend(names.into_iter().filter(|n| !n.ends_with(".tmp") && !listed.contains(n.as_str())));
    }
    out
}

/// Verify the curriculum under `dir`: every manifest field, against the format, each other
/// and the files; every header field of every shard against the manifest.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let m = Manifest::load_unchecked(dir)?;
    let mut r = VerifyReport { problems: m.problems(), ..Default::default() };
    for f in unlisted(dir, &m) {
        r.problems.push(format!("{f}: in the directory but not in the manifest"));
    }
    let mut documents = 0u64;
    let mut padding = 0u64;
    // Shard streams per index, to compare formats: the syllabus shard of the same index.
    let mut last_syllabus: Option<(u64, Shard)> = None;
    for e in &m.shards {
        let ShardEntry { path, format, bytes, tokens, first_sequence, index, .. } = e;
        r.files += 1;
        r.bytes += bytes;
        match format.as_str() {
            "syllabus" => {
                let Some(data) = read_checked(dir, path, *bytes, &e.checksum, &mut r.problems) else { continue };
                r.shards += 1;
                let shard = match Shard::decode(&data) {
                    Ok(s) => s,
                    Err(err) => {
                        r.problems.push(format!("{path}: {err}"));
                        continue;
                    }
                };
                r.problems.extend(shard.problems_against(&m, e).into_iter().map(|p| format!("{path}: {p}")));
                documents += shard.docs.iter().filter(|d| d.flags & DOC_CONTINUED == 0).count() as u64;
                padding += shard.padding_tokens();
                r.sequences += shard.seqs.len() as u64;
                r.tokens += shard.doc_tokens();
                last_syllabus = Some((*first_sequence, shard));
            }
            "megatron" => {
                let Some(idx) = index else { continue };
                r.files += 1;
                r.bytes += idx.bytes;
                let Some(data) = read_checked(dir, path, *bytes, &e.checksum, &mut r.problems) else { continue };
                let Some(idx_data) = read_checked(dir, &idx.path, idx.bytes, &idx.checksum, &mut r.problems) else {
                    continue;
                };
                match megatron::decode(&data, &idx_data) {
                    Err(err) => r.problems.push(format!("{path}: {err}")),
                    Ok(ix) => {
                        let n: u64 = ix.lengths.iter().map(|&l| l as u64).sum();
                        if n != *tokens {
                            r.problems.push(format!("{path}: {n} tokens, the manifest says {tokens}"));
                        }
                        if let Some(t) = ix.sequences.iter().flatten().find(|&&t| t >= m.vocab_size) {
                            r.problems
                                .push(format!("{path}: token id {t}, outside the vocabulary of {}", m.vocab_size));
                        }
                        if let Some((first, shard)) = &last_syllabus {
                            if first == first_sequence
                                && !shard.doc_token_stream().map(|t| t.to_vec()).eq(ix.sequences.iter().cloned())
                            {
                                r.problems.push(format!(
                                    "{path}: tokens differ from the syllabus shard of the same sequences"
                                ));
                            }
                        }
                    }
                }
            }
            _ => {} // named by Manifest::problems
        }
    }
    if r.shards > 0 {
        let t = &m.totals;
        if documents != t.documents {
            r.problems
                .push(format!("the shards hold {documents} documents, the manifest's totals say {}", t.documents));
        }
        if padding != t.padding_tokens {
            r.problems.push(format!(
                "the shards hold {padding} padding tokens, the manifest's totals say {}",
                t.padding_tokens
            ));
        }
        if r.sequences != t.sequences || r.tokens != t.tokens {
            r.problems.push(format!(
                "the shards hold {} sequences and {} tokens, the manifest's totals say {} and {}",
                r.sequences, r.tokens, t.sequences, t.tokens
            ));
        }
    }
    if r.shards == 0 && r.files == 0 && !m.shards.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: no shard could be read", dir.display())));
    }
    Ok(r)
}
