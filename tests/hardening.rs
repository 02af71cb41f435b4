//! Regression tests for hostile inputs and settings (one per problem found when syllabus was
//! tried with third-party tools and generated hostile inputs): each is named after what broke.

use std::io::Write;
use std::path::Path;

use crate::util::*;

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn parquet_column_names(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap();
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    b.schema().fields().iter().map(|f| f.name().clone()).collect()
}

#[test]
fn selected_parquet_has_one_domain_column_when_the_lake_has_its_own() {
    // A lake whose rows carry a "domain" field, with the pipeline's per-file domains: the
    // configured domain replaces the lake's column (README: "Column names").
    let dir = tempdir();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let mut rows = String::new();
    for i in 0..40 {
        rows.push_str(&format!(
            "{{\"id\":\"d{i}\",\"text\":\"word {i} and more words here\",\"domain\":\"lake-own\"}}\n"
        ));
    }
    std::fs::write(lake.join("a.jsonl"), &rows).unwrap();
    std::fs::write(lake.join("b.jsonl"), rows.replace("\"d", "\"e")).unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"dup\"\nout_dir = \"{}\"\n[source]\n[source.domains]\nfirst = [\"{}\"]\nsecond = [\"{}\"]\n\
             [select]\nmethod = \"dsir\"\ntarget = [\"{}\"]\nk = 10\nmin_words = 1\n",
            p(&dir.path().join("out")),
            p(&lake.join("a.jsonl")),
            p(&lake.join("b.jsonl")),
            fixture("target/math.jsonl")
        ),
    )
    .unwrap();
    ok(&syllabus(&["run", &p(&cfg), "-q"]));
    let names = parquet_column_names(&dir.path().join("out/selected.parquet"));
    assert_eq!(names.iter().filter(|n| *n == "domain").count(), 1, "{names:?}");
    let rows = read_parquet_column(&dir.path().join("out/selected.parquet"), "domain");
    assert!(rows.iter().all(|d| d == "first" || d == "second"), "{rows:?}");
    // Selecting again from a selection: the new score column replaces the old one.
    let again = dir.path().join("again.parquet");
    ok(&syllabus(&[
        "select",
        "dsir",
        "--target",
        &fixture("target/math.jsonl"),
        "--k",
        "3",
        "--min-words",
        "1",
        "--out",
        &p(&again),
        "-q",
        &p(&dir.path().join("out/selected.parquet")),
    ]));
    let names = parquet_column_names(&again);
    assert_eq!(names.iter().filter(|n| *n == "dsir_logw").count(), 1, "{names:?}");
}

fn read_parquet_column(path: &Path, col: &str) -> Vec<String> {
    parquet_table(path).remove(col).unwrap_or_else(|| panic!("no column {col} in {}", path.display()))
}

#[test]
fn a_labelled_feature_table_without_text_is_scored() {
    let dir = tempdir();
    let table = dir.path().join("features.jsonl");
    let mut rows = String::new();
    for i in 0..60u32 {
        let y = i % 3;
        let pixels: Vec<f32> = (0..4).map(|k| if k == y { 2.0 } else { 0.1 * (i % 5) as f32 }).collect();
        rows.push_str(&format!("{{\"id\":\"r{i}\",\"pixels\":{pixels:?},\"label\":{y}}}\n"));
    }
    std::fs::write(&table, rows).unwrap();
    let out = dir.path().join("el2n.parquet");
    ok(&syllabus(&[
        "score",
        "el2n",
        "--proxy",
        "mlp",
        "--features",
        "pixels",
        "--label",
        "label",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--out",
        &p(&out),
        "-q",
        &p(&table),
    ]));
    assert_eq!(read_parquet_column(&out, "id").len(), 60);
}

