//! The scorers as DataFusion functions that carry their state, so a plan that uses them can be
//! shipped to executors that never saw the target set ([`super::codec`] encodes the state):
//!
//! - `syllabus_NAME(text)`: any method's fitted scorer ([`ScorerUdf`]), a struct of its output
//!   fields (`syllabus_dsir`: {dsir_logw, n_words}, the model's bucket counts travel with the
//!   plan; `syllabus_dsir_words`: {n_words}, tokenization without hashing; `syllabus_zipfit`:
//!   {zipfit}, the target texts travel);
//! - `syllabus_gumbel(__file, __loc, score)`: score plus numpy's Gumbel draw for the row's
//!   global position among eligible rows ([`GumbelKey`]);
//! - `syllabus_dsir_counts(__file, text)`: the raw bucket counts of the DSIR fit, an aggregate
//!   whose partial states (one per partition) are summed: map over files, small reduce.
//!
//! Each function computes exactly what the local path computes, row by row, so scores are
//! bit-identical to a local run's.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BinaryArray, Float64Array, StringArray, StructArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Fields};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::lake::df_error;
use crate::score::dsir::{Counts, DsirParams};
use crate::score::Scorer;
use crate::select::Mt19937;

pub const GUMBEL: &str = "syllabus_gumbel";
pub const DSIR_COUNTS: &str = "syllabus_dsir_counts";

fn array<'a, T: 'static>(args: &'a [ArrayRef], i: usize, what: &str) -> Result<&'a T> {
    match args.get(i).and_then(|a| a.as_any().downcast_ref::<T>()) {
        Some(a) => Ok(a),
        None => exec_err!("{what}: argument {} has the wrong type", i + 1),
    }
}

fn arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    let n = args.number_rows;
    args.args.iter().map(|a| a.to_array(n)).collect()
}

/// Functions are equal when they are the same object (their state is not compared).
macro_rules! identity_eq {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                std::ptr::eq(self, other)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                (self as *const Self as usize).hash(state)
            }
        }
    };
}

fn text_signature() -> Signature {
    Signature::exact(vec![DataType::Utf8], Volatility::Immutable)
}

/// `syllabus_NAME(text)`: a fitted scorer ([`Scorer`], any method's) as a function, giving a
/// struct of its output fields. Its state travels with the plan ([`super::codec`]); the scores
/// are the scorer's own, so they are bit-identical to a local run's.
pub struct ScorerUdf {
    pub scorer: Arc<dyn Scorer>,
    name: String,
    signature: Signature,
}
identity_eq!(ScorerUdf);

impl std::fmt::Debug for ScorerUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScorerUdf({})", self.name)
    }
}

impl ScorerUdf {
    pub fn new(scorer: Arc<dyn Scorer>) -> Self {
        ScorerUdf { name: format!("syllabus_{}", scorer.name()), scorer, signature: text_signature() }
    }

    fn fields(&self) -> Fields {
        Fields::from(self.scorer.output_fields())
    }
}

impl ScalarUDFImpl for ScorerUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let text: &StringArray = array(&a, 0, &self.name)?;
        let batch = crate::batch::text_batch(text.clone()).map_err(df_error)?;
        let columns = self.scorer.score(&batch).map_err(df_error)?;
        Ok(ColumnarValue::Array(Arc::new(StructArray::new(self.fields(), columns, None))))
    }
}

/// `syllabus_gumbel(__file, __loc, score)`: `score` plus the standard Gumbel draw that numpy's
/// `np.random.seed(seed)` stream gives the row: the local selection draws one per eligible row
/// in lake order, so the row's draw is number `offsets[file] + i`, `i` counting the file's
/// eligible rows before it.
///
/// Called only on eligible rows, which a scan gives file by file in order (one partition is
/// one file). Per file the function keeps a generator: the first row of a file jumps to the
/// file's offset ([`Mt19937::jumped`]) and each row after draws the next number. A row whose
/// `__loc` is not after the last one of its file is a restarted read of the file (a task run
/// again): the file starts over. A draw rejected by numpy's loop (`U == 1`, probability 2^-53
/// per row) would shift later files' draws in the local run but not here.
#[derive(Debug)]
pub struct GumbelKey {
    pub seed: u32,
    /// Eligible rows before each file.
    pub offsets: Arc<Vec<u64>>,
    state: Mutex<HashMap<u32, (u64, Box<Mt19937>)>>,
    signature: Signature,
}
identity_eq!(GumbelKey);

impl GumbelKey {
    pub fn new(seed: u32, offsets: Vec<u64>) -> Self {
        GumbelKey {
            seed,
            offsets: Arc::new(offsets),
            state: Mutex::new(HashMap::new()),
            signature: Signature::exact(
                vec![DataType::UInt32, DataType::UInt64, DataType::Float64],
                Volatility::Volatile,
            ),
        }
    }
}

