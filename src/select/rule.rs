//! Keeping documents by a score column and a rule (the pruning rules of Paul et al. and
//! Marion et al.): `keep_max` (the k highest: drop the easiest), `keep_min` (the k lowest),
//! `offset` (skip the h highest, likely label noise, then keep the next k) and `band` (a
//! quantile range, e.g. the middle of perplexity).
//!
//! Ranks are total: ties go to the earlier row, so the same scores always keep the same rows.
//! A rule needs every row's score to rank it (O(rows) memory, 40 bytes a row).

use std::collections::HashMap;
use std::io::BufRead;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Location, Result};
use crate::select::Ranked;
use crate::source::{Format, InputFile};

/// A number of rows, or a fraction of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Fraction(f64),
}

impl Amount {
    /// `300` is a count; `0.5` (a decimal point or exponent) a fraction of the rows.
    pub fn parse(s: &str) -> std::result::Result<Amount, String> {
        let s = s.trim();
        if s.contains(['.', 'e', 'E']) {
            let f: f64 = s.parse().map_err(|_| format!("{s:?} is not a count or a fraction"))?;
            if !(f > 0.0 && f <= 1.0) {
                return Err(format!("the fraction {s} must be in (0, 1]"));
            }
            Ok(Amount::Fraction(f))
        } else {
            s.parse().map(Amount::Count).map_err(|_| format!("{s:?} is not a count or a fraction"))
        }
    }

    pub fn of(self, n: u64) -> u64 {
        match self {
            Amount::Count(k) => k.min(n),
            Amount::Fraction(f) => ((f * n as f64).round() as u64).min(n),
        }
    }
}

/// Which rows to keep by their score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    KeepMax(Amount),
    KeepMin(Amount),
    /// Skip the `skip` highest, keep the next `keep`.
    Offset {
        skip: Amount,
        keep: Amount,
    },
    /// Keep ranks [lo·n, hi·n) in ascending order (quantiles, 0 <= lo < hi <= 1).
    Band {
        lo: f64,
        hi: f64,
    },
    /// Keep every row whose score is below the value (`contam_ngrams` below 1: the rows that
    /// match no benchmark item).
    Below(f64),
}

impl Rule {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Rule::Band { lo, hi } = *self {
            if !((0.0..1.0).contains(&lo) && lo < hi && hi <= 1.0) {
                return Err(format!("band {lo} {hi}: need 0 <= LO < HI <= 1"));
            }
        }
        if let Rule::Below(x) = *self {
            if x.is_nan() {
                return Err("below: not a number".into());
            }
        }
        Ok(())
    }

    /// The rows to keep, sorted by row.
    pub fn apply(&self, mut rows: Vec<Ranked>) -> Vec<Ranked> {
        let n = rows.len() as u64;
        let desc = |rows: &mut Vec<Ranked>| rows.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        let asc = |rows: &mut Vec<Ranked>| rows.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.row.cmp(&b.row)));
        let (skip, keep) = match *self {
            Rule::KeepMax(k) => {
                desc(&mut rows);
                (0, k.of(n))
            }
            Rule::KeepMin(k) => {
                asc(&mut rows);
                (0, k.of(n))
            }
            Rule::Offset { skip, keep } => {
                desc(&mut rows);
                let h = skip.of(n);
                (h, keep.of(n).min(n - h))
            }
            Rule::Band { lo, hi } => {
                asc(&mut rows);
                let a = ((lo * n as f64).round() as u64).min(n);
                let b = ((hi * n as f64).round() as u64).min(n);
                (a, b.saturating_sub(a))
            }
            Rule::Below(x) => {
                rows.retain(|r| r.score < x);
                (0, n)
            }
        };
        let mut kept: Vec<Ranked> = rows.into_iter().skip(skip as usize).take(keep as usize).collect();
        kept.sort_by_key(|r| r.row);
        kept
    }
}

/// Read `id` and a numeric score column from score tables (Parquet or jsonl, as `syllabus
/// score` writes them) into a map. A duplicate id, a missing or non-numeric score is an error
/// naming the file and row or line.
pub fn read_scores(files: &[InputFile], by: &str) -> Result<HashMap<String, f64>> {
    read_into(files, &[by], false, |v| v[0].expect("nulls are refused"))
}

/// [`read_scores`] of several columns at once; with `allow_null`, a null (or missing, in
/// jsonl) value is None instead of an error.
pub fn read_score_columns(
    files: &[InputFile],
    cols: &[&str],
    allow_null: bool,
) -> Result<HashMap<String, Box<[Option<f64>]>>> {
    read_into(files, cols, allow_null, |v| v.into())
}

