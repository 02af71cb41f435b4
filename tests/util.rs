//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> String {
    root().join("fixtures").join(rel).display().to_string()
}

pub fn golden(rel: &str) -> PathBuf {
    root().join("tests").join("golden").join(rel)
}

/// Run the syllabus binary with `args` (from the repository root) and return its output.
pub fn syllabus(args: &[&str]) -> Output {
    syllabus_stdin(args, None)
}

/// Run the syllabus binary that aborts at crash point `failpoint` (`SYLLABUS_FAILPOINT`), if one
/// is given, as `kill -9` would stop it.
pub fn syllabus_at(args: &[&str], failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syllabus"));
    cmd.args(args).current_dir(root()).env("SYLLABUS_FAILPOINT", failpoint.unwrap_or(""));
    cmd.output().expect("run syllabus")
}

/// The fixture lake plus `e-bad.jsonl` (200 documents, 6 of them malformed lines) between its
/// Parquet and gzip files: every input format, and bad records to skip.
pub fn mixed_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    for f in std::fs::read_dir(root().join("fixtures/lake")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, lake.join(f.file_name().unwrap())).unwrap();
    }
    let bad: String = (0..200)
        .map(|i| {
            if i % 37 == 5 {
                "{not json\n".to_string()
            } else {
                format!("{{\"id\":\"bad-{i}\",\"text\":\"words {i} and more words\"}}\n")
            }
        })
        .collect();
    std::fs::write(lake.join("e-bad.jsonl"), bad).unwrap();
    lake
}

pub fn syllabus_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syllabus"));
    cmd.args(args).current_dir(root()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn syllabus");
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait for syllabus")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the command succeeded (exit 0) and return its stderr.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "syllabus failed ({:?}):\n{}", o.status.code(), stderr(o));
    stderr(o)
}

/// Assert the command failed with `code` and return its stderr.
#[track_caller]
pub fn fails(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "unexpected exit status; stderr:\n{}", stderr(o));
    stderr(o)
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("valid json line")).collect()
}

pub fn ids(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter().map(|r| r["id"].as_str().expect("string id").to_string()).collect()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A Parquet table's columns by name, every value as text (cast to UTF-8; null as "").
pub fn parquet_table(path: &Path) -> std::collections::HashMap<String, Vec<String>> {
    use arrow::array::{Array, StringArray};
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for b in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap() {
        let b = b.unwrap();
        for (field, col) in b.schema().fields().iter().zip(b.columns()) {
            let text = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
            let text = text.as_any().downcast_ref::<StringArray>().unwrap();
            let v = out.entry(field.name().clone()).or_default();
            v.extend((0..text.len()).map(|i| if text.is_null(i) { String::new() } else { text.value(i).to_string() }));
        }
    }
    out
}
