//! The one stream type every stage passes along, and the column names syllabus writes.
//!
//! A source yields [`RecordBatch`]es whose first two columns are always [`COL_ID`] and the text
//! (named after `--text-field`), both non-null UTF-8; other input columns follow.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{Field, Schema};
pub use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Document id: the input's id field, or `FILE:LINE` / `FILE:ROW` when a row has none.
pub const COL_ID: &str = "id";
/// DSIR log importance weight (float64).
pub const COL_DSIR_LOGW: &str = "dsir_logw";
/// ZIP-FIT alignment with the target set (float64).
pub const COL_ZIPFIT: &str = "zipfit";
/// Number of wordpunct tokens of a document (int64), as DSIR counts them.
pub const COL_N_WORDS: &str = "n_words";

/// The domain of a document (UTF-8), from the file it came from.
pub const COL_DOMAIN: &str = "domain";

/// Default number of rows in a batch.
pub const DEFAULT_BATCH_ROWS: usize = 1024;

/// The text column of a source batch (always column 1, UTF-8).
pub fn text_column(batch: &RecordBatch) -> Result<&StringArray> {
    string_column(batch, 1)
}

/// The id column of a source batch (always column 0, UTF-8).
pub fn id_column(batch: &RecordBatch) -> Result<&StringArray> {
    string_column(batch, 0)
}

fn string_column(batch: &RecordBatch, i: usize) -> Result<&StringArray> {
    batch
        .columns()
        .get(i)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::InvalidArgument(format!("batch column {i} is not a UTF-8 column")))
}

/// `batch` with `columns` appended.
pub fn append_columns(batch: &RecordBatch, columns: Vec<(Field, ArrayRef)>) -> Result<RecordBatch> {
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut arrays = batch.columns().to_vec();
    for (f, a) in columns {
        fields.push(Arc::new(f));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::arrow("appending columns", e))
}
