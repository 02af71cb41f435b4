//! syllabus's scorers as SQL functions, so an ad-hoc slice can be scored without a pipeline:
//!
//! - `n_words(text)`: the wordpunct word count DSIR uses (always there);
//! - `ncd(a, b)`: normalised compression distance with gzip 6, as ZIP-FIT computes it;
//! - `dedup_key(text)`: the exact-duplicate key of `score dedup` (32 hex digits: equal keys,
//!   equal texts after NFC, lowercase and whitespace folding), to find exact copies in SQL;
//! - `jaccard(a, b)`: the Jaccard similarity of two texts' shingle sets (word 5-grams, as
//!   `score dedup` makes them), and `minhash_jaccard(a, b)`: its estimate from their 112-value
//!   MinHash signatures (the share of equal values; a pair is a candidate at 14 bands x 8 with
//!   probability `1 - (1 - s^8)^14`), to see why two documents were or were not clustered;
//! - every scoring method that offers one ([`crate::methods::Info::sql`]), through one adapter
//!   ([`scorer_udf`]): a function named after the scorer's first column, giving it:
//!   `dsir_logw(text)` and `moore_lewis(text)` under a saved DSIR model (`--dsir-model`, or the
//!   `dsir_model.json` of an output directory given as a path), `zipfit(text)`, the alignment
//!   with a target set (`--zipfit-target`), gzip 6.
//!
//! Null in, null out. Each function runs on the rows of a batch in parallel (rayon).

use std::sync::Arc;

use arrow::array::{make_array, Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use rayon::prelude::*;

use crate::score::dsir::DsirParams;
use crate::score::zipfit::{ncd_texts, ZipfitParams};
use crate::score::Scorer;

fn strings(v: &ColumnarValue, n: usize) -> datafusion::error::Result<StringArray> {
    let a = v.to_array(n)?;
    let a = cast(&a, &DataType::Utf8)?;
    Ok(a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
}

fn rows(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
}

fn ext(e: crate::error::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

pub fn n_words() -> ScalarUDF {
    let params = DsirParams::default();
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let texts = strings(&args[0], n)?;
        let out: Vec<Option<i64>> = (0..texts.len())
            .into_par_iter()
            .map(|i| {
                texts.is_valid(i).then(|| {
                    let features =
                        crate::score::dsir::with_featurizer(&params, |fz| fz.for_each_bucket(texts.value(i), |_| ()));
                    params.n_words(features)
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out)) as ArrayRef))
    });
    create_udf("n_words", vec![DataType::Utf8], DataType::Int64, Volatility::Immutable, fun)
}

pub fn ncd() -> ScalarUDF {
    let params = ZipfitParams::with(None, None, false);
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let (a, b) = (strings(&args[0], n)?, strings(&args[1], n)?);
        let out: Vec<Option<f64>> = (0..n)
            .into_par_iter()
            .map(|i| (a.is_valid(i) && b.is_valid(i)).then(|| ncd_texts(&params, a.value(i), b.value(i))).transpose())
            .collect::<crate::error::Result<_>>()
            .map_err(ext)?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out)) as ArrayRef))
    });
    create_udf("ncd", vec![DataType::Utf8, DataType::Utf8], DataType::Float64, Volatility::Immutable, fun)
}

pub fn dedup_key() -> ScalarUDF {
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let texts = strings(&args[0], n)?;
        let out: Vec<Option<String>> = (0..texts.len())
            .into_par_iter()
            .map_init(crate::dedup::minhash::Scratch::default, |buf, i| {
                texts.is_valid(i).then(|| format!("{:032x}", crate::dedup::minhash::exact_key(texts.value(i), buf)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out)) as ArrayRef))
    });
    create_udf("dedup_key", vec![DataType::Utf8], DataType::Utf8, Volatility::Immutable, fun)
}

/// `jaccard(a, b)` (`estimate`: false) or `minhash_jaccard(a, b)` with `score dedup`'s defaults.
pub fn jaccard(estimate: bool) -> ScalarUDF {
    use crate::dedup::minhash::{Scratch, Shingler, WordShingles};
    let settings = crate::dedup::DedupSettings::default();
    let shingles = WordShingles { n: settings.ngram };
    let signer = settings.signer().expect("the default dedup settings are valid");
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let (a, b) = (strings(&args[0], n)?, strings(&args[1], n)?);
        let out: Vec<Option<f64>> = (0..n)
            .into_par_iter()
            .map_init(Scratch::default, |buf, i| {
                if !(a.is_valid(i) && b.is_valid(i)) {
                    return None;
                }
                let (x, y) = (a.value(i), b.value(i));
                if estimate {
                    let mut lower = String::new();
                    let mut sig = |t: &str| {
                        crate::dedup::minhash::lower_nfc(t, &mut String::new(), &mut lower);
                        let mut s = Vec::new();
                        signer.sign(t, &lower, buf, &mut s).then_some(s)
                    };
                    let (sx, sy) = (sig(x), sig(y));
                    Some(match (sx, sy) {
                        (Some(sx), Some(sy)) => crate::dedup::minhash::jaccard_estimate(&sx, &sy),
                        _ => 0.0,
                    })
                } else {
                    let mut set = |t: &str| {
                        let mut v = Vec::new();
                        shingles.shingles(t, buf, &mut v);
                        v.into_iter().collect::<std::collections::HashSet<u64>>()
                    };
                    let (sx, sy) = (set(x), set(y));
                    let union = sx.union(&sy).count();
                    Some(if union == 0 { 0.0 } else { sx.intersection(&sy).count() as f64 / union as f64 })
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out)) as ArrayRef))
    });
    let name = if estimate { "minhash_jaccard" } else { "jaccard" };
    create_udf(name, vec![DataType::Utf8, DataType::Utf8], DataType::Float64, Volatility::Immutable, fun)
}

/// A fitted scorer as a SQL function of one text column: named after its first (ranking)
/// column and giving it; the rows of a batch are scored in parallel parts.
pub fn scorer_udf(scorer: Arc<dyn Scorer>) -> ScalarUDF {
    let field = scorer.output_fields().swap_remove(0);
    let (name, data_type) = (field.name().clone(), field.data_type().clone());
    let out_type = data_type.clone();
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let texts = strings(&args[0], n)?;
        let part = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let parts: Vec<ArrayRef> = (0..n.div_ceil(part))
            .into_par_iter()
            .map(|i| {
                let slice = texts.slice(i * part, part.min(n - i * part));
                let batch = crate::batch::text_batch(slice)?;
                Ok(scorer.score(&batch)?.swap_remove(0))
            })
            .collect::<crate::error::Result<_>>()
            .map_err(ext)?;
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let all = if refs.is_empty() { arrow::array::new_empty_array(&out_type) } else { concat(&refs)? };
        // Null in, null out.
        let data = all.to_data().into_builder().nulls(texts.nulls().cloned()).build()?;
        Ok(ColumnarValue::Array(make_array(data)))
    });
    create_udf(&name, vec![DataType::Utf8], data_type, Volatility::Immutable, fun)
}
