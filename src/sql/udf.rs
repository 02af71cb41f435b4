//! syllabus's scorers as SQL functions, so an ad-hoc slice can be scored without a pipeline:
//!
//! - `n_words(text)`: the wordpunct word count DSIR uses (always there);
//! - `ncd(a, b)`: normalised compression distance with gzip 6, as ZIP-FIT computes it;
//! - `dsir_logw(text)`: the log importance weight under a saved DSIR model (`--dsir-model`, or
//!   the `dsir_model.json` of an output directory given as a path);
//! - `zipfit(text)`: the alignment with a target set (`--zipfit-target`), gzip 6.
//!
//! Null in, null out. Each function runs on the rows of a batch in parallel (rayon).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use rayon::prelude::*;

use crate::score::dsir::{DsirModel, DsirParams};
use crate::score::zipfit::{ncd_texts, ZipfitParams, ZipfitTarget};

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

/// A float function of one text column.
fn text_to_f64(name: &str, f: impl Fn(&str) -> crate::error::Result<f64> + Send + Sync + 'static) -> ScalarUDF {
    let fun = Arc::new(move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let n = rows(args);
        let texts = strings(&args[0], n)?;
        let out: Vec<Option<f64>> = (0..texts.len())
            .into_par_iter()
            .map(|i| texts.is_valid(i).then(|| f(texts.value(i))).transpose())
            .collect::<crate::error::Result<_>>()
            .map_err(ext)?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out)) as ArrayRef))
    });
    create_udf(name, vec![DataType::Utf8], DataType::Float64, Volatility::Immutable, fun)
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

pub fn dsir_logw(model: Arc<DsirModel>) -> ScalarUDF {
    text_to_f64("dsir_logw", move |t| Ok(model.score_text(t).0))
}

pub fn zipfit(target: Arc<ZipfitTarget>) -> ScalarUDF {
    text_to_f64("zipfit", move |t| target.score_text(t))
}
