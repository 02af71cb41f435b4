//! The random baseline's scorer: 0 for every row, so that the selection's Gumbel noise
//! alone decides (Gumbel top-k on equal weights is uniform sampling without replacement).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field};

use super::Scorer;
use crate::batch::RecordBatch;
use crate::error::Result;

/// The score column of a random selection.
pub const COL_RANDOM: &str = "random";

pub struct RandomScorer;

impl Scorer for RandomScorer {
    fn name(&self) -> &'static str {
        "random"
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_RANDOM, DataType::Float64, false)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(Float64Array::from(vec![0.0; batch.num_rows()]))])
    }

    fn state(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}
