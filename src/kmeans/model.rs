//! A fitted k-means model: the IDF weights and the k unit centroids, the assignment of a
//! document to its nearest centroid (by cosine), and the model file (`--save-model`,
//! `--model`).
//!
//! File: `SYLKMEANS` and a format version (u32), a JSON header (its length as u32, then the
//! settings that made the vectors: dims, k, documents), `dims` IDF weights, `dims * k` centroid
//! weights (feature-major: the k weights of feature 0, then of feature 1, ...), all
//! little-endian f32, and an xxh3-64 of everything before it. A reader checks every length
//! against the file's size before it allocates, and the checksum before it trusts a number.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Builder, Int32Builder};
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

use super::vectors::{counts, feature_params, tfidf, Counter, Sparse};
use crate::batch::{text_column, RecordBatch};
use crate::error::{Error, Result};
use crate::score::Scorer;

const MAGIC: &[u8; 9] = b"SYLKMEANS";
const VERSION: u32 = 1;

/// The output columns of the assignment.
pub const COL_CLUSTER: &str = "cluster";
pub const COL_DIST: &str = "cluster_dist";
pub const COL_RANK: &str = "cluster_rank";
/// The assignment's scorer name (the function a cluster's plan calls).
pub const ASSIGN_SCORER: &str = "kmeans";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    dims: u32,
    k: u32,
    /// Documents the IDF was counted over.
    docs: u64,
    /// A readable term per feature ("" for none): what the top terms of a cluster show.
    #[serde(default)]
    terms: Vec<String>,
}

/// IDF weights and unit centroids.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansModel {
    pub dims: u32,
    pub k: u32,
    pub docs: u64,
    pub idf: Vec<f32>,
    /// Feature-major: `centroids[j * k + c]` is centroid c's weight of feature j.
    pub centroids: Vec<f32>,
    /// A readable term per feature, "" where none was seen (empty: none kept).
    pub terms: Vec<String>,
}

impl KMeansModel {
    /// The model of `k` centroids given as sums of vectors, feature-major (`sums[j * k + c]`),
    /// each scaled to unit length here.
    pub fn from_sums(dims: u32, k: usize, docs: u64, idf: Vec<f32>, sums: &[f64]) -> Self {
        let mut norm2 = vec![0f64; k];
        for row in sums.chunks_exact(k) {
            for (n, x) in norm2.iter_mut().zip(row) {
                *n += x * x;
            }
        }
        let inv: Vec<f64> = norm2.iter().map(|&n| if n > 0.0 { 1.0 / n.sqrt() } else { 0.0 }).collect();
        let centroids =
            sums.chunks_exact(k).flat_map(|row| row.iter().zip(&inv).map(|(x, i)| (x * i) as f32)).collect();
        KMeansModel { dims, k: k as u32, docs, idf, centroids, terms: Vec::new() }
    }

    /// The `n` terms that set cluster `c` apart: by its centroid weight less the mean weight of
    /// all centroids (common words weigh alike everywhere), terms with a letter or digit only
    /// (ties: lower feature).
    pub fn top_terms(&self, c: usize, n: usize) -> Vec<&str> {
        let k = self.k as usize;
        let mut feats: Vec<(f32, usize)> = (0..self.dims as usize)
            .filter(|&j| self.terms.get(j).is_some_and(|t| t.chars().any(char::is_alphanumeric)))
            .map(|j| {
                let row = &self.centroids[j * k..(j + 1) * k];
                let mean = row.iter().sum::<f32>() / k as f32;
                (row[c] - mean, j)
            })
            .filter(|&(w, _)| w > 0.0)
            .collect();
        feats.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        feats.iter().take(n).map(|&(_, j)| self.terms[j].as_str()).collect()
    }

    /// The vector of a text under this model's features and IDF.
    pub fn vector(&self, text: &str, scratch: &mut Counter) -> Sparse {
        tfidf(counts(&feature_params(self.dims), text, scratch), &self.idf)
    }

