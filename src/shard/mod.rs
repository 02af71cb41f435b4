//! Tokenized shards: syllabus's own format, the Megatron indexed dataset, the manifest, and
//! `syllabus verify`. The formats, as users read them (docs/shard-format.md):
//!
#![doc = include_str!("../../docs/shard-format.md")]

pub mod manifest;
pub mod megatron;
pub mod verify;

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"SYLSHARD";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 64;
pub const DOC_ENTRY_BYTES: usize = 32;
/// Document piece flag: it began in an earlier shard.
pub const DOC_CONTINUED: u16 = 1;
/// Document piece flag: it goes on in the next shard.
pub const DOC_CONTINUES: u16 = 2;

/// Token width on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtype {
    U16,
    U32,
}

impl TokenDtype {
    pub fn for_vocab(vocab_size: u32) -> TokenDtype {
        if vocab_size <= 1 << 16 {
            TokenDtype::U16
        } else {
            TokenDtype::U32
        }
    }

    pub fn width(self) -> usize {
        match self {
            TokenDtype::U16 => 2,
            TokenDtype::U32 => 4,
        }
    }

    /// The manifest's name for it: `u16` or `u32`.
    pub fn name(self) -> &'static str {
        match self {
            TokenDtype::U16 => "u16",
            TokenDtype::U32 => "u32",
        }
    }

    fn from_width(w: u8) -> Option<TokenDtype> {
        match w {
            2 => Some(TokenDtype::U16),
            4 => Some(TokenDtype::U32),
            _ => None,
        }
    }
}

/// A sequence's sample weight and domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeqMeta {
    pub weight: f32,
    pub domain: u16,
}

/// The part of one document that lies in a shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DocPiece {
    pub start: u64,
    pub doc: u64,
    pub len: u32,
    pub weight: f32,
    pub domain: u16,
    pub flags: u16,
}

/// One shard in memory: what is written, or what was read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub dtype: TokenDtype,
    pub packed: bool,
    pub seq_len: u32,
    pub pad_id: u32,
    pub first_seq: u64,
    /// `n_seq * seq_len` tokens.
    pub tokens: Vec<u32>,
    pub seqs: Vec<SeqMeta>,
    pub docs: Vec<DocPiece>,
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn bad(what: &str) -> Error {
    Error::InvalidArgument(format!("not a valid syllabus shard: {what}"))
}

