//! Sources: every input format, and bad input: a clear error naming file and line or row, or
//! (with --on-bad-record skip) a count, a rejects line, and counts that reconcile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use syllabus::source::{expand_inputs, BadRecordPolicy, Extras, LakeReader, ReadOptions, RejectWriter};

use crate::util::*;

/// A document long enough to be scored, with a distinct word.
fn doc(i: usize) -> String {
    format!("document {i} {}", "lorem ipsum dolor sit amet ".repeat(30))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn jsonl(n: usize) -> String {
    jsonl_of(0..n)
}

/// The lines of documents `ids` (ids `d{i}`).
fn jsonl_of(ids: std::ops::Range<usize>) -> String {
    ids.map(|i| format!("{{\"id\":\"d{i}\",\"text\":\"{}\",\"n\":{i}}}\n", doc(i))).collect()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

fn parquet(dir: &Path, name: &str, texts: Vec<Option<String>>, with_text: bool) -> PathBuf {
    let n = texts.len();
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let text_name = if with_text { "text" } else { "body" };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(text_name, DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(texts)),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
        ],
    )
    .unwrap();
    let path = dir.join(name);
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

/// What reading a lake gave: ids, per-file (read, kept, rejected), the rejects file's lines.
type LakeRead = (Vec<String>, Vec<(u64, u64, u64)>, Vec<serde_json::Value>);

/// Read a lake with the library.
fn read_lake(paths: &[&Path], policy: BadRecordPolicy) -> syllabus::Result<LakeRead> {
    let dir = tempdir();
    let rejects_path = dir.path().join("rejects.jsonl");
    let files = expand_inputs(&paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())?;
    let opts = ReadOptions { on_bad_record: policy, batch_rows: 3, ..Default::default() };
    let mut rejects = RejectWriter::create(&rejects_path)?;
    let mut reader = LakeReader::new(&files, &opts, Extras::none(), Some(&mut rejects));
    let mut ids = Vec::new();
    for b in reader.by_ref() {
        let b = b?;
        let col = syllabus::batch::id_column(&b.batch)?;
        ids.extend(col.iter().map(|s| s.unwrap().to_string()));
    }
    let stats = reader.into_stats().iter().map(|s| (s.read, s.kept, s.rejected)).collect();
    rejects.finish()?;
    Ok((ids, stats, read_jsonl(&rejects_path)))
}

#[test]
fn all_formats_read_the_same_rows() {
    let dir = tempdir();
    let body = jsonl(7);
    let files = [
        write(dir.path(), "a.jsonl", body.as_bytes()),
        write(dir.path(), "b.jsonl.gz", &gz(body.as_bytes())),
        write(dir.path(), "c.jsonl.zst", &zst(body.as_bytes())),
    ];
    for f in &files {
        let (ids, stats, _) = read_lake(&[f], BadRecordPolicy::Fail).unwrap();
        assert_eq!(ids, (0..7).map(|i| format!("d{i}")).collect::<Vec<_>>(), "{}", f.display());
        assert_eq!(stats, [(7, 7, 0)]);
    }
    let pq = parquet(dir.path(), "d.parquet", (0..7).map(|i| Some(doc(i))).collect(), true);
    let (ids, stats, _) = read_lake(&[&pq], BadRecordPolicy::Fail).unwrap();
    assert_eq!(ids.len(), 7);
    assert_eq!(stats, [(7, 7, 0)]);
}

#[test]
fn same_scores_from_every_format() {
    let dir = tempdir();
    let body = jsonl(20);
    let target = write(dir.path(), "t.jsonl", jsonl(3).as_bytes());
    let mut outputs = Vec::new();
    for (name, bytes) in [
        ("a.jsonl", body.as_bytes().to_vec()),
        ("a.jsonl.gz", gz(body.as_bytes())),
        ("a.jsonl.zst", zst(body.as_bytes())),
    ] {
        let f = write(dir.path(), name, &bytes);
        let out = dir.path().join(format!("{name}.scores.jsonl"));
        ok(&syllabus(&["score", "dsir", "-q", "--target", &p(&target), "--out", &p(&out), &p(&f)]));
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

/// A lake with one bad line of each kind between good ones.
fn bad_lake(dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    let lines: Vec<Vec<u8>> = vec![
        format!("{{\"id\":\"g1\",\"text\":\"{}\"}}", doc(1)).into_bytes(), // line 1
        b"{\"id\":\"b1\",\"text\": \"unterminated".to_vec(),               // 2 malformed
        b"[1, 2, 3]".to_vec(),                                             // 3 not an object
        b"{\"id\":\"b3\"}".to_vec(),                                       // 4 missing text
        b"{\"id\":\"b4\",\"text\":null}".to_vec(),                         // 5 null text
        b"{\"id\":\"b5\",\"text\":42}".to_vec(),                           // 6 non-string text
        b"{\"id\":\"b6\",\"text\":\"caf\xe9\"}".to_vec(),                  // 7 invalid UTF-8
        b"".to_vec(),                                                      // 8 blank: not a record
        format!("{{\"text\":\"{}\"}}", doc(2)).into_bytes(),               // 9 good, no id
    ];
    for l in lines {
        bytes.extend_from_slice(&l);
        bytes.push(b'\n');
    }
    write(dir, "bad.jsonl", &bytes)
}

#[test]
fn fail_mode_names_file_and_line() {
    let dir = tempdir();
    let f = bad_lake(dir.path());
    let err = read_lake(&[&f], BadRecordPolicy::Fail).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:line 2 (byte "), "{err}");
    assert!(err.contains("malformed JSON"), "{err}");
    // Through the CLI: exit 1, the same message, no output file.
    let out = dir.path().join("s.jsonl");
    let err = fails(&syllabus(&["score", "dsir", "-q", "--target", &p(&f), "--out", &p(&out), &p(&f)]), 1);
    assert!(err.contains("bad.jsonl:line 2") && err.contains("malformed JSON"), "{err}");
    assert!(!out.exists());
}

#[test]
fn skip_mode_counts_and_records_every_bad_line() {
    let dir = tempdir();
    let f = bad_lake(dir.path());
    let (ids, stats, rejects) = read_lake(&[&f], BadRecordPolicy::Skip).unwrap();
    assert_eq!(ids, vec!["g1".to_string(), format!("{}:9", f.display())]);
    assert_eq!(stats, [(8, 2, 6)]);
    let lines: Vec<u64> = rejects.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
    let reasons: Vec<&str> = rejects.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].starts_with("malformed JSON"));
    assert!(reasons[1].starts_with("not a JSON object"));
    assert_eq!(reasons[2], "missing field \"text\"");
    assert_eq!(reasons[3], "field \"text\" is null, expected a string");
    assert_eq!(reasons[4], "field \"text\" is a number, expected a string");
    assert!(reasons[5].starts_with("invalid UTF-8"));
    assert_eq!(rejects[5]["raw"], "{\"id\":\"b6\",\"text\":\"caf\u{fffd}\"}");
    assert!(rejects.iter().all(|r| r["file"].as_str().unwrap().ends_with("bad.jsonl")));
}

#[test]
fn skip_mode_through_the_cli_reconciles_and_exits_3() {
    let dir = tempdir();
    let f = bad_lake(dir.path());
    let good = write(dir.path(), "good.jsonl", jsonl(5).as_bytes());
    let out = dir.path().join("s.jsonl");
    let rejects = dir.path().join("rejects.jsonl");
    let o = syllabus(&[
        "score",
        "dsir",
        "-q",
        "--target",
        &p(&good),
        "--on-bad-record",
        "skip",
        "--rejects",
        &p(&rejects),
        "--out",
        &p(&out),
        &p(&f),
        &p(&good),
    ]);
    let err = fails(&o, 3);
    assert!(err.contains("read 13 rows from 2 files: 7 kept, 6 rejected"), "{err}");
    assert_eq!(read_jsonl(&out).len(), 7);
    assert_eq!(read_jsonl(&rejects).len(), 6);
}

fn truncated(dir: &Path, name: &str, compressed: &[u8]) -> PathBuf {
    write(dir, name, &compressed[..compressed.len() * 2 / 3])
}

#[test]
fn truncated_compressed_files() {
    let dir = tempdir();
    let body = jsonl(400);
    for (name, bytes) in [("t.jsonl.gz", gz(body.as_bytes())), ("t.jsonl.zst", zst(body.as_bytes()))] {
        let f = truncated(dir.path(), name, &bytes);
        let err = read_lake(&[&f], BadRecordPolicy::Fail).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("truncated or corrupt"), "{err}");
        let (ids, stats, rejects) = read_lake(&[&f], BadRecordPolicy::Skip).unwrap();
        let (read, kept, rejected) = stats[0];
        assert!(kept > 0 && kept < 400, "{name}: kept {kept}");
        assert_eq!(ids.len() as u64, kept);
        // The rows before the damage are kept, in order.
        assert_eq!(ids, (0..kept).map(|i| format!("d{i}")).collect::<Vec<_>>());
        assert_eq!(read, kept + rejected);
        assert!(rejects.last().unwrap()["reason"].as_str().unwrap().contains("truncated or corrupt"));
    }
}

#[test]
fn empty_files_are_zero_rows() {
    let dir = tempdir();
    let files = [
        write(dir.path(), "e.jsonl", b""),
        write(dir.path(), "e.jsonl.gz", &gz(b"")),
        write(dir.path(), "e.jsonl.zst", &zst(b"")),
    ];
    for f in &files {
        let (ids, stats, _) = read_lake(&[f], BadRecordPolicy::Fail).unwrap();
        assert!(ids.is_empty());
        assert_eq!(stats, [(0, 0, 0)]);
    }
}

#[test]
fn parquet_without_text_column_is_a_schema_error() {
    let dir = tempdir();
    let f = parquet(dir.path(), "x.parquet", vec![Some("a".into())], false);
    let err = read_lake(&[&f], BadRecordPolicy::Skip).unwrap_err().to_string();
    assert!(err.contains("x.parquet") && err.contains("no column \"text\"") && err.contains("body"), "{err}");
}

#[test]
fn parquet_null_text_names_the_row() {
    let dir = tempdir();
    let f = parquet(dir.path(), "n.parquet", vec![Some(doc(0)), None, Some(doc(2))], true);
    let err = read_lake(&[&f], BadRecordPolicy::Fail).unwrap_err().to_string();
    assert!(err.contains("n.parquet:row 1"), "{err}");
    let (ids, stats, rejects) = read_lake(&[&f], BadRecordPolicy::Skip).unwrap();
    assert_eq!(ids, ["p0", "p2"]);
    assert_eq!(stats, [(3, 2, 1)]);
    assert_eq!(rejects[0]["row"], 1);
}

#[test]
fn missing_paths_and_empty_directories() {
    let dir = tempdir();
    let err = expand_inputs(&[dir.path().join("nope.jsonl").display().to_string()]).unwrap_err().to_string();
    assert!(err.contains("nope.jsonl: no such file or directory"), "{err}");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    write(&dir.path().join("empty"), "notes.txt", b"hi");
    let err = expand_inputs(&[dir.path().join("empty").display().to_string()]).unwrap_err().to_string();
    assert!(err.contains("no input files match"), "{err}");
    let err = expand_inputs(&[format!("{}/*.parquet", dir.path().display())]).unwrap_err().to_string();
    assert!(err.contains("no input files match"), "{err}");
    let txt = write(dir.path(), "x.csv", b"a,b");
    let err = expand_inputs(&[txt.display().to_string()]).unwrap_err().to_string();
    assert!(err.contains("unsupported file type"), "{err}");
    // Through the CLI.
    let err = fails(
        &syllabus(&[
            "score",
            "dsir",
            "-q",
            "--target",
            "fixtures/target/math.jsonl",
            "--out",
            "/tmp/x.jsonl",
            "no/such/file.jsonl",
        ]),
        1,
    );
    assert!(err.contains("no/such/file.jsonl: no such file or directory"), "{err}");
}

#[test]
fn directories_and_globs_are_sorted() {
    let lake = fixture("lake");
    let files = expand_inputs(std::slice::from_ref(&lake)).unwrap();
    let names: Vec<String> =
        files.iter().map(|f| Path::new(&f.name).file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["code.jsonl.zst", "docs.parquet", "math.jsonl.gz", "prose.jsonl"]);
    let globbed = expand_inputs(&[format!("{lake}/*.jsonl*")]).unwrap();
    assert_eq!(globbed.len(), 3);
    // A file named twice is read once.
    assert_eq!(expand_inputs(&[lake.clone(), lake]).unwrap().len(), 4);
}

#[test]
fn stdin_is_read_as_jsonl() {
    let dir = tempdir();
    let out = dir.path().join("s.jsonl");
    let body = jsonl(4).replace("\"id\":\"d2\",", "");
    let o = syllabus_stdin(
        &["score", "dsir", "-q", "--target", "fixtures/target/math.jsonl", "--min-words", "1", "--out", &p(&out), "-"],
        Some(body.as_bytes()),
    );
    ok(&o);
    assert_eq!(ids(&read_jsonl(&out)), ["d0", "d1", "-:3", "d3"]);
}

#[test]
fn inspect_shows_format_rows_schema_and_sample() {
    let o = syllabus(&["inspect", "fixtures/lake"]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "code.jsonl.zst",
        "format: jsonl.zst",
        "rows:   330",
        "docs.parquet",
        "format: parquet",
        "rows:   269",
        "id: Utf8",
        "domain: Utf8",
        "sample: {\"id\":\"code-00000\"",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

mod properties {
    use indexmap::IndexSet;
    use proptest::prelude::*;
    use syllabus::source::{Extras, JsonlDecoder};

    proptest! {
        /// No line, however broken, makes the decoder panic; a bad line appends nothing.
        #[test]
        fn decoder_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = JsonlDecoder::new("text", "id", "f", &Extras::none());
            let before = d.rows();
            match d.decode_line(&line, 1, &mut IndexSet::new()) {
                Ok(()) => prop_assert_eq!(d.rows(), before + 1),
                Err(_) => prop_assert_eq!(d.rows(), before),
            }
        }

        #[test]
        fn json_text_round_trips(text in "\\PC*") {
            let line = serde_json::json!({"text": text}).to_string();
            let mut d = JsonlDecoder::new("text", "id", "f", &Extras::none());
            prop_assert!(d.decode_line(line.as_bytes(), 1, &mut IndexSet::new()).is_ok());
        }
    }
}

#[test]
fn selection_skips_bad_lines_and_keeps_every_column() {
    // Bad lines between good ones must not shift which rows the write pass picks up again.
    let dir = tempdir();
    let mut body = String::new();
    for i in 0..60 {
        body.push_str(&format!("{{\"id\":\"d{i}\",\"text\":\"{}\",\"n\":{i},\"tag\":{{\"k\":{i}}}}}\n", doc(i)));
        if i % 7 == 3 {
            body.push_str("{\"id\": broken\n");
        }
    }
    let lake = write(dir.path(), "lake.jsonl.zst", &zst(body.as_bytes()));
    let target = write(dir.path(), "t.jsonl", jsonl(3).as_bytes());
    let out = dir.path().join("sel.jsonl");
    let scores = dir.path().join("scores.jsonl");
    let o = syllabus(&[
        "select",
        "dsir",
        "-q",
        "--top-k",
        "--k",
        "20",
        "--on-bad-record",
        "skip",
        "--target",
        &p(&target),
        "--out",
        &p(&out),
        "--scores-out",
        &p(&scores),
        &p(&lake),
    ]);
    fails(&o, 3);
    let all = read_jsonl(&scores);
    assert_eq!(all.len(), 60);
    let mut ranked: Vec<(f64, usize)> =
        all.iter().enumerate().map(|(i, r)| (r["dsir_logw"].as_f64().unwrap(), i)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut want: Vec<usize> = ranked[..20].iter().map(|r| r.1).collect();
    want.sort();
    let rows = read_jsonl(&out);
    assert_eq!(ids(&rows), want.iter().map(|i| format!("d{i}")).collect::<Vec<_>>());
    for r in &rows {
        let i: i64 = r["id"].as_str().unwrap()[1..].parse().unwrap();
        // Pass-through columns: numbers and objects as JSON text.
        assert_eq!(r["n"], i.to_string());
        assert_eq!(r["tag"], format!("{{\"k\":{i}}}"));
    }
}

#[test]
fn corrupt_parquet_files_are_errors_naming_the_file() {
    let dir = tempdir();
    let garbage = write(dir.path(), "garbage.parquet", b"this is not parquet at all, not even close");
    let err = read_lake(&[&garbage], BadRecordPolicy::Skip).unwrap_err().to_string();
    assert!(err.contains("garbage.parquet"), "{err}");
    let good = parquet(dir.path(), "good.parquet", (0..50).map(|i| Some(doc(i))).collect(), true);
    let bytes = std::fs::read(&good).unwrap();
    let cut = write(dir.path(), "cut.parquet", &bytes[..bytes.len() / 2]);
    let err = read_lake(&[&cut], BadRecordPolicy::Skip).unwrap_err().to_string();
    assert!(err.contains("cut.parquet"), "{err}");
    // A text column that is not a string column.
    let dir2 = tempdir();
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
    let path = dir2.path().join("ints.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = read_lake(&[&path], BadRecordPolicy::Skip).unwrap_err().to_string();
    assert!(err.contains("ints.parquet") && err.contains("expected a string column"), "{err}");
}

/// Row counts of the batches of `path` read whole (`batch_rows` 1000), and its ids in order.
fn batches_of(path: &Path) -> (Vec<usize>, Vec<String>) {
    let files = expand_inputs(&[path.display().to_string()]).unwrap();
    let opts = ReadOptions { batch_rows: 1000, ..Default::default() };
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    for b in LakeReader::new(&files, &opts, Extras::none(), None) {
        let b = b.unwrap();
        rows.push(b.batch.num_rows());
        ids.extend(syllabus::batch::id_column(&b.batch).unwrap().iter().map(|s| s.unwrap().to_string()));
    }
    (rows, ids)
}

/// Near the end of a plain file the batches shrink (an eighth of what is left, at least 256
/// KiB), so that threads finish together; the rows are those of a compressed copy, whose
/// batches stay whole.
#[test]
fn the_last_batches_of_a_plain_file_shrink_and_lose_nothing() {
    let dir = tempdir();
    let text = jsonl(6000);
    assert!(text.len() > 4 << 20, "the file must be several times the smallest tail batch");
    let (plain_rows, plain_ids) = batches_of(&write(dir.path(), "a.jsonl", text.as_bytes()));
    let (gz_rows, gz_ids) = batches_of(&write(dir.path(), "a.jsonl.gz", &gz(text.as_bytes())));
    assert_eq!(plain_ids, gz_ids);
    assert_eq!(plain_ids.len(), 6000);
    assert_eq!(gz_rows, [1000; 6]);
    assert!(plain_rows.len() > gz_rows.len(), "{plain_rows:?}");
    assert!(plain_rows.windows(2).all(|w| w[0] >= w[1]), "batches only shrink toward the end: {plain_rows:?}");
    // The last batches are about 256 KiB of ~850-byte lines.
    assert!(plain_rows.last().is_some_and(|&n| n < 400), "{plain_rows:?}");
}

/// Lines that give no row (blank, or rejected in skip mode) never end a batch by its byte
/// bound: a batch of no rows is the end of the file, and the rows after them would be lost.
#[test]
fn blank_and_rejected_lines_near_the_end_do_not_end_the_file() {
    let dir = tempdir();
    let mut text = jsonl(10);
    text.push_str(&"\n".repeat(300 << 10));
    text.push_str(&"{not json}\n".repeat(30 << 10));
    text.push_str(&"  \n".repeat(100 << 10));
    text.push_str(&jsonl_of(10..25));
    let path = write(dir.path(), "blank.jsonl", text.as_bytes());
    let (ids, stats, rejects) = read_lake(&[&path], BadRecordPolicy::Skip).unwrap();
    assert_eq!(ids, (0..25).map(|i| format!("d{i}")).collect::<Vec<_>>());
    assert_eq!(stats, [(25 + (30 << 10), 25, 30 << 10)]);
    assert_eq!(rejects.len(), 30 << 10);
    // Blank lines alone, in fail mode, read in batches of up to 1000 rows.
    let mut text = jsonl(10);
    text.push_str(&"\n".repeat(600 << 10));
    text.push_str(&jsonl_of(10..25));
    let (_, ids) = batches_of(&write(dir.path(), "blank2.jsonl", text.as_bytes()));
    assert_eq!(ids, (0..25).map(|i| format!("d{i}")).collect::<Vec<_>>());
}
