//! Curricula: shards, Megatron files, manifest, schedules, orderings, reweighting, resume.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use arrow::array::{Array, Float64Array, StringArray, UInt32Array, UInt64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use syllabus::shard::manifest::Manifest;
use syllabus::shard::{megatron, Shard};

use crate::util::*;

/// One row of `curriculum.parquet`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    position: u64,
    id: String,
    domain: String,
    phase: u32,
    pass: u32,
    tokens: u32,
    score: Option<f64>,
    loss: Option<f64>,
    weight: f64,
}

fn curriculum_rows(dir: &Path) -> Vec<Row> {
    let f = std::fs::File::open(dir.join("curriculum.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let mut rows = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let col = |n: &str| b.column(b.schema().index_of(n).unwrap()).clone();
        let pos = col("position");
        let pos = pos.as_any().downcast_ref::<UInt64Array>().unwrap();
        let id = col("id");
        let id = id.as_any().downcast_ref::<StringArray>().unwrap();
        let dom = col("domain");
        let dom = dom.as_any().downcast_ref::<StringArray>().unwrap();
        let phase = col("phase");
        let phase = phase.as_any().downcast_ref::<UInt32Array>().unwrap();
        let pass = col("pass");
        let pass = pass.as_any().downcast_ref::<UInt32Array>().unwrap();
        let tokens = col("tokens");
        let tokens = tokens.as_any().downcast_ref::<UInt32Array>().unwrap();
        let score = col("score");
        let score = score.as_any().downcast_ref::<Float64Array>().unwrap();
        let loss = col("loss");
        let loss = loss.as_any().downcast_ref::<Float64Array>().unwrap();
        let weight = col("weight");
        let weight = weight.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push(Row {
                position: pos.value(i),
                id: id.value(i).to_string(),
                domain: dom.value(i).to_string(),
                phase: phase.value(i),
                pass: pass.value(i),
                tokens: tokens.value(i),
                score: score.is_valid(i).then(|| score.value(i)),
                loss: loss.is_valid(i).then(|| loss.value(i)),
                weight: weight.value(i),
            });
        }
    }
    rows
}

