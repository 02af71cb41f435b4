//! The one stream type every stage passes along, and the column names syllabus writes.
//!
//! A source yields [`RecordBatch`]es whose first two columns are always [`COL_ID`] and the text
//! (named after `--text-field`), both non-null UTF-8; other input columns follow.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
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

/// A batch of texts alone, shaped as a source batch (an id column of nulls, then the text):
/// what a scorer scores when SQL or the cluster hands it a text column.
pub fn text_batch(text: StringArray) -> Result<RecordBatch> {
    let n = text.len();
    let schema = Schema::new(vec![
        Field::new(COL_ID, arrow::datatypes::DataType::Utf8, true),
        Field::new("text", arrow::datatypes::DataType::Utf8, true),
    ]);
    let id = arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, n);
    RecordBatch::try_new(Arc::new(schema), vec![id, Arc::new(text) as ArrayRef])
        .map_err(|e| Error::arrow("a batch of texts", e))
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

/// `schema` with `fields` appended. A computed column replaces an input column of the same
/// name (the input's column is dropped, the computed one goes last), so no output ever has two
/// columns of one name; the id and text columns (0 and 1) are never replaced.
pub fn append_fields(schema: &Schema, fields: &[Field]) -> Result<Schema> {
    let mut out: Vec<Arc<Field>> = Vec::with_capacity(schema.fields().len() + fields.len());
    for (i, f) in schema.fields().iter().enumerate() {
        if fields.iter().any(|n| n.name() == f.name()) {
            if i < 2 {
                return Err(Error::InvalidArgument(format!(
                    "a computed column {:?} would replace the {} column: rename the input's {} field",
                    f.name(),
                    if i == 0 { "id" } else { "text" },
                    f.name()
                )));
            }
            continue;
        }
        out.push(f.clone());
    }
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        if !seen.insert(f.name()) {
            return Err(Error::InvalidArgument(format!("two computed columns are both named {:?}", f.name())));
        }
        out.push(Arc::new(f.clone()));
    }
    Ok(Schema::new(out))
}

/// `batch` with `columns` appended; a column of the same name in `batch` is replaced (see
/// [`append_fields`]).
pub fn append_columns(batch: &RecordBatch, columns: Vec<(Field, ArrayRef)>) -> Result<RecordBatch> {
    let new_fields: Vec<Field> = columns.iter().map(|(f, _)| f.clone()).collect();
    let schema = append_fields(&batch.schema(), &new_fields)?;
    let mut arrays: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !new_fields.iter().any(|n| n.name() == f.name()))
        .map(|(_, a)| a.clone())
        .collect();
    arrays.extend(columns.into_iter().map(|(_, a)| a));
    RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| Error::arrow("appending columns", e))
}

/// Duplicate column names in `schema`, if any (no output may have them: pyarrow, pandas,
/// polars and Hugging Face datasets refuse such files).
pub fn duplicate_names(schema: &Schema) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dups: Vec<String> =
        schema.fields().iter().filter(|f| !seen.insert(f.name().as_str())).map(|f| f.name().clone()).collect();
    dups.dedup();
    dups
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn a_computed_column_replaces_an_input_column_of_its_name() {
        let s = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("domain", DataType::Utf8, true),
            Field::new("url", DataType::Utf8, true),
        ]);
        let out = append_fields(&s, &[Field::new("domain", DataType::Utf8, false)]).unwrap();
        let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "text", "url", "domain"]);
        assert!(duplicate_names(&out).is_empty());
        assert!(append_fields(&s, &[Field::new("text", DataType::Float64, false)]).is_err());
        let dup = Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("a", DataType::Utf8, true)]);
        assert_eq!(duplicate_names(&dup), ["a"]);
    }
}
