//! Random selection: k documents drawn uniformly without replacement, the baseline every
//! selection method should beat. Gumbel top-k on equal weights is exactly that, so it shares
//! DSIR's numpy-identical noise (a row's draw depends on its position and the seed).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field};

use super::RowScorer;
use crate::error::Result;
use crate::source::SourceBatch;

/// The score column of a random selection: 0 for every row (the noise decides).
pub const COL_RANDOM: &str = "random";

pub struct RandomRowScorer;

impl RowScorer for RandomRowScorer {
    fn fields(&self) -> Vec<Field> {
        vec![Field::new(COL_RANDOM, DataType::Float64, false)]
    }

    fn score(&self, b: &SourceBatch) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(Float64Array::from(vec![0.0; b.batch.num_rows()]))])
    }
}