fn run_pipeline(name: &str, out: &Path, extra: &[&str]) -> String {
    let cfg = format!("pipelines/{name}.toml");
    let mut args = vec!["run", cfg.as_str(), "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    ok(&syllabus(&args))
}

/// Every file under `dir` but the work directory, by relative path.
fn output_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel == "work" {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[track_caller]
fn assert_same_outputs(a: &Path, b: &Path) {
    let (fa, fb) = (output_files(a), output_files(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(v == &fb[k], "{k} differs");
    }
}

#[test]
fn quickstart_writes_a_curriculum_that_verifies() {
    let dir = tempdir();
    let out = dir.path().join("qs");
    let err = run_pipeline("quickstart", &out, &[]);
    assert!(err.contains("curriculum of 300 documents"), "{err}");
    let m = Manifest::load(&out).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for key in ["config", "config_hash", "seed", "tokenizer_hash", "ordering", "phases", "shards"] {
        assert!(raw.get(key).is_some(), "manifest has no {key}");
    }
    for key in ["start_token", "end_token", "mixture", "tokens", "documents", "passes"] {
        assert!(raw["phases"][0].get(key).is_some(), "phase has no {key}");
    }
    for key in ["path", "format", "bytes", "tokens", "sequences", "checksum"] {
        assert!(raw["shards"][0].get(key).is_some(), "shard has no {key}");
    }
    assert_eq!(m.domains, vec!["prose", "code", "math", "docs"]);
    assert_eq!(m.ordering.method, "ascending");
    assert_eq!(m.token_dtype, "u16");
    assert_eq!(m.totals.documents, 300);
    let verified = ok(&syllabus(&["verify", &p(&out)]));
    assert!(verified.contains("all good"), "{verified}");

    // The curriculum table: ascending by DSIR weight within each domain, 300 documents.
    let rows = curriculum_rows(&out);
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().enumerate().all(|(i, r)| r.position == i as u64 && r.weight == 1.0));
    for d in &m.domains {
        let s: Vec<f64> = rows.iter().filter(|r| &r.domain == d).map(|r| r.score.unwrap()).collect();
        assert!(s.windows(2).all(|w| w[0] <= w[1]), "{d} is not ascending");
    }
    let tokens: u64 = rows.iter().map(|r| r.tokens as u64).sum();
    assert_eq!(tokens, m.totals.tokens);
}

#[test]
fn shards_hold_each_document_tokenized_in_curriculum_order() {
    let dir = tempdir();
    let out = dir.path().join("qs");
    run_pipeline("quickstart", &out, &[]);
    let m = Manifest::load(&out).unwrap();
    let tok = syllabus::tokenize::Tok::load(&root().join("fixtures/tokenizer.json")).unwrap();
    // Rebuild each document from its pieces, in both formats.
    let mut docs: Vec<Vec<u32>> = Vec::new();
    let mut megatron_stream: Vec<u32> = Vec::new();
    let mut seqs = 0u64;
    for e in &m.shards {
        let bytes = std::fs::read(out.join(&e.path)).unwrap();
        match e.format.as_str() {
            "syllabus" => {
                let s = Shard::decode(&bytes).unwrap();
                assert_eq!(s.first_seq, seqs);
                seqs += s.seqs.len() as u64;
                for (piece, toks) in s.docs.iter().zip(s.doc_token_stream()) {
                    if piece.doc as usize == docs.len() {
                        docs.push(Vec::new());
                    }
                    assert_eq!(piece.doc as usize, docs.len() - 1, "pieces come in document order");
                    docs.last_mut().unwrap().extend_from_slice(toks);
                }
            }
            "megatron" => {
                let idx = std::fs::read(out.join(&e.index.as_ref().unwrap().path)).unwrap();
                let ix = megatron::decode(&bytes, &idx).unwrap();
                assert_eq!(ix.dtype_code, megatron::DTYPE_UINT16);
                assert_eq!(ix.document_indices.len(), ix.lengths.len() + 1);
                megatron_stream.extend(ix.sequences.iter().flatten());
            }
            f => panic!("unexpected format {f}"),
        }
    }
    assert_eq!(docs.concat(), megatron_stream, "Megatron files reproduce the token stream");
    // Each document is its text, tokenized, plus the end-of-document token.
    let rows = curriculum_rows(&out);
    let selected = read_parquet_texts(&out.join("selected.parquet"));
    for (row, toks) in rows.iter().zip(&docs).step_by(7) {
        let text = &selected[&row.id];
        let mut expect = tok.encode(text).unwrap();
        expect.push(m.eos_id);
        assert_eq!(toks, &expect, "document {}", row.id);
        assert_eq!(&tok.decode(&toks[..toks.len() - 1]).unwrap(), text);
    }
}

fn read_parquet_texts(path: &Path) -> BTreeMap<String, String> {
    let f = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let mut out = BTreeMap::new();
    for b in reader {
        let b = b.unwrap();
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap().clone();
        let texts = b.column(1).as_any().downcast_ref::<StringArray>().unwrap().clone();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), texts.value(i).to_string());
        }
    }
    out
}

#[test]
fn same_bytes_for_any_thread_count() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("t1"), dir.path().join("t2"));
    run_pipeline("domain_upsampling", &a, &["--threads", "1"]);
    run_pipeline("domain_upsampling", &b, &["--threads", "2"]);
    assert_same_outputs(&a, &b);
}

