//! Parquet: row groups read as Arrow batches. Only the id, text and requested extra columns
//! are decoded (a projection). Rows are numbered from 0 within the file.

use crate::store::ParquetSource;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StringArray, StringBuilder};
use arrow::compute::{can_cast_types, cast, filter};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::{InputFile, ReadContext, ReadOptions};
use crate::batch::RecordBatch;
use crate::error::{Error, Location, Result};

fn builder(file: &InputFile) -> Result<ParquetRecordBatchReaderBuilder<ParquetSource>> {
    // A local file, or ranged requests to a store (the footer, then the chunks read).
    let f = ParquetSource::open(&file.path)?;
    crate::error::catch_panic(|| ParquetRecordBatchReaderBuilder::try_new(f))
        .map_err(|msg| decoder_panic(file, &msg))?
        .map_err(|source| Error::Parquet { file: file.path.clone(), source })
}

/// The parquet crate asserts (panics) on some damaged files: such a file is not readable.
fn decoder_panic(file: &InputFile, msg: &str) -> Error {
    Error::Schema {
        file: file.path.clone(),
        message: format!("not a readable Parquet file (the decoder failed: {msg})"),
    }
}

/// The Arrow schema of a Parquet file (from its footer).
pub(super) fn file_schema(file: &InputFile) -> Result<SchemaRef> {
    Ok(builder(file)?.schema().clone())
}

fn is_string(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub(super) struct ParquetFileReader {
    /// Opened on the first batch, projected to the columns the batches need.
    reader: Option<ParquetRecordBatchReader>,
    /// Column positions (in the file, then in the projected batches once `reader` is open);
    /// no text column when the text is not read.
    text_col: Option<usize>,
    id_col: Option<usize>,
    extra_cols: Vec<Option<usize>>,
    total_rows: u64,
    next_row: u64,
    done: bool,
}

impl ParquetFileReader {
    pub(super) fn open(file: &InputFile, opts: &ReadOptions) -> Result<Self> {
        let builder = builder(file)?;
        let schema = builder.schema().clone();
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let text_idx = if opts.read_text {
            let Some(text_idx) = names.iter().position(|n| *n == opts.text_field) else {
                return Err(Error::Schema {
                    file: file.path.clone(),
                    message: format!(
                        "no column \"{}\" (columns: {}); choose one with --text-field",
                        opts.text_field,
                        names.join(", ")
                    ),
                });
            };
            let text_ty = schema.field(text_idx).data_type();
            if !is_string(text_ty) {
                return Err(Error::Schema {
                    file: file.path.clone(),
                    message: format!("column \"{}\" has type {text_ty}, expected a string column", opts.text_field),
                });
            }
            Some(text_idx)
        } else {
            None
        };
        let id_idx = names.iter().position(|n| *n == opts.id_field);
        if let Some(i) = id_idx {
            let ty = schema.field(i).data_type();
            if !can_cast_types(ty, &DataType::Utf8) {
                return Err(Error::Schema {
                    file: file.path.clone(),
                    message: format!("id column \"{}\" has type {ty}, which cannot be read as a string", opts.id_field),
                });
            }
        }
        Ok(ParquetFileReader {
            reader: None,
            text_col: text_idx,
            id_col: id_idx,
            extra_cols: Vec::new(),
            total_rows,
            next_row: 0,
            done: false,
        })
    }

    /// Start at row `row` (a [`super::ReadPoint`] of an earlier reader).
    pub(super) fn open_at(file: &InputFile, opts: &ReadOptions, row: u64) -> Result<Self> {
        let mut r = Self::open(file, opts)?;
        if row > r.total_rows {
            return Err(Error::Schema {
                file: file.path.clone(),
                message: format!("has {} rows, fewer than the {row} read before: it changed", r.total_rows),
            });
        }
        r.next_row = row;
        Ok(r)
    }

    fn project(
        file: &InputFile,
        opts: &ReadOptions,
        wanted: &[usize],
        skip_rows: u64,
    ) -> Result<ParquetRecordBatchReader> {
        let builder = builder(file)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted.iter().copied());
        let builder = builder.with_batch_size(opts.batch_rows.max(1)).with_projection(mask);
        // Resuming: row groups before the first row are not read at all.
        let builder = if skip_rows > 0 { builder.with_offset(skip_rows as usize) } else { builder };
        crate::error::catch_panic(|| builder.build())
            .map_err(|msg| decoder_panic(file, &msg))?
            .map_err(|source| Error::Parquet { file: file.path.clone(), source })
    }
}

impl super::FileReader for ParquetFileReader {
    fn position(&self) -> (u64, u64) {
        (self.next_row, 0)
    }

