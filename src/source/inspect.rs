//! `syllabus inspect`: what a file holds, as syllabus reads it.

use arrow::datatypes::SchemaRef;

use super::{lake_extras, BadRecordPolicy, Extras, InputFile, LakeReader, ReadOptions};
use crate::error::{Error, Result};

#[derive(Debug, serde::Serialize)]
pub struct FileInfo {
    pub file: String,
    pub format: &'static str,
    pub bytes: u64,
    /// Rows syllabus can read.
    pub rows: u64,
    /// Rows it would reject (each one is named by `--on-bad-record fail`).
    pub bad_rows: u64,
    /// `name: type` of every column as syllabus reads the file.
    pub schema: Vec<String>,
    /// The first good row as JSON.
    pub sample: Option<String>,
}

fn schema_lines(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect()
}

pub fn inspect_file(file: &InputFile, opts: &ReadOptions) -> Result<FileInfo> {
    let bytes = crate::store::stat(&file.path)?.ok_or_else(|| Error::NotFound { path: file.path.clone() })?.len;
    let opts = ReadOptions { on_bad_record: BadRecordPolicy::Skip, ..opts.clone() };
    let files = std::slice::from_ref(file);
    // Count every row (and learn the jsonl fields), then read the first batch with all columns.
    let mut counter = LakeReader::new(files, &opts, Extras::none(), None);
    for b in counter.by_ref() {
        b?;
    }
    let stats = counter.into_stats();
    let extras = lake_extras(files, &stats, &opts)?;
    let mut reader = LakeReader::new(files, &opts, extras, None);
    let schema = reader.schema();
    let sample = match reader.next().transpose()? {
        Some(b) => {
            let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
            w.write(&b.batch.slice(0, 1)).map_err(|e| Error::arrow("formatting a sample row", e))?;
            w.finish().map_err(|e| Error::arrow("formatting a sample row", e))?;
            Some(String::from_utf8_lossy(&w.into_inner()).trim_end().to_string())
        }
        None => None,
    };
    let st = &stats[0];
    Ok(FileInfo {
        file: file.name.clone(),
        format: file.format.name(),
        bytes,
        rows: st.kept,
        bad_rows: st.rejected,
        schema: schema_lines(&schema),
        sample,
    })
}

impl FileInfo {
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}\n  format: {}\n  bytes:  {}\n  rows:   {}{}\n  schema:\n",
            self.file,
            self.format,
            self.bytes,
            self.rows,
            if self.bad_rows > 0 { format!(" ({} bad rows)", self.bad_rows) } else { String::new() }
        );
        for l in &self.schema {
            s.push_str(&format!("    {l}\n"));
        }
        if let Some(sample) = &self.sample {
            let shown: String = sample.chars().take(400).collect();
            let more = if shown.len() < sample.len() { " ..." } else { "" };
            s.push_str(&format!("  sample: {shown}{more}\n"));
        }
        s
    }
}