#[test]
fn domain_upsampling_follows_the_schedule_within_one_document() {
    let dir = tempdir();
    let out = dir.path().join("up");
    run_pipeline("domain_upsampling", &out, &[]);
    let m = Manifest::load(&out).unwrap();
    assert_eq!(m.phases.len(), 2);
    assert_eq!((m.phases[0].end_token, m.phases[1].start_token, m.phases[1].end_token), (800_000, 800_000, 1_000_000));
    let rows = curriculum_rows(&out);
    let longest: BTreeMap<&str, u64> = m
        .domains
        .iter()
        .map(|d| (d.as_str(), rows.iter().filter(|r| &r.domain == d).map(|r| r.tokens as u64).max().unwrap()))
        .collect();
    for (i, phase) in m.phases.iter().enumerate() {
        let total: u64 = phase.tokens.values().sum();
        for (d, &share) in &phase.mixture {
            let got = phase.tokens[d] as f64;
            let dev = (got - share * total as f64).abs();
            assert!(
                dev <= longest[d.as_str()] as f64,
                "phase {i} {d}: {got} tokens, {share} of {total} (off by {dev})"
            );
        }
        // The table agrees with the manifest.
        let from_rows: u64 = rows.iter().filter(|r| r.phase == i as u32).map(|r| r.tokens as u64).sum();
        assert_eq!(from_rows, total);
    }
    // Prose and docs run out and are shuffled again for a second pass; math does not.
    let last = m.phases.last().unwrap();
    assert_eq!((last.passes["prose"], last.passes["docs"], last.passes["math"]), (2, 2, 1));
    let prose_first: Vec<&str> =
        rows.iter().filter(|r| r.domain == "prose" && r.pass == 0).map(|r| r.id.as_str()).collect();
    let prose_second: Vec<&str> =
        rows.iter().filter(|r| r.domain == "prose" && r.pass == 1).map(|r| r.id.as_str()).collect();
    assert_eq!(prose_first.len(), 346, "the first pass has every prose document once");
    assert_ne!(prose_first[..prose_second.len()], prose_second[..], "the second pass is reshuffled");
}

#[test]
fn folding_orders_each_domain_in_l_passes() {
    let dir = tempdir();
    let out = dir.path().join("fold");
    run_pipeline("folding", &out, &[]);
    let m = Manifest::load(&out).unwrap();
    assert_eq!((m.ordering.method.as_str(), m.ordering.passes), ("folding", Some(3)));
    let rows = curriculum_rows(&out);
    assert_eq!(rows.len(), 600);
    for d in &m.domains {
        let got: Vec<f64> = rows.iter().filter(|r| &r.domain == d).map(|r| r.score.unwrap()).collect();
        let mut sorted = got.clone();
        sorted.sort_by(f64::total_cmp);
        let expect: Vec<f64> = (0..3).flat_map(|l| sorted.iter().skip(l).step_by(3).copied()).collect();
        assert_eq!(got, expect, "domain {d}");
    }
}