    fn next_batch(&mut self, ctx: &mut ReadContext<'_>) -> Result<Option<(RecordBatch, Vec<u64>)>> {
        if self.reader.is_none() {
            // First call: project to id, text and the extras this file has.
            let schema = file_schema(ctx.file)?;
            let mut wanted: Vec<usize> = self.text_col.into_iter().collect();
            wanted.extend(self.id_col);
            let extra_idx: Vec<Option<usize>> =
                ctx.extras.fields.iter().map(|f| schema.index_of(f.name()).ok()).collect();
            wanted.extend(extra_idx.iter().flatten().copied());
            wanted.sort_unstable();
            wanted.dedup();
            // `wanted` is sorted: a file column's position in the projected batch.
            let pos = |i: usize| -> usize { wanted.binary_search(&i).expect("projected column") };
            self.text_col = self.text_col.map(pos);
            self.id_col = self.id_col.map(pos);
            self.extra_cols = extra_idx.iter().map(|i| i.map(pos)).collect();
            self.reader = Some(Self::project(ctx.file, ctx.opts, &wanted, self.next_row)?);
        }
        loop {
            if self.done {
                return Ok(None);
            }
            // A damaged page can make the decoder panic: that is a decoding error like the others.
            let next = match crate::error::catch_panic(|| self.reader.as_mut().and_then(|r| r.next())) {
                Ok(n) => n,
                Err(msg) => {
                    Some(Err(arrow::error::ArrowError::ExternalError(format!("the decoder failed: {msg}").into())))
                }
            };
            let batch = match next {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    self.done = true;
                    let remaining = self.total_rows.saturating_sub(self.next_row).max(1);
                    let reason =
                        format!("rows {}.. cannot be decoded, the rest of the file is lost: {e}", self.next_row);
                    if ctx.opts.on_bad_record == super::BadRecordPolicy::Fail {
                        return Err(Error::BadRecord {
                            file: ctx.file.path.clone(),
                            location: Location::Row(self.next_row),
                            offset: None,
                            reason,
                        });
                    }
                    ctx.stats.read += remaining;
                    ctx.reject(Location::Row(self.next_row), None, reason, b"")?;
                    ctx.stats.rejected += remaining - 1;
                    return Ok(None);
                }
            };
            let base = self.next_row;
            self.next_row += batch.num_rows() as u64;
            if let Some(wanted) = ctx.wanted {
                if wanted.last().is_some_and(|&last| last < base) {
                    self.done = true;
                    return Ok(None);
                }
            }
            if let Some(b) = self.convert(&batch, base, ctx)? {
                return Ok(Some(b));
            }
        }
    }
}

impl ParquetFileReader {
    /// A projected Parquet batch as a source batch; bad rows are rejected by the policy.
    fn convert(
        &self,
        batch: &RecordBatch,
        base: u64,
        ctx: &mut ReadContext<'_>,
    ) -> Result<Option<(RecordBatch, Vec<u64>)>> {
        let n = batch.num_rows();
        let ctx_err = |e| Error::arrow(format!("{}: rows {base}..", ctx.file.name), e);
        let text: ArrayRef = match self.text_col {
            Some(c) => cast(batch.column(c), &DataType::Utf8).map_err(ctx_err)?,
            None => std::sync::Arc::new(StringArray::from_iter_values(std::iter::repeat_n("", n))),
        };
        let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let mut keep = Vec::with_capacity(n);
        let mut locations = Vec::with_capacity(n);
        for i in 0..n {
            let row = base + i as u64;
            if ctx.wanted.is_some_and(|w| w.binary_search(&row).is_err()) {
                keep.push(false);
                continue;
            }
            ctx.stats.read += 1;
            let ok = text.is_valid(i);
            if ok {
                locations.push(row);
            } else {
                let reason = format!("field \"{}\" is null, expected a string", ctx.opts.text_field);
                ctx.reject(Location::Row(row), None, reason, b"")?;
            }
            keep.push(ok);
        }
        let kept = locations.len();
        ctx.stats.kept += kept as u64;
        if kept == 0 {
            return Ok(None);
        }
        let mask = BooleanArray::from(keep);
        let mut ids = StringBuilder::with_capacity(n, n * 16);
        let id_arr = match self.id_col {
            Some(c) => Some(cast(batch.column(c), &DataType::Utf8).map_err(ctx_err)?),
            None => None,
        };
        let id_str = id_arr.as_ref().map(|a| a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8"));
        for i in 0..n {
            match id_str {
                Some(a) if a.is_valid(i) => ids.append_value(a.value(i)),
                _ => ids.append_value(format!("{}:{}", ctx.file.name, base + i as u64)),
            }
        }
        let mut columns: Vec<ArrayRef> = vec![std::sync::Arc::new(ids.finish()), std::sync::Arc::new(text.clone())];
        for (field, col) in ctx.extras.fields.iter().zip(&self.extra_cols) {
            columns.push(match col {
                Some(c) => {
                    let a = batch.column(*c);
                    if a.data_type() == field.data_type() {
                        a.clone()
                    } else {
                        cast(a, field.data_type()).map_err(ctx_err)?
                    }
                }
                None => new_null_array(field.data_type(), n),
            });
        }
        let columns = if kept == n {
            columns
        } else {
            columns.iter().map(|c| filter(c, &mask)).collect::<Result<_, _>>().map_err(ctx_err)?
        };
        let batch = RecordBatch::try_new(ctx.schema.clone(), columns).map_err(ctx_err)?;
        Ok(Some((batch, locations)))
    }
}
