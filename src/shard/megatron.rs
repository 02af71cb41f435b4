//! Megatron-LM's indexed dataset (`MMapIndexedDataset`): `.bin` tokens and `.idx` index,
//! written from and read back by the format description (see the module above).

use crate::error::{Error, Result};
use crate::shard::Shard;

pub const IDX_MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
pub const IDX_VERSION: u64 = 1;
/// Megatron's dtype codes.
pub const DTYPE_INT32: u8 = 4;
pub const DTYPE_UINT16: u8 = 8;

/// Megatron's own choice: uint16 below 65,500 tokens, int32 otherwise.
pub fn dtype_code(vocab_size: u32) -> u8 {
    if vocab_size < 65_500 {
        DTYPE_UINT16
    } else {
        DTYPE_INT32
    }
}

/// Bytes per token of a dtype code (uint16 or int32, the two Megatron uses for tokens).
pub fn width(code: u8) -> Option<usize> {
    match code {
        DTYPE_UINT16 => Some(2),
        DTYPE_INT32 => Some(4),
        _ => None,
    }
}

/// The `.bin` and `.idx` bytes of a shard: one sequence (and one document) per document piece.
pub fn encode(shard: &Shard, code: u8) -> (Vec<u8>, Vec<u8>) {
    let w = width(code).expect("a dtype code from dtype_code");
    let mut bin = Vec::with_capacity(shard.doc_tokens() as usize * w);
    let mut lengths = Vec::with_capacity(shard.docs.len());
    for toks in shard.doc_token_stream() {
        lengths.push(toks.len() as i32);
        match code {
            DTYPE_UINT16 => toks.iter().for_each(|&t| bin.extend_from_slice(&(t as u16).to_le_bytes())),
            _ => toks.iter().for_each(|&t| bin.extend_from_slice(&(t as i32).to_le_bytes())),
        }
    }
    let n = lengths.len();
    let mut idx = Vec::with_capacity(34 + n * 20 + 8);
    idx.extend_from_slice(IDX_MAGIC);
    idx.extend_from_slice(&IDX_VERSION.to_le_bytes());
    idx.push(code);
    idx.extend_from_slice(&(n as u64).to_le_bytes());
    idx.extend_from_slice(&(n as u64 + 1).to_le_bytes());
    lengths.iter().for_each(|l| idx.extend_from_slice(&l.to_le_bytes()));
    let mut pointer = 0i64;
    for l in &lengths {
        idx.extend_from_slice(&pointer.to_le_bytes());
        pointer += *l as i64 * w as i64;
    }
    (0..=n as i64).for_each(|d| idx.extend_from_slice(&d.to_le_bytes()));
    (bin, idx)
}

/// A parsed `.idx` with its `.bin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed {
    pub dtype_code: u8,
    pub lengths: Vec<i32>,
    pub pointers: Vec<i64>,
    pub document_indices: Vec<i64>,
    /// The tokens of each sequence.
    pub sequences: Vec<Vec<u32>>,
}

fn bad(what: String) -> Error {
    Error::InvalidArgument(format!("not a valid Megatron indexed dataset: {what}"))
}

/// Parse `.idx` and `.bin` as `MMapIndexedDataset` does, checking every pointer.
pub fn decode(bin: &[u8], idx: &[u8]) -> Result<Indexed> {
    let header = 9 + 8 + 1 + 8 + 8;
    if idx.len() < header || &idx[..9] != IDX_MAGIC {
        return Err(bad("wrong magic or short index".into()));
    }
    let u64_at = |at: usize| u64::from_le_bytes(idx[at..at + 8].try_into().unwrap());
    let version = u64_at(9);
    if version != IDX_VERSION {
        return Err(bad(format!("index version {version}")));
    }
    let code = idx[17];
    let w = width(code).ok_or_else(|| bad(format!("dtype code {code}")))? as i64;
    let n_seq = u64_at(18) as usize;
    let n_doc = u64_at(26) as usize;
    let expect =
        n_seq.checked_mul(12).and_then(|s| s.checked_add(n_doc.checked_mul(8)?)).and_then(|s| s.checked_add(header));
    if expect != Some(idx.len()) {
        return Err(bad(format!("index of {} bytes for {n_seq} sequences and {n_doc} documents", idx.len())));
    }
    let mut at = header;
    let lengths: Vec<i32> =
        (0..n_seq).map(|i| i32::from_le_bytes(idx[at + 4 * i..at + 4 * i + 4].try_into().unwrap())).collect();
    at += 4 * n_seq;
    let pointers: Vec<i64> =
        (0..n_seq).map(|i| i64::from_le_bytes(idx[at + 8 * i..at + 8 * i + 8].try_into().unwrap())).collect();
    at += 8 * n_seq;
    let document_indices: Vec<i64> =
        (0..n_doc).map(|i| i64::from_le_bytes(idx[at + 8 * i..at + 8 * i + 8].try_into().unwrap())).collect();
    let mut sequences = Vec::with_capacity(n_seq);
    for (i, (&len, &ptr)) in lengths.iter().zip(&pointers).enumerate() {
        let end = ptr.checked_add(len as i64 * w);
        if len < 0 || ptr < 0 || end.is_none_or(|e| e > bin.len() as i64) {
            return Err(bad(format!("sequence {i} points outside the {}-byte .bin", bin.len())));
        }
        let bytes = &bin[ptr as usize..end.unwrap() as usize];
        sequences.push(match code {
            DTYPE_UINT16 => bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect(),
            _ => bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32).collect(),
        });
    }
    if document_indices.first() != Some(&0)
        || document_indices.last() != Some(&(n_seq as i64))
        || document_indices.windows(2).any(|p| p[0] > p[1])
    {
        return Err(bad("document indices do not run from 0 to the number of sequences".into()));
    }
    Ok(Indexed { dtype_code: code, lengths, pointers, document_indices, sequences })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{DocPiece, SeqMeta, TokenDtype};

    #[test]
    fn index_reproduces_the_token_stream() {
        let shard = Shard {
            dtype: TokenDtype::U32,
            packed: true,
            seq_len: 3,
            pad_id: 0,
            first_seq: 0,
            tokens: vec![70_000, 2, 9, 4, 5, 0],
            seqs: vec![SeqMeta { weight: 1.0, domain: 0 }; 2],
            docs: vec![
                DocPiece { start: 0, doc: 0, len: 2, weight: 1.0, domain: 0, flags: 0 },
                DocPiece { start: 2, doc: 1, len: 3, weight: 1.0, domain: 0, flags: 0 },
            ],
        };
        for code in [DTYPE_INT32, DTYPE_UINT16] {
            let s = if code == DTYPE_UINT16 {
                Shard { tokens: vec![7, 2, 9, 4, 5, 0], ..shard.clone() }
            } else {
                shard.clone()
            };
            let (bin, idx) = encode(&s, code);
            let d = decode(&bin, &idx).unwrap();
            let expect: Vec<Vec<u32>> = s.doc_token_stream().map(|t| t.to_vec()).collect();
            assert_eq!(d.sequences, expect);
            assert_eq!(d.document_indices, vec![0, 1, 2]);
            assert!(decode(&bin[..bin.len() - 1], &idx).is_err());
            assert!(decode(&bin, &idx[..idx.len() - 1]).is_err());
        }
        assert_eq!(dtype_code(50_000), DTYPE_UINT16);
        assert_eq!(dtype_code(65_500), DTYPE_INT32);
    }
}