/// A small table with a loss column, for reweighting and padding.
fn loss_table(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("table.jsonl");
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
    let mut text = String::new();
    for i in 0..40 {
        let body: Vec<&str> = (0..(3 + i % 11)).map(|j| words[(i * 7 + j) % words.len()]).collect();
        let domain = if i % 3 == 0 { "b" } else { "a" };
        let loss = 1.0 + ((i * 37) % 17) as f64 / 4.0;
        text.push_str(
            &serde_json::json!({"id": format!("d{i}"), "text": body.join(" "), "domain": domain, "loss": loss})
                .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reweighting_writes_window_weights_into_table_and_shards() {
    let dir = tempdir();
    let table = loss_table(dir.path());
    let out = dir.path().join("rw");
    ok(&syllabus(&[
        "curriculum",
        "--tokenizer",
        "fixtures/tokenizer.json",
        "--seq-len",
        "16",
        "--domain-field",
        "domain",
        "--reweight-by",
        "loss",
        "--strategy",
        "linupper",
        "--temperature",
        "1",
        "--window",
        "8",
        "--shard-tokens",
        "64",
        "--out",
        &p(&out),
        "-q",
        &p(&table),
    ]));
    let rows = curriculum_rows(&out);
    assert_eq!(rows.len(), 40);
    for w in rows.chunks(8) {
        // Weights are the paper's (positive, summing to one per window) times the window size.
        let losses: Vec<f64> = w.iter().map(|r| r.loss.unwrap()).collect();
        let expect =
            syllabus::curriculum::reweight::window_weights(&losses, syllabus::curriculum::Strategy::Linupper, 1.0);
        for (r, e) in w.iter().zip(expect) {
            assert!((r.weight - e * w.len() as f64).abs() < 1e-12);
        }
        let easiest = w.iter().min_by(|a, b| a.loss.unwrap().total_cmp(&b.loss.unwrap())).unwrap();
        assert!(w.iter().all(|r| r.weight >= easiest.weight), "LinUpper down-weights the easiest");
    }
    // Each shard's pieces carry their document's weight; sequences the token-weighted mean.
    let m = Manifest::load(&out).unwrap();
    assert_eq!(m.domains, vec!["a", "b"]);
    let mut pieces = Vec::new();
    for e in &m.shards {
        let s = Shard::decode(&std::fs::read(out.join(&e.path)).unwrap()).unwrap();
        for (i, meta) in s.seqs.iter().enumerate() {
            let (lo, hi) = (i as u64 * 16, (i as u64 + 1) * 16);
            let (mut wsum, mut n) = (0.0f64, 0u64);
            for d in &s.docs {
                let overlap = (d.start + d.len as u64).min(hi).saturating_sub(d.start.max(lo));
                wsum += d.weight as f64 * overlap as f64;
                n += overlap;
            }
            assert!((meta.weight as f64 - wsum / n as f64).abs() < 1e-5);
        }
        pieces.extend(s.docs.iter().map(|d| (d.doc, d.weight)));
    }
    for r in &rows {
        let w = pieces.iter().find(|(d, _)| *d == r.position).unwrap().1;
        assert_eq!(w, r.weight as f32);
    }
}

#[test]
fn padded_packing_starts_every_document_on_a_sequence() {
    let dir = tempdir();
    let table = loss_table(dir.path());
    let out = dir.path().join("pad");
    ok(&syllabus(&[
        "curriculum",
        "--tokenizer",
        "fixtures/tokenizer.json",
        "--seq-len",
        "8",
        "--packing",
        "pad",
        "--format",
        "syllabus,megatron",
        "--order",
        "descending",
        "--by",
        "loss",
        "--out",
        &p(&out),
        "-q",
        &p(&table),
    ]));
    let m = Manifest::load(&out).unwrap();
    assert_eq!(m.packing, "pad");
    let s = Shard::decode(&std::fs::read(out.join(&m.shards[0].path)).unwrap()).unwrap();
    assert!(s.docs.iter().all(|d| d.start % 8 == 0));
    assert!(m.totals.padding_tokens > 0);
    let rows = curriculum_rows(&out);
    assert!(rows.windows(2).all(|w| w[0].loss >= w[1].loss), "descending by loss");
    ok(&syllabus(&["verify", &p(&out)]));
}

#[test]
fn resumes_after_a_crash_at_any_stage_with_identical_bytes() {
    let dir = tempdir();
    let clean = dir.path().join("clean");
    run_pipeline("quickstart", &clean, &[]);
    // fit-file-2 and scored-file-1: inside the select stage, which resumes at the file it was on.
    for point in [
        "fit-file-2",
        "scored-file-1",
        "selected",
        "prepare-batch-1",
        "prepared",
        "shard-1",
        "shard-5",
        "before-manifest",
    ] {
        let out = dir.path().join(point);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_syllabus"));
        cmd.args(["run", "pipelines/quickstart.toml", "--out", &p(&out), "-q"])
            .current_dir(root())
            .env("SYLLABUS_FAILPOINT", point);
        let crashed = cmd.output().unwrap();
        assert!(!crashed.status.success(), "{point}: the run should have aborted");
        assert!(!out.join("manifest.json").exists(), "{point}: no manifest before the end");
        run_pipeline("quickstart", &out, &[]);
        assert_same_outputs(&clean, &out);
        assert!(!out.join("work/select").exists(), "{point}: the select stage's work is removed when it is done");
    }
}

/// Files' inodes: a file rewritten by a resumed run (temporary file, then rename) has a new one.
fn inodes(paths: &[std::path::PathBuf]) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    paths.iter().map(|p| std::fs::metadata(p).unwrap().ino()).collect()
}

#[test]
fn resumes_after_kill_9_keeping_finished_work_with_identical_bytes() {
    let dir = tempdir();
    let clean = dir.path().join("clean");
    run_pipeline("domain_upsampling", &clean, &["--threads", "1"]);
    // Kill when the run has provably done some work and not all of it: once the prepare stage's
    // marker is written, and once a few shards are in the journal.
    let journal_lines =
        |out: &Path| std::fs::read_to_string(out.join("work/shards.journal")).map(|t| t.lines().count()).unwrap_or(0);
    let prepared = |out: &Path| out.join("work/prepare.json").exists();
    type Reached<'a> = &'a dyn Fn(&Path) -> bool;
    let points: [(&str, Reached); 2] =
        [("after prepare", &prepared), ("after 3 shards", &|o: &Path| journal_lines(o) >= 3)];
    for (i, (what, reached)) in points.into_iter().enumerate() {
        let out = dir.path().join(format!("killed-{i}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_syllabus"))
            .args(["run", "pipelines/domain_upsampling.toml", "--out", &p(&out), "-q", "--threads", "1"])
            .current_dir(root())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !reached(&out) {
            assert!(std::time::Instant::now() < deadline, "{what}: never reached");
            assert!(child.try_wait().unwrap().is_none(), "{what}: the run ended before the point");
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert!(!out.join("manifest.json").exists(), "{what}: the kill landed after the end");
        // What was finished when the kill landed.
        let marker = out.join("work/prepare.json");
        let shards: Vec<std::path::PathBuf> = std::fs::read_to_string(out.join("work/shards.journal"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| out.join(e["path"].as_str().unwrap()))
            .collect();
        assert!(marker.exists());
        let before = inodes(&[vec![marker.clone()], shards.clone()].concat());
        run_pipeline("domain_upsampling", &out, &["--threads", "2"]);
        assert_eq!(
            inodes(&[vec![marker], shards.clone()].concat()),
            before,
            "{what}: the resumed run redid finished work (prepare, or {} journaled shards)",
            shards.len()
        );
        assert_same_outputs(&clean, &out);
    }
}

/// The curriculum command over a lake of every format in checkpoint-sized batches.
fn checkpointed_lake(dir: &Path) -> (std::path::PathBuf, impl Fn(&Path, Option<&str>) -> Output) {
    let lake = mixed_lake(dir);
    let lake2 = lake.clone();
    let run = move |out: &Path, failpoint: Option<&str>| {
        let args = [
            "curriculum",
            "-q",
            "--tokenizer",
            "fixtures/tokenizer.json",
            "--seq-len",
            "64",
            "--order",
            "random",
            "--format",
            "syllabus,megatron",
            "--checkpoint-mb",
            "0.1",
            "--batch-rows",
            "40",
            "--on-bad-record",
            "skip",
            "--rejects",
            &p(&out.join("rejects.jsonl")),
            "--out",
            &p(out),
            &p(&lake2),
        ];
        syllabus_at(&args, failpoint)
    };
    (lake, run)
}

#[test]
fn prepare_resumes_at_its_last_checkpoint_with_identical_bytes() {
    let dir = tempdir();
    let (_, run) = checkpointed_lake(dir.path());
    let clean = dir.path().join("clean");
    // Exit status 3: finished, with bad records skipped.
    fails(&run(&clean, None), 3);
    let clean_rejects = std::fs::read(clean.join("rejects.jsonl")).unwrap();
    assert_eq!(clean_rejects.iter().filter(|&&b| b == b'\n').count(), 6);
    // Checkpoints 3, 6, 10 and 20 fall in the zstd, Parquet, gzip (after the rejects of the
    // file before) and plain files: files 0, 1, 3 and 4.
    for (k, file) in [(3, 0), (6, 1), (10, 3), (20, 4)] {
        let out = dir.path().join(format!("killed-{k}"));
        let crashed = run(&out, Some(&format!("prepare-checkpoint-{k}")));
        assert!(!crashed.status.success(), "checkpoint {k}: the run should have aborted");
        let ck: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("work/prepare.checkpoint.json")).unwrap()).unwrap();
        assert_eq!(ck["point"]["file"], file, "checkpoint {k}: {ck}");
        let done = ck["state"]["read"].as_u64().unwrap();
        assert!(done > 0 && !out.join("work/prepare.json").exists());
        // Mark the first token the killed run wrote: a resumed run that tokenized again from the
        // start would overwrite it. (A copy keeps the real bytes for the comparison.)
        let marked = dir.path().join(format!("marked-{k}"));
        copy_dir(&out, &marked);
        let tokens = marked.join("work/tokens.bin");
        let mut bytes = std::fs::read(&tokens).unwrap();
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&tokens, &bytes).unwrap();

        fails(&run(&out, None), 3);
        let prepared: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("work/prepare.json")).unwrap()).unwrap();
        assert_eq!(prepared["resumed_from"], done, "checkpoint {k}: resumed at its checkpoint");
        assert!(!out.join("work/prepare.checkpoint.json").exists());
        assert_same_outputs(&clean, &out);
        assert_eq!(std::fs::read(out.join("rejects.jsonl")).unwrap(), clean_rejects, "checkpoint {k}: rejects");

        // The marked copy resumes without rewriting what its checkpoint covers.
        let _ = run(&marked, None);
        let after = std::fs::read(&tokens).unwrap();
        assert_eq!(after[..4], u32::MAX.to_le_bytes(), "checkpoint {k}: the finished tokens were redone");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn verify_names_a_damaged_shard() {
    let dir = tempdir();
    let out = dir.path().join("qs");
    run_pipeline("quickstart", &out, &[]);
    let shard = out.join("shards/shard-00003.syl");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&shard, &bytes).unwrap();
    let idx = out.join("megatron/part-00001.idx");
    let short = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &short[..short.len() - 3]).unwrap();
    let err = fails(&syllabus(&["verify", &p(&out)]), 1);
    assert!(err.contains("shards/shard-00003.syl") && err.contains("checksum"), "{err}");
    assert!(err.contains("megatron/part-00001.idx") && err.contains("truncated"), "{err}");
}