impl ScalarUDFImpl for GumbelKey {
    fn name(&self) -> &str {
        GUMBEL
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let file: &UInt32Array = array(&a, 0, GUMBEL)?;
        let loc: &UInt64Array = array(&a, 1, GUMBEL)?;
        let score: &Float64Array = array(&a, 2, GUMBEL)?;
        let mut state =
            self.state.lock().map_err(|_| datafusion::error::DataFusionError::Internal("poisoned".into()))?;
        let mut keys = Vec::with_capacity(file.len());
        for i in 0..file.len() {
            let (f, l) = (file.value(i), loc.value(i));
            let Some(&offset) = self.offsets.get(f as usize) else {
                return exec_err!("{GUMBEL}: file {f} is not in the lake the offsets were counted on");
            };
            let restart = state.get(&f).is_none_or(|(last, _)| l <= *last);
            if restart {
                state.insert(f, (l, Box::new(Mt19937::jumped(self.seed, 2 * offset))));
            }
            let (last, rng) = state.get_mut(&f).expect("just inserted");
            *last = l;
            keys.push(score.value(i) + rng.gumbel());
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(keys))))
    }
}

/// `syllabus_dsir_counts(__file, text)`: the raw bucket counts of the DSIR fit, as
/// little-endian u64s. With a per-file budget, a file's documents are counted in order up to
/// and including the one that takes the file past it, as the local fit does; that needs each
/// file's rows in one partition, in order, which the lake scan gives.
#[derive(Debug)]
pub struct DsirCounts {
    pub params: DsirParams,
    pub per_file_limit: Option<u64>,
    signature: Signature,
}
identity_eq!(DsirCounts);

impl DsirCounts {
    pub fn new(params: DsirParams, per_file_limit: Option<u64>) -> Self {
        DsirCounts {
            params,
            per_file_limit,
            signature: Signature::exact(vec![DataType::UInt32, DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for DsirCounts {
    fn name(&self) -> &str {
        DSIR_COUNTS
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountsAccumulator {
            params: self.params.clone(),
            limit: self.per_file_limit,
            counts: Counts::new(self.params.buckets),
            files: HashMap::new(),
        }))
    }
}

/// Counts, and per file seen: n-grams counted and whether the budget stopped it.
#[derive(Debug)]
struct CountsAccumulator {
    params: DsirParams,
    limit: Option<u64>,
    counts: Counts,
    files: HashMap<u32, (u64, bool)>,
}

impl CountsAccumulator {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * (self.counts.counts.len() + 1 + 3 * self.files.len()));
        out.extend_from_slice(&(self.counts.counts.len() as u64).to_le_bytes());
        for c in &self.counts.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort();
        for (f, (total, stopped)) in files {
            out.extend_from_slice(&u64::from(*f).to_le_bytes());
            out.extend_from_slice(&total.to_le_bytes());
            out.extend_from_slice(&u64::from(*stopped).to_le_bytes());
        }
        out
    }

    fn merge(&mut self, bytes: &[u8]) -> Result<()> {
        let words: Vec<u64> =
            bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        let n = self.counts.counts.len();
        if words.first().copied() != Some(n as u64) || words.len() < 1 + n || !(words.len() - 1 - n).is_multiple_of(3) {
            return exec_err!("{DSIR_COUNTS}: a partial state of another shape");
        }
        for (a, b) in self.counts.counts.iter_mut().zip(&words[1..1 + n]) {
            *a += b;
        }
        for f in words[1 + n..].chunks_exact(3) {
            if self.files.insert(f[0] as u32, (f[1], f[2] != 0)).is_some() {
                return exec_err!("{DSIR_COUNTS}: file {} was counted in two partitions", f[0]);
            }
        }
        Ok(())
    }
}

impl Accumulator for CountsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let file: &UInt32Array = array(values, 0, DSIR_COUNTS)?;
        let text: &StringArray = array(values, 1, DSIR_COUNTS)?;
        for i in 0..text.len() {
            let f = file.value(i);
            let entry = self.files.entry(f).or_insert((0, false));
            if entry.1 {
                continue;
            }
            entry.0 += self.counts.add_text(&self.params, if text.is_valid(i) { text.value(i) } else { "" });
            if self.limit.is_some_and(|l| entry.0 > l) {
                entry.1 = true;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut out = Vec::with_capacity(8 * self.counts.counts.len());
        for c in &self.counts.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        Ok(ScalarValue::Binary(Some(out)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * self.counts.counts.len() + 24 * self.files.len()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.encode()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let s: &BinaryArray = array(states, 0, DSIR_COUNTS)?;
        for i in 0..s.len() {
            if s.is_valid(i) {
                self.merge(s.value(i))?;
            }
        }
        Ok(())
    }
}

/// Bucket counts from what `syllabus_dsir_counts` returns.
pub fn decode_counts(bytes: &[u8], buckets: u32) -> crate::Result<Counts> {
    if bytes.len() != 8 * buckets as usize {
        return Err(crate::Error::InvalidArgument(format!(
            "the cluster returned {} bytes of counts, not {}",
            bytes.len(),
            8 * buckets
        )));
    }
    Ok(Counts { counts: bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect() })
}