/// Each row's values of `cols` by id, kept as `keep` makes them (one f64 for a single score
/// column: no allocation per row).
fn read_into<V>(
    files: &[InputFile],
    cols: &[&str],
    allow_null: bool,
    keep: impl Fn(&[Option<f64>]) -> V,
) -> Result<HashMap<String, V>> {
    let mut map = HashMap::new();
    let mut vals_buf: Vec<Option<f64>> = Vec::with_capacity(cols.len());
    for f in files {
        let mut put = |id: String, v: &[Option<f64>], loc: Location| -> Result<()> {
            let bad = |reason: String| Error::BadRecord { file: f.path.clone(), location: loc, offset: None, reason };
            for (x, by) in v.iter().zip(cols) {
                if x.is_some_and(f64::is_nan) || (!allow_null && x.is_none()) {
                    return Err(bad(format!("no numeric {by:?} score")));
                }
            }
            if map.insert(id.clone(), keep(v)).is_some() {
                return Err(bad(format!("the id {id:?} has a second score")));
            }
            Ok(())
        };
        match f.format {
            Format::Parquet => {
                let file = crate::store::ParquetSource::open(&f.path)?;
                let pq = |e| Error::Parquet { file: f.path.clone(), source: e };
                let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?.build().map_err(pq)?;
                let mut row = 0u64;
                for b in reader {
                    let b = b.map_err(|e| Error::arrow("reading scores", e))?;
                    let col = |name: &str, ty: &DataType| -> Result<arrow::array::ArrayRef> {
                        let i = b.schema().index_of(name).map_err(|_| Error::Schema {
                            file: f.path.clone(),
                            message: format!("no column {name:?} (columns: {})", column_names(&b)),
                        })?;
                        cast(b.column(i), ty).map_err(|e| Error::arrow("casting a score column", e))
                    };
                    let ids = col(crate::batch::COL_ID, &DataType::Utf8)?;
                    let ids = ids.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                    let vals = cols.iter().map(|c| col(c, &DataType::Float64)).collect::<Result<Vec<_>>>()?;
                    let vals: Vec<&Float64Array> = vals
                        .iter()
                        .map(|v| v.as_any().downcast_ref::<Float64Array>().expect("cast to Float64"))
                        .collect();
                    for i in 0..b.num_rows() {
                        let id = if ids.is_valid(i) { ids.value(i).to_string() } else { String::new() };
                        vals_buf.clear();
                        vals_buf.extend(vals.iter().map(|v| v.is_valid(i).then(|| v.value(i))));
                        put(id, &vals_buf, Location::Row(row))?;
                        row += 1;
                    }
                }
            }
            Format::Jsonl(codec) => {
                let reader = codec.open(&f.path)?;
                for (i, line) in reader.split(b'\n').enumerate() {
                    let line = line.map_err(|e| Error::io(&f.path, e))?;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let loc = Location::Line(i as u64 + 1);
                    let v: serde_json::Value = serde_json::from_slice(&line).map_err(|e| Error::BadRecord {
                        file: f.path.clone(),
                        location: loc,
                        offset: None,
                        reason: format!("malformed JSON: {e}"),
                    })?;
                    let id = v
                        .get(crate::batch::COL_ID)
                        .map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()));
                    vals_buf.clear();
                    vals_buf.extend(cols.iter().map(|c| v.get(*c).and_then(serde_json::Value::as_f64)));
                    put(id.unwrap_or_default(), &vals_buf, loc)?;
                }
            }
        }
    }
    Ok(map)
}

fn column_names(b: &arrow::record_batch::RecordBatch) -> String {
    b.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(scores: &[f64]) -> Vec<Ranked> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| Ranked { key: s, row: i as u64, score: s, file: 0, loc: i as u64 })
            .collect()
    }

    fn kept(rule: Rule, scores: &[f64]) -> Vec<u64> {
        rule.apply(rows(scores)).iter().map(|r| r.row).collect()
    }

    #[test]
    fn rules_keep_what_they_say() {
        let s = [0.5, 0.9, 0.1, 0.9, 0.3, 0.7];
        assert_eq!(kept(Rule::KeepMax(Amount::Count(2)), &s), vec![1, 3]);
        assert_eq!(kept(Rule::KeepMax(Amount::Fraction(0.5)), &s), vec![1, 3, 5]);
        assert_eq!(kept(Rule::KeepMin(Amount::Count(2)), &s), vec![2, 4]);
        // Skip the two highest (rows 1 and 3, ties to the earlier), then keep two.
        assert_eq!(kept(Rule::Offset { skip: Amount::Count(2), keep: Amount::Count(2) }, &s), vec![0, 5]);
        // The middle third in ascending order: ranks 2..4 are 0.5 and 0.7.
        assert_eq!(kept(Rule::Band { lo: 1.0 / 3.0, hi: 2.0 / 3.0 }, &s), vec![0, 5]);
        assert_eq!(kept(Rule::KeepMax(Amount::Count(10)), &s).len(), 6);
        assert_eq!(kept(Rule::Below(0.5), &s), vec![2, 4]);
        assert_eq!(kept(Rule::Below(f64::INFINITY), &s).len(), 6);
        assert!(kept(Rule::Below(f64::NEG_INFINITY), &s).is_empty());
    }

    #[test]
    fn offset_zero_is_keep_max() {
        let mut rng = crate::proxy::nn::Rng::new(9);
        for _ in 0..50 {
            let s: Vec<f64> = (0..40).map(|_| (rng.normal() * 3.0).round()).collect();
            for k in [1, 7, 40] {
                assert_eq!(
                    kept(Rule::Offset { skip: Amount::Count(0), keep: Amount::Count(k) }, &s),
                    kept(Rule::KeepMax(Amount::Count(k)), &s)
                );
            }
        }
    }

    #[test]
    fn amounts_parse() {
        assert_eq!(Amount::parse("300"), Ok(Amount::Count(300)));
        assert_eq!(Amount::parse("0.5"), Ok(Amount::Fraction(0.5)));
        assert!(Amount::parse("1.5").is_err() && Amount::parse("x").is_err() && Amount::parse("-1").is_err());
        assert!(Rule::Band { lo: 0.6, hi: 0.4 }.validate().is_err());
    }
}