#[test]
fn curriculum_config_errors_name_the_key() {
    let dir = tempdir();
    let base = std::fs::read_to_string(root().join("pipelines/domain_upsampling.toml")).unwrap();
    let cases = [
        ("prose = 0.40, code = 0.35", "prose = 0.50, code = 0.35", "schedule.phases[0].mixture"),
        ("prose = 0.10, code = 0.20", "prosa = 0.10, code = 0.20", "\"prosa\" is not a domain"),
        ("method = \"random\"", "method = \"ascending\"", "order.by"),
        ("seq_len = 512", "seq_len = 0", "tokenize.seq_len"),
        ("seq_len = 512", "seq_len = 512\npaking = \"pad\"", "paking"),
        ("start = 0.8", "start = 1.5", "schedule.phases[1].start"),
        ("[tokenize]\ntokenizer = \"fixtures/tokenizer.json\"\nseq_len = 512\n", "", "needs a [tokenize] stage"),
    ];
    for (from, to, expect) in cases {
        assert!(base.contains(from), "{from}");
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, base.replace(from, to)).unwrap();
        let err = fails(&syllabus(&["run", &p(&cfg), "--out", &p(&dir.path().join("o")), "-q"]), 1);
        assert!(err.contains(expect), "{expect}: {err}");
    }
}

