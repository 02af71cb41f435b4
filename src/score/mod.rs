//! Scorers: each adds columns to a batch of documents and does no IO.
//!
//! A scorer is shaped like a DataFusion scalar UDF (name, output fields, a pure function of
//! the batch), so the same scorer can serve a pipeline stage and a SQL function.

pub(crate) mod deflate_len;
pub mod dsir;
pub mod zipfit;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;

use crate::batch::RecordBatch;
use crate::error::Result;

pub trait Scorer: Send + Sync {
    /// Short name, used in configs and messages.
    fn name(&self) -> &str;
    /// The columns `score` returns, in order.
    fn output_fields(&self) -> Vec<Field>;
    /// Score every row of a source batch (id, text, ...), one array per output field.
    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>>;
}
