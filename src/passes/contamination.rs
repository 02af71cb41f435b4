//! A benchmark's items for the contamination rule ([`crate::score::contamination`]): every
//! row's id and text, in file order, read like any lake file.

use arrow::array::Array;

use crate::batch::{id_column, text_column};
use crate::error::Result;
use crate::progress::Progress;
use crate::source::{Extras, FileStats, InputFile, LakeReader, ReadOptions, RejectWriter};

/// The items of `files` (ids, texts; a null text is empty) and each file's counts.
pub fn read_items(
    files: &[InputFile],
    read: &ReadOptions,
    progress: &Progress,
    rejects: Option<&mut RejectWriter>,
) -> Result<(Vec<String>, Vec<String>, Vec<FileStats>)> {
    let bar = progress.rows("benchmark");
    let mut reader = LakeReader::new(files, read, Extras::none(), rejects);
    let (mut ids, mut texts) = (Vec::new(), Vec::new());
    for b in reader.by_ref() {
        let b = b?;
        let (id, text) = (id_column(&b.batch)?, text_column(&b.batch)?);
        for i in 0..b.batch.num_rows() {
            ids.push(id.value(i).to_string());
            texts.push(if text.is_null(i) { String::new() } else { text.value(i).to_string() });
        }
        bar.inc(b.batch.num_rows() as u64);
    }
    bar.finish_and_clear();
    Ok((ids, texts, reader.into_stats()))
}