#[test]
fn bad_records_name_the_line_or_are_counted_and_reconciled() {
    let dir = tempdir();
    let table = dir.path().join("t.jsonl");
    std::fs::write(&table, "{\"id\":\"a\",\"text\":\"hello world\",\"loss\":1}\n{\"id\":\"b\",\"text\":\"\",\"loss\":2}\nnot json\n{\"id\":\"c\",\"text\":\"x\",\"loss\":\"oops\"}\n").unwrap();
    let base = ["curriculum", "--tokenizer", "fixtures/tokenizer.json", "--seq-len", "8", "-q"];
    let out = dir.path().join("o");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--out", out.to_str().unwrap(), table.to_str().unwrap()]);
    let err = fails(&syllabus(&args), 1);
    assert!(err.contains("t.jsonl:line 3") && err.contains("malformed JSON"), "{err}");
    // Skipped: exit 3, and the manifest reconciles read = documents + empty, plus the reject.
    let rejects = dir.path().join("rejects.jsonl");
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--on-bad-record",
        "skip",
        "--rejects",
        rejects.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        table.to_str().unwrap(),
    ]);
    fails(&syllabus(&args), 3);
    let m = Manifest::load(&out).unwrap();
    assert_eq!((m.totals.read, m.totals.empty, m.totals.rejected, m.totals.documents), (3, 1, 1, 2));
    assert_eq!(read_jsonl(&rejects).len(), 1);
    // A loss column that is not a number is an error naming the line.
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--on-bad-record",
        "skip",
        "--reweight-by",
        "loss",
        "--out",
        out.to_str().unwrap(),
        table.to_str().unwrap(),
    ]);
    let err = fails(&syllabus(&args), 1);
    assert!(err.contains("t.jsonl:line 4") && err.contains("\"oops\""), "{err}");
}