    /// The nearest centroid of a unit vector and its cosine distance (ties: the lower
    /// cluster); None for an empty vector. `sims` is scratch of k numbers.
    pub fn assign(&self, v: &Sparse, sims: &mut Vec<f64>) -> Option<(u32, f64)> {
        if v.is_empty() {
            return None;
        }
        let k = self.k as usize;
        super::vectors::dots(v, &self.centroids, k, sims);
        let mut best = 0;
        for c in 1..k {
            if sims[c] > sims[best] {
                best = c;
            }
        }
        Some((best as u32, (1.0 - sims[best]).clamp(0.0, 2.0)))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header { dims: self.dims, k: self.k, docs: self.docs, terms: self.terms.clone() };
        let header = serde_json::to_vec(&header).expect("plain struct");
        let mut out = Vec::with_capacity(32 + header.len() + 4 * (self.idf.len() + self.centroids.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for x in self.idf.iter().chain(&self.centroids) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The model in `bytes` (`what` names them in errors).
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidArgument(format!("{what}: not a syllabus k-means model: {why}"));
        if bytes.len() < MAGIC.len() + 16 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("it does not start with SYLKMEANS".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(bad("its checksum does not match (a damaged or truncated file)".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(MAGIC.len());
        if version != VERSION {
            return Err(bad(format!("format version {version}, this syllabus reads {VERSION}")));
        }
        let hlen = u32_at(MAGIC.len() + 4) as usize;
        let start = MAGIC.len() + 8;
        let header: Header = body
            .get(start..start + hlen)
            .ok_or_else(|| bad("its header is cut short".into()))
            .and_then(|h| serde_json::from_slice(h).map_err(|e| bad(format!("its header: {e}"))))?;
        if header.dims == 0 || header.k == 0 {
            return Err(bad("dims and k must be at least 1".into()));
        }
        if !header.terms.is_empty() && header.terms.len() != header.dims as usize {
            return Err(bad(format!("{} terms for {} dims", header.terms.len(), header.dims)));
        }
        let floats = (header.dims as u64) * (1 + u64::from(header.k));
        let rest = &body[start + hlen..];
        if rest.len() as u64 != 4 * floats {
            return Err(bad(format!(
                "{} bytes of weights, dims {} and k {} need {}",
                rest.len(),
                header.dims,
                header.k,
                4 * floats
            )));
        }
        let mut all = rest.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        let idf: Vec<f32> = all.by_ref().take(header.dims as usize).collect();
        let centroids: Vec<f32> = all.collect();
        if idf.iter().chain(&centroids).any(|x| !x.is_finite()) {
            return Err(bad("a weight is not a finite number".into()));
        }
        Ok(KMeansModel { dims: header.dims, k: header.k, docs: header.docs, idf, centroids, terms: header.terms })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::sink::write_atomic(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&crate::store::read(path)?, &path.display().to_string())
    }
}

/// Assigns rows to their nearest centroid: `cluster` (null for a document without words) and
/// `cluster_dist`, its cosine distance.
pub struct Assign {
    pub model: Arc<KMeansModel>,
}

impl Scorer for Assign {
    fn name(&self) -> &'static str {
        ASSIGN_SCORER
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_CLUSTER, DataType::Int32, true), Field::new(COL_DIST, DataType::Float64, true)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let mut cluster = Int32Builder::with_capacity(text.len());
        let mut dist = Float64Builder::with_capacity(text.len());
        let (mut scratch, mut sims) = (Counter::default(), Vec::new());
        for t in text.iter() {
            let v = self.model.vector(t.unwrap_or(""), &mut scratch);
            match self.model.assign(&v, &mut sims) {
                Some((c, d)) => {
                    cluster.append_value(c as i32);
                    dist.append_value(d);
                }
                None => {
                    cluster.append_null();
                    dist.append_null();
                }
            }
        }
        Ok(vec![Arc::new(cluster.finish()), Arc::new(dist.finish())])
    }

    fn eligible(&self, columns: &[ArrayRef], i: usize) -> bool {
        columns[0].is_valid(i)
    }

    fn eligibility(&self) -> String {
        "rows with words".into()
    }

    fn state(&self) -> Result<Vec<u8>> {
        Ok(self.model.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> KMeansModel {
        // Centroids (3, 4, 0) and (0, 0, 2), feature-major.
        KMeansModel::from_sums(3, 2, 10, vec![1.0, 1.5, 2.0], &[3.0, 0.0, 4.0, 0.0, 0.0, 2.0])
    }

    #[test]
    fn assigns_by_cosine_with_ties_to_the_lower_cluster() {
        let m = model();
        assert_eq!(&m.centroids, &[0.6, 0.0, 0.8, 0.0, 0.0, 1.0]);
        let mut sims = Vec::new();
        let (c, d) = m.assign(&Sparse { idx: vec![0, 1], val: vec![0.6, 0.8] }, &mut sims).unwrap();
        assert_eq!(c, 0);
        assert!(d.abs() < 1e-7);
        let (c, d) = m.assign(&Sparse { idx: vec![2], val: vec![1.0] }, &mut sims).unwrap();
        assert_eq!((c, d), (1, 0.0));
        // Orthogonal to both: a tie at distance 1, to cluster 0.
        let m2 = KMeansModel::from_sums(3, 2, 1, vec![1.0; 3], &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(m2.assign(&Sparse { idx: vec![2], val: vec![1.0] }, &mut sims), Some((0, 1.0)));
        assert_eq!(m.assign(&Sparse::default(), &mut sims), None);
    }

    #[test]
    fn top_terms_by_centroid_weight() {
        // Centroids (0.6, 0.8, 0) and (0, 0, 1): means 0.3, 0.4, 0.5 per feature.
        let mut m = model();
        m.terms = vec!["x".into(), "".into(), "z".into()];
        assert_eq!(m.top_terms(0, 5), vec!["x"]);
        assert_eq!(m.top_terms(1, 5), vec!["z"]);
        m.terms[1] = "y".into();
        assert_eq!(m.top_terms(0, 1), vec!["y"]);
        m.terms[1] = "--".into();
        assert_eq!(m.top_terms(0, 5), vec!["x"], "no term without a letter or digit");
    }

    #[test]
    fn file_round_trips_and_damage_is_an_error() {
        let mut m = model();
        m.terms = vec!["a".into(), "b c".into(), "".into()];
        let bytes = m.to_bytes();
        assert_eq!(KMeansModel::from_bytes(&bytes, "m").unwrap(), m);
        for cut in [0, 5, 20, bytes.len() - 9, bytes.len() - 1] {
            let e = KMeansModel::from_bytes(&bytes[..cut], "m.bin").unwrap_err().to_string();
            assert!(e.contains("m.bin: not a syllabus k-means model"), "{e}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(KMeansModel::from_bytes(&flipped, "m").unwrap_err().to_string().contains("checksum"));
        // A header that claims more weights than the file holds is refused before allocating.
        let mut m3 = m.clone();
        m3.k = 1 << 30;
        m3.centroids.truncate(3);
        let e = KMeansModel::from_bytes(&m3.to_bytes(), "m").unwrap_err().to_string();
        assert!(e.contains("bytes of weights"), "{e}");
    }
}