#[test]
fn an_unknown_output_extension_is_refused() {
    let dir = tempdir();
    let out = dir.path().join("a.csv");
    let err = fails(
        &syllabus(&[
            "score",
            "dsir",
            "--target",
            &fixture("target/math.jsonl"),
            "--out",
            &p(&out),
            "-q",
            &fixture("target/docs.jsonl"),
        ]),
        1,
    );
    assert!(err.contains("a.csv: unknown output type"), "{err}");
    assert!(!out.exists() && !dir.path().join("a.csv.tmp").exists());
}

#[test]
fn sql_on_a_damaged_parquet_footer_is_an_error_not_a_panic() {
    let dir = tempdir();
    // A real file whose footer length field says more than the file holds.
    let good = dir.path().join("good.parquet");
    ok(&syllabus(&[
        "score",
        "dsir",
        "--target",
        &fixture("target/math.jsonl"),
        "--out",
        &p(&good),
        "-q",
        &fixture("target/docs.jsonl"),
    ]));
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&(n as u32 * 4).to_le_bytes());
    let long_footer = dir.path().join("long_footer.parquet");
    std::fs::write(&long_footer, &bytes).unwrap();
    let tiny = dir.path().join("tiny.parquet");
    std::fs::write(&tiny, b"PAR1PAR1").unwrap();
    for f in [&long_footer, &tiny] {
        let err = fails(&syllabus(&["sql", &p(f), "-c", "select count(*) from t"]), 1);
        assert!(err.contains(&p(f)) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_record_over_the_size_limit_is_refused_or_skipped_without_holding_it() {
    let dir = tempdir();
    let lake = dir.path().join("big.jsonl.gz");
    let long = format!("{{\"id\":\"big\",\"text\":\"{}\"}}\n", "a".repeat(50_000));
    write_gz(
        &lake,
        format!("{{\"id\":\"x\",\"text\":\"small one\"}}\n{long}{{\"id\":\"y\",\"text\":\"after it\"}}\n").as_bytes(),
    );
    let out = dir.path().join("o.parquet");
    let args = |policy: &'static str| {
        vec![
            "score".to_string(),
            "dsir".into(),
            "--target".into(),
            fixture("target/math.jsonl"),
            "--max-record-bytes".into(),
            "10000".into(),
            "--on-bad-record".into(),
            policy.into(),
            "--out".into(),
            p(&out),
            "-q".into(),
            p(&lake),
        ]
    };
    let fail: Vec<String> = args("fail");
    let err = fails(&syllabus(&fail.iter().map(String::as_str).collect::<Vec<_>>()), 1);
    assert!(err.contains("big.jsonl.gz:line 2") && err.contains("over the limit of 10000 bytes"), "{err}");
    let skip: Vec<String> = args("skip");
    let err = fails(&syllabus(&skip.iter().map(String::as_str).collect::<Vec<_>>()), 3);
    assert!(err.contains("1 rejected"), "{err}");
    assert_eq!(read_parquet_column(&out, "id"), ["x", "y"]);
}

#[test]
fn options_that_size_memory_or_loops_are_refused_up_front() {
    let dir = tempdir();
    let out = p(&dir.path().join("o.parquet"));
    let (math, docs, tok) = (fixture("target/math.jsonl"), fixture("target/docs.jsonl"), fixture("tokenizer.json"));
    let dsir = |extra: &[&str]| {
        let mut a = vec!["score", "dsir", "--target", &math, "--out", &out, "-q"];
        a.extend_from_slice(extra);
        a.push(&docs);
        syllabus(&a)
    };
    let lm = |extra: &[&str]| {
        let mut a = vec!["score", "loss", "--proxy", "lm", "--tokenizer", &tok, "--out", &out, "-q"];
        a.extend_from_slice(extra);
        a.push(&docs);
        syllabus(&a)
    };
    let cases: Vec<(std::process::Output, &str)> = vec![
        (dsir(&["--buckets", "1073741824", "--fit-all"]), "buckets = 1073741824: at most"),
        (dsir(&["--ngrams", "1099511627776"]), "ngrams = 1099511627776: at most 16"),
        (dsir(&["--batch-rows", "1099511627776"]), "--batch-rows = 1099511627776: at most"),
        (lm(&["--epochs", "1e9"]), "epochs = 1000000000: at most"),
        (lm(&["--batch-size", "1099511627776"]), "batch_size = 1099511627776: at most"),
        (lm(&["--width", "1048576"]), "width = 1048576: at most"),
        (lm(&["--context", "1099511627776"]), "context = 1099511627776: at most"),
        (lm(&["--layers", "100000"]), "layers = 100000: at most"),
        (lm(&["--width", "8192", "--layers", "200", "--context", "8192", "--batch-size", "4096"]), "needs about"),
        (syllabus(&["--threads", "10000", "inspect", &docs]), "--threads = 10000: at most 1024"),
        (
            syllabus(&[
                "tokenizer",
                "train",
                "--vocab-size",
                "4294967296",
                "--out",
                &p(&dir.path().join("t.json")),
                &docs,
            ]),
            "vocab_size = 4294967296: at most",
        ),
        (
            syllabus(&[
                "curriculum",
                "--tokenizer",
                &tok,
                "--seq-len",
                "64",
                "--reweight-by",
                "loss",
                "--window",
                "1099511627776",
                "--out",
                &p(&dir.path().join("c")),
                &docs,
            ]),
            "window = 1099511627776: at most",
        ),
        (
            syllabus(&[
                "curriculum",
                "--tokenizer",
                &tok,
                "--seq-len",
                "64",
                "--budget-tokens",
                "9223372036854775807",
                "--on-exhausted",
                "repeat",
                "--phase",
                "0:all=1",
                "--out",
                &p(&dir.path().join("c2")),
                &docs,
            ]),
            "tokens = 9223372036854775807: at most",
        ),
        (
            syllabus(&[
                "curriculum",
                "--tokenizer",
                &tok,
                "--seq-len",
                "64",
                "--budget-tokens",
                "900000000000000",
                "--on-exhausted",
                "repeat",
                "--phase",
                "0:all=1",
                "--out",
                &p(&dir.path().join("c3")),
                &docs,
            ]),
            "of shards, more than the",
        ),
    ];
    for (o, expect) in cases {
        let err = fails(&o, 1);
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    }
    // A 2^34-token shard is built in memory (128 GiB): refused where memory is smaller.
    if syllabus::limits::physical_memory().is_some_and(|m| m < 128 << 30) {
        let o = syllabus(&[
            "curriculum",
            "--tokenizer",
            &tok,
            "--seq-len",
            "64",
            "--shard-tokens",
            "17179869184",
            "--out",
            &p(&dir.path().join("c4")),
            &docs,
        ]);
        let err = fails(&o, 1);
        assert!(err.contains("a shard of 17179869184 tokens (output.shard_tokens) needs about"), "{err}");
    }
    // A label near 2^32 would make an output layer of four billion classes.
    let table = dir.path().join("labels.jsonl");
    std::fs::write(&table, "{\"id\":\"a\",\"f\":[1,2],\"label\":4000000000}\n{\"id\":\"b\",\"f\":[2,1],\"label\":0}\n")
        .unwrap();
    let err = fails(
        &syllabus(&[
            "score",
            "el2n",
            "--proxy",
            "mlp",
            "--features",
            "f",
            "--label",
            "label",
            "--out",
            &out,
            "-q",
            &p(&table),
        ]),
        1,
    );
    assert!(err.contains("classes (the largest label + 1) = 4000000001: at most"), "{err}");
}

#[test]
fn phases_on_domains_without_documents_are_an_error_not_a_panic() {
    let dir = tempdir();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let e = format!("e={}", p(&empty));
    let d = format!("d={}", fixture("target/docs.jsonl"));
    let err = fails(
        &syllabus(&[
            "curriculum",
            "--tokenizer",
            &fixture("tokenizer.json"),
            "--seq-len",
            "64",
            "--domain",
            &e,
            "--domain",
            &d,
            "--phase",
            "0:e=1,d=0",
            "--budget-tokens",
            "1000",
            "--out",
            &p(&dir.path().join("c")),
            "-q",
        ]),
        1,
    );
    assert!(err.contains("no document to write") && err.contains("(e;"), "{err}");
}

#[test]
fn a_diverged_proxy_is_an_error_not_silent_scores() {
    let dir = tempdir();
    let out = dir.path().join("o.parquet");
    let err = fails(
        &syllabus(&[
            "score",
            "el2n",
            "--proxy",
            "mlp",
            "--features",
            "pixels",
            "--label",
            "label",
            "--lr",
            "1e30",
            "--epochs",
            "2",
            "--seeds",
            "1",
            "--out",
            &p(&out),
            "-q",
            &fixture("digits/train.parquet"),
        ]),
        1,
    );
    assert!(err.contains("diverged") && err.contains("--lr"), "{err}");
    assert!(!out.exists());
}

#[test]
fn many_distinct_keys_are_read_in_linear_time() {
    // 100k keys on one line, and 20k lines each with a new key: quadratic handling took
    // minutes; linear takes a moment (no timing is asserted, the test just finishes).
    let dir = tempdir();
    let wide = dir.path().join("wide.jsonl");
    let mut line = String::from("{\"id\":\"w\",\"text\":\"t\"");
    for k in 0..100_000 {
        line.push_str(&format!(",\"k{k}\":{k}"));
    }
    line.push_str("}\n");
    std::fs::write(&wide, &line).unwrap();
    let o = syllabus(&["inspect", &p(&wide)]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("k99999: Utf8"));
    let keys = dir.path().join("keys.jsonl");
    let mut rows = String::new();
    for i in 0..20_000 {
        rows.push_str(&format!("{{\"id\":\"r{i}\",\"text\":\"t\",\"key{i}\":1}}\n"));
    }
    std::fs::write(&keys, rows).unwrap();
    let o = syllabus(&["sql", &p(&keys), "--format", "csv", "-c", "select count(*) as n from keys"]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().nth(1), Some("20000"));
    let o = syllabus(&["sql", &p(&keys), "--format", "csv", "-c", "select count(key7) as n from keys"]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().nth(1), Some("1"));
}

/// A fresh two-domain curriculum to damage.
fn curriculum(out: &Path) {
    let prose = format!("prose={}", fixture("lake/prose.jsonl"));
    let code = format!("code={}", fixture("lake/code.jsonl.zst"));
    ok(&syllabus(&[
        "-q",
        "curriculum",
        "--tokenizer",
        &fixture("tokenizer.json"),
        "--seq-len",
        "64",
        "--shard-tokens",
        "8192",
        "--on-bad-record",
        "skip",
        "--domain",
        &prose,
        "--domain",
        &code,
        "--format",
        "syllabus,megatron",
        "--out",
        &p(out),
    ]));
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Damage a shard's bytes at `at` and rewrite its size and checksum in the manifest, so only
/// the header and content checks can find it.
fn damage_shard(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let rel = "shards/shard-00000.syl";
    let mut bytes = std::fs::read(dir.join(rel)).unwrap();
    edit(&mut bytes);
    std::fs::write(dir.join(rel), &bytes).unwrap();
    let sum = format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    edit_manifest(dir, |m| {
        let e = m["shards"].as_array_mut().unwrap().iter_mut().find(|e| e["path"] == rel).unwrap();
        e["checksum"] = sum.into();
        e["bytes"] = (bytes.len() as u64).into();
    });
}

#[test]
fn verify_serve_and_sql_refuse_every_manifest_or_header_field_that_disagrees() {
    let dir = tempdir();
    let clean = dir.path().join("clean");
    curriculum(&clean);
    ok(&syllabus(&["verify", &p(&clean)]));
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        ("dtype u32", Box::new(|d| edit_manifest(d, |m| m["token_dtype"] = "u32".into())), "token_dtype \"u32\""),
        ("dtype u64", Box::new(|d| edit_manifest(d, |m| m["token_dtype"] = "u64".into())), "token_dtype \"u64\""),
        ("packing", Box::new(|d| edit_manifest(d, |m| m["packing"] = "x".into())), "packing \"x\""),
        ("version", Box::new(|d| edit_manifest(d, |m| m["shard_format_version"] = 2.into())), "shard_format_version 2"),
        ("totals", Box::new(|d| edit_manifest(d, |m| m["totals"]["documents"] = 1.into())), "documents"),
        ("padding", Box::new(|d| edit_manifest(d, |m| m["totals"]["padding_tokens"] = 0.into())), "padding"),
        (
            "no shards",
            Box::new(|d| edit_manifest(d, |m| m["shards"] = serde_json::json!([]))),
            "in the directory but not in the manifest",
        ),
        ("pad flag", Box::new(|d| damage_shard(d, |b| b[13] = 0)), "the header says padded"),
        ("pad id", Box::new(|d| damage_shard(d, |b| b[20] ^= 1)), "pad_id"),
        ("reserved", Box::new(|d| damage_shard(d, |b| b[60] = 7)), "reserved header bytes 56-63"),
        (
            "NaN weight",
            Box::new(|d| {
                damage_shard(d, |b| {
                    let n_seq = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
                    let at = 64 + n_seq * 64 * 2;
                    b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                })
            }),
            "weight NaN",
        ),
        (
            "doc domain 65535",
            Box::new(|d| {
                damage_shard(d, |b| {
                    let docs = u64::from_le_bytes(b[48..56].try_into().unwrap()) as usize;
                    b[docs + 24..docs + 26].copy_from_slice(&u16::MAX.to_le_bytes());
                })
            }),
            "domain id 65535",
        ),
    ];
    let shm = dir.path().join("shm");
    std::fs::create_dir(&shm).unwrap();
    for (i, (what, damage, expect)) in cases.into_iter().enumerate() {
        let d = dir.path().join(format!("case{i}"));
        copy_dir(&clean, &d);
        damage(&d);
        let err = fails(&syllabus(&["verify", &p(&d)]), 1);
        assert!(err.contains(expect), "verify, {what}: {err}");
        let err = fails(&syllabus(&["sql", &p(&d), "-c", "select count(*) from sequences"]), 1);
        assert!(!err.contains("panicked"), "sql, {what}: {err}");
        if what != "no shards" {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_syllabus"))
                .args(["serve", &p(&d), "-q"])
                .env("SYLLABUS_SHM_DIR", &shm)
                .output()
                .unwrap();
            let err = fails(&o, 1);
            assert!(err.contains(expect) || err.contains("not a valid syllabus manifest"), "serve, {what}: {err}");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn manifest_paths_outside_the_directory_are_refused() {
    let dir = tempdir();
    let clean = dir.path().join("clean");
    curriculum(&clean);
    for (i, target) in ["../../../../etc/passwd", "/etc/passwd", "shards/zero.syl"].into_iter().enumerate() {
        let d = dir.path().join(format!("case{i}"));
        copy_dir(&clean, &d);
        std::os::unix::fs::symlink("/dev/zero", d.join("shards/zero.syl")).unwrap();
        edit_manifest(&d, |m| m["shards"][0]["path"] = target.into());
        let err = fails(&syllabus(&["verify", &p(&d)]), 1);
        assert!(
            err.contains(target) && (err.contains("relative path inside") || err.contains("outside")),
            "{target}: {err}"
        );
        let err = fails(&syllabus(&["sql", &p(&d), "-c", "select count(*) from sequences"]), 1);
        assert!(err.contains("relative path inside") || err.contains("outside"), "{target}: {err}");
    }
}

#[test]
fn out_to_a_device_fifo_or_directory_is_refused_and_leaves_nothing() {
    let dir = tempdir();
    let (math, docs) = (fixture("target/math.jsonl"), fixture("target/docs.jsonl"));
    let link = dir.path().join("full.parquet");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    let err = fails(&syllabus(&["score", "dsir", "--target", &math, "--out", &p(&link), "-q", &docs]), 1);
    assert!(err.contains("/dev/full: is a device"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    let sub = dir.path().join("d.parquet");
    std::fs::create_dir(&sub).unwrap();
    let err = fails(&syllabus(&["score", "dsir", "--target", &math, "--out", &p(&sub), "-q", &docs]), 1);
    assert!(err.contains("is a directory"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "nothing left behind: {names:?}");
}

#[test]
fn tokenizer_train_is_deterministic_sized_and_round_trips() {
    let dir = tempdir();
    let train = |name: &str| {
        let out = dir.path().join(name);
        ok(&syllabus(&[
            "tokenizer",
            "train",
            "--vocab-size",
            "600",
            "--out",
            &p(&out),
            "-q",
            &fixture("target/docs.jsonl"),
        ]));
        out
    };
    let (a, b) = (train("a.json"), train("b.json"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same text, same tokenizer");
    let tok = tokenizers::Tokenizer::from_file(&a).unwrap();
    assert_eq!(tok.get_vocab_size(true), 600);
    for text in ["Hello, wörld! 3.14 <|endoftext|>", "def f(x):\n\treturn x ** 2", "日本語 🎉"] {
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn a_parquet_page_that_makes_the_decoder_panic_is_a_bad_record() {
    // Found by `make fuzz`: the fixture with 46 bytes of its first data page cut out makes the
    // parquet crate's bit reader assert (num_bits <= BIT_CAPACITY) instead of returning an error.
    let dir = tempdir();
    let mut bytes = std::fs::read(root().join("fixtures/lake/docs.parquet")).unwrap();
    bytes.drain(271..317);
    let damaged = dir.path().join("damaged.parquet");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = syllabus(&["inspect", &p(&damaged)]);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("bad rows"), "{}", String::from_utf8_lossy(&o.stdout));
    let out = dir.path().join("o.parquet");
    let args = |policy| {
        [
            "score",
            "dsir",
            "--target",
            "fixtures/target/math.jsonl",
            "--on-bad-record",
            policy,
            "--out",
            out.to_str().unwrap(),
            "-q",
            damaged.to_str().unwrap(),
            "fixtures/target/docs.jsonl",
        ]
        .map(String::from)
    };
    let err = fails(&syllabus(&args("fail").each_ref().map(String::as_str)), 1);
    assert!(
        err.contains("damaged.parquet:row 0") && err.contains("the decoder failed") && !err.contains("panicked"),
        "{err}"
    );
    let err = fails(&syllabus(&args("skip").each_ref().map(String::as_str)), 3);
    assert!(err.contains("rejected") && !err.contains("panicked"), "{err}");
    let o = syllabus(&["sql", &p(&damaged), "-c", "select count(*), max(text) from damaged"]);
    assert!(matches!(o.status.code(), Some(0 | 1)) && !stderr(&o).contains("panicked"), "{o:?}");
}

#[test]
fn an_output_directory_that_is_a_file_is_refused_with_what_it_is() {
    let tmp = tempdir();
    let f = tmp.path().join("taken");
    std::fs::write(&f, "x").unwrap();
    let tok = fixture("tokenizer.json");
    let valid = format!("math={}", fixture("heldout/math.jsonl"));
    let cand = format!("math={}", fixture("lake/math.jsonl.gz"));
    for args in [
        vec!["run", "pipelines/quickstart.toml", "--out", &p(&f)],
        vec!["eval", "--tokenizer", &tok, "--valid", &valid, "--tokens", "1024", "--out", &p(&f), &cand],
    ] {
        let err = fails(&syllabus(&args), 1);
        assert!(err.contains("is a file; this output is a directory") && !err.contains("os error"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&f).unwrap(), b"x", "the file was touched");
}