impl Shard {
    /// Tokens that belong to documents (the rest is padding).
    pub fn doc_tokens(&self) -> u64 {
        self.docs.iter().map(|d| d.len as u64).sum()
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let n_seq = self.seqs.len();
        debug_assert_eq!(self.tokens.len(), n_seq * self.seq_len as usize);
        let w = self.dtype.width();
        let tokens_end = HEADER_BYTES + self.tokens.len() * w;
        let weights_end = tokens_end + 4 * n_seq;
        let docs_offset = align8(weights_end + 2 * n_seq);
        let mut out = Vec::with_capacity(docs_offset + DOC_ENTRY_BYTES * self.docs.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(w as u8);
        out.push(u8::from(self.packed));
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.seq_len.to_le_bytes());
        out.extend_from_slice(&self.pad_id.to_le_bytes());
        out.extend_from_slice(&(n_seq as u64).to_le_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&(self.docs.len() as u64).to_le_bytes());
        out.extend_from_slice(&(docs_offset as u64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        match self.dtype {
            TokenDtype::U16 => self.tokens.iter().for_each(|&t| out.extend_from_slice(&(t as u16).to_le_bytes())),
            TokenDtype::U32 => self.tokens.iter().for_each(|&t| out.extend_from_slice(&t.to_le_bytes())),
        }
        self.seqs.iter().for_each(|s| out.extend_from_slice(&s.weight.to_le_bytes()));
        self.seqs.iter().for_each(|s| out.extend_from_slice(&s.domain.to_le_bytes()));
        out.resize(docs_offset, 0);
        for d in &self.docs {
            out.extend_from_slice(&d.start.to_le_bytes());
            out.extend_from_slice(&d.doc.to_le_bytes());
            out.extend_from_slice(&d.len.to_le_bytes());
            out.extend_from_slice(&d.weight.to_le_bytes());
            out.extend_from_slice(&d.domain.to_le_bytes());
            out.extend_from_slice(&d.flags.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out
    }

    /// Parse a shard file's bytes, checking every size and offset.
    pub fn decode(bytes: &[u8]) -> Result<Shard> {
        let mut r = Cursor { b: bytes, at: 0 };
        if bytes.len() < HEADER_BYTES {
            return Err(bad(&format!("{} bytes, shorter than the {HEADER_BYTES}-byte header", bytes.len())));
        }
        if r.take(8)? != MAGIC {
            return Err(bad("wrong magic"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!("version {version}, this build reads {VERSION}")));
        }
        let width = r.take(1)?[0];
        let dtype = TokenDtype::from_width(width).ok_or_else(|| bad(&format!("token width {width}")))?;
        let flags = r.take(1)?[0];
        if flags & !1 != 0 {
            return Err(bad(&format!("unknown header flags {flags:#04x}")));
        }
        let packed = flags & 1 == 1;
        if r.take(2)? != [0, 0] {
            return Err(bad("reserved header bytes 14-15 are not zero"));
        }
        let seq_len = r.u32()?;
        let pad_id = r.u32()?;
        let n_seq = r.u64()? as usize;
        let first_seq = r.u64()?;
        let n_docs = r.u64()? as usize;
        let docs_offset = r.u64()? as usize;
        if r.take(8)? != [0; 8] {
            return Err(bad("reserved header bytes 56-63 are not zero"));
        }
        let n_tokens = n_seq.checked_mul(seq_len as usize).ok_or_else(|| bad("size overflow"))?;
        let tokens_end = n_tokens
            .checked_mul(dtype.width())
            .and_then(|b| b.checked_add(HEADER_BYTES))
            .ok_or_else(|| bad("size overflow"))?;
        let expect_docs_offset = align8(tokens_end + 6 * n_seq);
        let expect_len = n_docs.checked_mul(DOC_ENTRY_BYTES).and_then(|b| b.checked_add(expect_docs_offset));
        if docs_offset != expect_docs_offset || expect_len != Some(bytes.len()) {
            return Err(bad(&format!(
                "{} bytes, but the header describes {} (truncated or corrupt)",
                bytes.len(),
                expect_len.map_or("an impossible size".into(), |n| n.to_string())
            )));
        }
        r.at = HEADER_BYTES;
        let tokens: Vec<u32> = match dtype {
            TokenDtype::U16 => {
                r.take(n_tokens * 2)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect()
            }
            TokenDtype::U32 => {
                r.take(n_tokens * 4)?.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
            }
        };
        let weights: Vec<f32> =
            r.take(4 * n_seq)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(bad(&format!("sequence {i} has weight {}, not a finite number >= 0", weights[i])));
        }
        let domains: Vec<u16> = r.take(2 * n_seq)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        if r.take(docs_offset - r.at)?.iter().any(|&b| b != 0) {
            return Err(bad("the padding before the document table is not zero"));
        }
        let seqs = weights.into_iter().zip(domains).map(|(weight, domain)| SeqMeta { weight, domain }).collect();
        r.at = docs_offset;
        let mut docs = Vec::with_capacity(n_docs);
        for _ in 0..n_docs {
            let start = r.u64()?;
            let doc = r.u64()?;
            let len = r.u32()?;
            let weight = f32::from_le_bytes(r.take(4)?.try_into().unwrap());
            let domain = u16::from_le_bytes(r.take(2)?.try_into().unwrap());
            let flags = u16::from_le_bytes(r.take(2)?.try_into().unwrap());
            if r.take(4)? != [0; 4] {
                return Err(bad(&format!("document {doc}: reserved bytes are not zero")));
            }
            if flags & !(DOC_CONTINUED | DOC_CONTINUES) != 0 {
                return Err(bad(&format!("document {doc}: unknown flags {flags:#06x}")));
            }
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(bad(&format!("document {doc} has weight {weight}, not a finite number >= 0")));
            }
            if start.checked_add(len as u64).is_none_or(|end| end > n_tokens as u64) {
                return Err(bad(&format!("document {doc} lies outside the token array")));
            }
            docs.push(DocPiece { start, doc, len, weight, domain, flags });
        }
        Ok(Shard { dtype, packed, seq_len, pad_id, first_seq, tokens, seqs, docs })
    }

    /// What does not match the manifest `m` and this shard's entry in it (empty when all
    /// does). verify, serve and SQL all refuse a shard for any of these.
    pub fn problems_against(&self, m: &manifest::Manifest, e: &manifest::ShardEntry) -> Vec<String> {
        let mut p = Vec::new();
        if self.dtype.name() != m.token_dtype {
            p.push(format!("tokens are {}, the manifest says {}", self.dtype.name(), m.token_dtype));
        }
        let packed = m.packing == "concat";
        if self.packed != packed {
            p.push(format!(
                "the header says {}, the manifest's packing is {:?}",
                if self.packed { "packed" } else { "padded" },
                m.packing
            ));
        }
        if self.pad_id != m.pad_id {
            p.push(format!("pad_id {}, the manifest says {}", self.pad_id, m.pad_id));
        }
        if self.seq_len != m.seq_len {
            p.push(format!("sequence length {}, the manifest says {}", self.seq_len, m.seq_len));
        }
        if self.first_seq != e.first_sequence || self.seqs.len() as u64 != e.sequences {
            p.push(format!(
                "holds sequences {}..+{}, the manifest says {}..+{}",
                self.first_seq,
                self.seqs.len(),
                e.first_sequence,
                e.sequences
            ));
        }
        if self.doc_tokens() != e.tokens || self.docs.len() as u64 != e.documents {
            p.push(format!(
                "{} tokens in {} documents, the manifest says {} in {}",
                self.doc_tokens(),
                self.docs.len(),
                e.tokens,
                e.documents
            ));
        }
        let n = m.domains.len();
        if let Some(d) =
            self.seqs.iter().map(|s| s.domain).chain(self.docs.iter().map(|d| d.domain)).find(|&d| d as usize >= n)
        {
            p.push(format!("domain id {d}, outside the manifest's {n} domains"));
        }
        if let Some(t) = self.tokens.iter().find(|&&t| t >= m.vocab_size) {
            p.push(format!("token id {t}, outside the vocabulary of {}", m.vocab_size));
        }
        p
    }

    /// Padding tokens of this shard (its sequences' tokens that belong to no document).
    pub fn padding_tokens(&self) -> u64 {
        (self.seqs.len() as u64 * self.seq_len as u64).saturating_sub(self.doc_tokens())
    }

    /// The tokens of every document piece, in order (what the Megatron files hold).
    pub fn doc_token_stream(&self) -> impl Iterator<Item = &[u32]> {
        self.docs.iter().map(|d| &self.tokens[d.start as usize..(d.start + d.len as u64) as usize])
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// `xxh3-128:` and the hex digest: fast enough to check every byte at staging time.
pub fn checksum(bytes: &[u8]) -> String {
    format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// A non-empty relative path of plain components (no `..`, `.`, root or prefix).
pub fn is_plain_relative(rel: &str) -> bool {
    !rel.is_empty() && std::path::Path::new(rel).components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Where a file the manifest lists lies: `rel` must be a relative path of plain components
/// (no `..`, no root), and what it names, once links are resolved, a regular file inside `dir`.
/// A manifest can thus never make syllabus read `/etc/passwd`, `/dev/zero` or a FIFO.
pub fn listed_path(dir: &std::path::Path, rel: &str) -> std::result::Result<std::path::PathBuf, String> {
    if !is_plain_relative(rel) {
        return Err("not a relative path inside the curriculum's directory".into());
    }
    let full = dir.join(rel);
    let real = std::fs::canonicalize(&full).map_err(|e| format!("cannot be read: {e}"))?;
    let root = std::fs::canonicalize(dir).map_err(|e| format!("the directory cannot be read: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!("resolves to {}, outside the curriculum's directory", real.display()));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    Ok(real)
}

/// A file the manifest lists (see [`listed_path`]), its size checked before it is read, then
/// its checksum; the error says what does not match (the caller names the file).
pub fn read_verified(dir: &std::path::Path, rel: &str, bytes: u64, sum: &str) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    // Its length and a reader: a local file (inside `dir`, see `listed_path`), or an object in
    // a store (a plain relative key under the prefix), streamed.
    let (len, reader): (u64, Box<dyn Read>) = if crate::store::is_remote(dir) {
        if !is_plain_relative(rel) {
            return Err("not a relative path inside the curriculum's directory".into());
        }
        let path = dir.join(rel);
        let len = match crate::store::stat(&path) {
            Ok(Some(m)) => m.len,
            Ok(None) => return Err("cannot be read: no such object".into()),
            Err(e) => return Err(format!("cannot be read: {e}")),
        };
        (len, crate::store::open(&path).map_err(|e| format!("cannot be read: {e}"))?)
    } else {
        let path = listed_path(dir, rel)?;
        let f = std::fs::File::open(&path).map_err(|e| format!("cannot be read: {e}"))?;
        (f.metadata().map_err(|e| format!("cannot be read: {e}"))?.len(), Box::new(f))
    };
    if len != bytes {
        return Err(format!("{len} bytes, the manifest says {bytes} (truncated or replaced)"));
    }
    let mut data = Vec::with_capacity(bytes as usize);
    // Never more than the manifest's size, even if the file grows meanwhile.
    reader.take(bytes + 1).read_to_end(&mut data).map_err(|e| format!("cannot be read: {e}"))?;
    check_read(data, bytes, sum)
}

/// The bytes read of a listed file against the manifest's size and checksum.
fn check_read(data: Vec<u8>, bytes: u64, sum: &str) -> std::result::Result<Vec<u8>, String> {
    if data.len() as u64 != bytes {
        return Err(format!("{} bytes, the manifest says {bytes} (changed while read)", data.len()));
    }
    let got = checksum(&data);
    if got != sum {
        return Err(format!("checksum {got} does not match the manifest's {sum}"));
    }
    Ok(data)
}

/// A shard the manifest `m` lists as `e`, as serve, SQL and eval take it: its size and checksum
/// ([`read_verified`]), then every header field against the manifest
/// ([`Shard::problems_against`]): what verify calls bad is refused. The file's bytes and the
/// decoded shard; the error says what does not match (the caller names the file).
pub fn read_listed(
    dir: &std::path::Path,
    m: &manifest::Manifest,
    e: &manifest::ShardEntry,
) -> std::result::Result<(Vec<u8>, Shard), String> {
    let bytes = read_verified(dir, &e.path, e.bytes, &e.checksum)?;
    let shard = Shard::decode(&bytes).map_err(|err| err.to_string())?;
    match shard.problems_against(m, e).into_iter().next() {
        Some(p) => Err(p),
        None => Ok((bytes, shard)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dtype: TokenDtype) -> Shard {
        Shard {
            dtype,
            packed: true,
            seq_len: 4,
            pad_id: 1,
            first_seq: 7,
            tokens: vec![5, 6, 0, 9, 9, 0, 1, 1],
            seqs: vec![SeqMeta { weight: 0.5, domain: 2 }, SeqMeta { weight: 1.0, domain: 0 }],
            docs: vec![
                DocPiece { start: 0, doc: 3, len: 3, weight: 0.5, domain: 2, flags: DOC_CONTINUED },
                DocPiece { start: 3, doc: 4, len: 3, weight: 1.0, domain: 0, flags: 0 },
            ],
        }
    }

    #[test]
    fn round_trips_and_rejects_truncation() {
        for dt in [TokenDtype::U16, TokenDtype::U32] {
            let s = sample(dt);
            let bytes = s.encode();
            assert_eq!(&bytes[..8], MAGIC);
            assert_eq!(Shard::decode(&bytes).unwrap(), s);
            for cut in [0, 10, 64, bytes.len() - 1] {
                assert!(Shard::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Shard::decode(&longer).is_err());
        }
        let streams: Vec<Vec<u32>> = sample(TokenDtype::U16).doc_token_stream().map(|t| t.to_vec()).collect();
        assert_eq!(streams, vec![vec![5, 6, 0], vec![9, 9, 0]]);
    }

    #[test]
    fn reserved_bytes_flags_and_weights_are_checked() {
        let bytes = sample(TokenDtype::U16).encode();
        let docs_offset = u64::from_le_bytes(bytes[48..56].try_into().unwrap()) as usize;
        let weights_at = HEADER_BYTES + 8 * 2;
        for (at, what) in [
            (13, "unknown header flags"),
            (14, "reserved header bytes 14-15"),
            (60, "reserved header bytes 56-63"),
            (docs_offset - 1, "padding before the document table"),
            (docs_offset + 28, "reserved bytes are not zero"),
            (docs_offset + 27, "unknown flags"),
        ] {
            let mut b = bytes.clone();
            b[at] |= 0x80;
            let e = Shard::decode(&b).unwrap_err().to_string();
            assert!(e.contains(what), "byte {at}: {e}");
        }
        let mut b = bytes.clone();
        b[weights_at..weights_at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Shard::decode(&b).unwrap_err().to_string().contains("weight NaN"));
    }

    #[test]
    fn listed_paths_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shards")).unwrap();
        std::fs::write(dir.path().join("shards/a.syl"), b"x").unwrap();
        assert!(listed_path(dir.path(), "shards/a.syl").is_ok());
        for bad in ["../../../../etc/passwd", "/etc/passwd", "", "shards/../shards/a.syl", "shards"] {
            assert!(listed_path(dir.path(), bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("shards/z.syl")).unwrap();
        assert!(listed_path(dir.path(), "shards/z.syl").unwrap_err().contains("outside"));
        assert!(read_verified(dir.path(), "shards/a.syl", 2, "x").unwrap_err().contains("1 bytes"));
    }

    #[test]
    fn dtype_by_vocabulary() {
        assert_eq!(TokenDtype::for_vocab(50_257), TokenDtype::U16);
        assert_eq!(TokenDtype::for_vocab(65_536), TokenDtype::U16);
        assert_eq!(TokenDtype::for_vocab(65_537), TokenDtype::U32);
    }
}
