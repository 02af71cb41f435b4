//! Same inputs and seed give byte-identical outputs, whatever the thread count and batch size;
//! a saved model scores files separately exactly as one run does.

use crate::util::*;

fn run_select(dir: &std::path::Path, tag: &str, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let out = dir.join(format!("{tag}.parquet"));
    let scores = dir.join(format!("{tag}.scores.parquet"));
    let mut args = vec!["select", "dsir", "-q", "--target", "fixtures/target/math.jsonl", "--k", "200", "--seed", "3"];
    let (o, s) = (p(&out), p(&scores));
    args.extend_from_slice(&["--out", &o, "--scores-out", &s]);
    args.extend_from_slice(extra);
    args.push("fixtures/lake");
    ok(&syllabus(&args));
    (std::fs::read(out).unwrap(), std::fs::read(scores).unwrap())
}

#[test]
fn identical_bytes_for_any_thread_count_and_batch_size() {
    let dir = tempdir();
    let one = run_select(dir.path(), "t1", &["--threads", "1"]);
    let two = run_select(dir.path(), "t2", &["--threads", "2"]);
    let four = run_select(dir.path(), "t4", &["--threads", "4", "--batch-rows", "7"]);
    assert!(one == two, "1 vs 2 threads differ");
    assert!(one == four, "1 vs 4 threads with small batches differ");
}

#[test]
fn saved_model_scores_files_separately_as_one_run() {
    let dir = tempdir();
    let model = dir.path().join("model.json");
    let whole = dir.path().join("whole.jsonl");
    ok(&syllabus(&[
        "score",
        "dsir",
        "-q",
        "--target",
        "fixtures/target/math.jsonl",
        "--save-model",
        &p(&model),
        "--out",
        &p(&whole),
        "fixtures/lake",
    ]));
    let mut parts = Vec::new();
    for f in ["code.jsonl.zst", "docs.parquet", "math.jsonl.gz", "prose.jsonl"] {
        let out = dir.path().join(format!("{f}.jsonl"));
        ok(&syllabus(&[
            "score",
            "dsir",
            "-q",
            "--model",
            &p(&model),
            "--out",
            &p(&out),
            &fixture(&format!("lake/{f}")),
        ]));
        parts.extend(read_jsonl(&out));
    }
    assert_eq!(parts, read_jsonl(&whole));
}

#[test]
fn fit_all_counts_everything() {
    // The fixtures are far below the reference's budget, so --fit-all gives the same weights.
    let dir = tempdir();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    ok(&syllabus(&["score", "dsir", "-q", "--target", "fixtures/target/math.jsonl", "--out", &p(&a), "fixtures/lake"]));
    ok(&syllabus(&[
        "score",
        "dsir",
        "-q",
        "--target",
        "fixtures/target/math.jsonl",
        "--fit-all",
        "--out",
        &p(&b),
        "fixtures/lake",
    ]));
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn feature_cache_never_changes_a_result() {
    // 0: no cache; 1 MiB: part of the fixture lake; default: all of it.
    let dir = tempdir();
    let mut outs = Vec::new();
    for mb in ["0", "1", "256"] {
        let out = dir.path().join(format!("s{mb}.jsonl"));
        ok(&syllabus(&[
            "score",
            "dsir",
            "-q",
            "--feature-cache-mb",
            mb,
            "--target",
            "fixtures/target/math.jsonl",
            "--out",
            &p(&out),
            "fixtures/lake",
        ]));
        outs.push(std::fs::read(out).unwrap());
    }
    assert!(outs[0] == outs[1] && outs[0] == outs[2]);
}

/// When DSIR's fit kept the whole lake's features and rejected nothing, the scoring pass does
/// not read the lake again (the `score-reads-lake` crash point is never reached), and the
/// selection, the scores and the summary are the ones a pass over the lake gives; so for
/// Moore-Lewis, which is DSIR's fit per word. With a bad record (the rejects are the scoring
/// pass's to write) or no feature cache, it reads the lake.
#[test]
fn a_fit_that_kept_the_whole_lake_is_not_read_again() {
    let dir = tempdir();
    for (method, draw) in [("dsir", &["--seed", "1"][..]), ("moorelewis", &[])] {
        let select = |tag: &str, lake: &str, extra: &[&str], failpoint: Option<&str>| {
            let tag = format!("{method}-{tag}");
            let (out, scores) =
                (dir.path().join(format!("{tag}.parquet")), dir.path().join(format!("{tag}.scores.parquet")));
            let (o, s) = (p(&out), p(&scores));
            let mut args = vec!["select", method, "--target", "fixtures/target/math.jsonl", "--k", "100"];
            args.extend_from_slice(draw);
            args.extend_from_slice(&["--on-bad-record", "skip", "--out", &o, "--scores-out", &s]);
            args.extend_from_slice(extra);
            args.push(lake);
            let r = syllabus_at(&args, failpoint);
            let files = r.status.success().then(|| (std::fs::read(&out).unwrap(), std::fs::read(&scores).unwrap()));
            (r, files)
        };
        let lake = fixture("lake");
        let (r, kept) = select("kept", &lake, &[], Some("score-reads-lake"));
        assert!(r.status.success(), "{method}: the lake was read again: {}", String::from_utf8_lossy(&r.stderr));
        let (r, read) = select("read", &lake, &["--feature-cache-mb", "0"], None);
        assert!(kept.is_some() && kept == read, "{method}: the kept lake changed the selection or the scores");
        // The same counts per file (the summary less its output path and its time).
        let summary = |r: &std::process::Output| {
            let text = String::from_utf8_lossy(&r.stderr).into_owned();
            text.lines()
                .skip(1)
                .map(|l| l.rsplit_once("; ").filter(|(_, t)| t.ends_with(" s")).map_or(l, |(c, _)| c).to_owned())
                .collect::<Vec<_>>()
        };
        let (kept_run, _) = select("kept2", &lake, &[], None);
        assert_eq!(summary(&kept_run), summary(&r), "{method}");
        assert!(summary(&r)[0].contains("1225 kept, 0 rejected"), "{method}: {:?}", summary(&r));
        // Without the cache, or with a rejected record, the pass reads the lake.
        let (r, _) = select("nocache", &lake, &["--feature-cache-mb", "0"], Some("score-reads-lake"));
        assert!(!r.status.success(), "{method}");
        let mixed = mixed_lake(&dir.path().join(method));
        let (r, _) = select("mixed", &p(&mixed), &[], Some("score-reads-lake"));
        assert!(!r.status.success(), "{method}");
        assert!(String::from_utf8_lossy(&r.stderr).contains("failpoint score-reads-lake"));
    }
}

/// Every ZIP-FIT mode scores a document the same whatever the thread count, the batch size
/// and the documents scored before it (lz4's fast mode once kept compressor state across
/// documents, so a file's scores changed with the files before it).
#[test]
fn zipfit_modes_give_identical_scores_for_any_threads_batches_and_history() {
    let dir = tempdir();
    for mode in [&["--fast"][..], &["--fast", "--compressor", "zstd"], &["--compressor", "zstd"]] {
        let score = |tag: &str, extra: &[&str], input: &str| {
            let out = dir.path().join(format!("{tag}.jsonl"));
            let mut args = vec!["score", "zipfit", "-q", "--target", "fixtures/target/math.jsonl", "--out"];
            let o = p(&out);
            args.push(&o);
            args.extend_from_slice(mode);
            args.extend_from_slice(extra);
            args.push(input);
            ok(&syllabus(&args));
            read_jsonl(&out)
        };
        let whole = score("whole", &["--threads", "2"], "fixtures/lake");
        assert_eq!(whole, score("one", &["--threads", "1", "--batch-rows", "7"], "fixtures/lake"), "{mode:?}: threads");
        let alone = score("alone", &["--threads", "2"], &fixture("lake/prose.jsonl"));
        assert_eq!(
            whole[whole.len() - alone.len()..],
            alone[..],
            "{mode:?}: a file's scores depend on the files before it"
        );
    }
}

/// The write pass reads a plain jsonl file in pieces on the pool (each from where one of the
/// scoring pass's batches began) and other files in order: either way it writes the same
/// bytes, whatever the batch size, and bad or blank lines between the chosen ones.
#[test]
fn the_write_pass_writes_the_same_bytes_reading_in_pieces_or_in_order() {
    let dir = tempdir();
    let plain = mixed_lake(&dir.path().join("plain"));
    let gz = mixed_lake(&dir.path().join("gz"));
    // prose.jsonl with blank lines and a bad line between records, plain in one lake and
    // gzipped in the other.
    let body = std::fs::read(gz.join("prose.jsonl")).unwrap();
    let line_end = |from: usize| body.iter().skip(from).position(|&b| b == b'\n').unwrap() + from + 1;
    let (a, b) = (line_end(body.len() / 3), line_end(2 * body.len() / 3));
    let body = [&body[..a], b"\n \n", &body[a..b], b"{\"text\": 3}\n", &body[b..]].concat();
    std::fs::write(plain.join("prose.jsonl"), &body).unwrap();
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(gz.join("prose.jsonl.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut e, &body).unwrap();
    e.finish().unwrap();
    std::fs::remove_file(gz.join("prose.jsonl")).unwrap();
    let select = |lake: &std::path::Path, tag: &str, extra: &[&str], failpoint: Option<&str>| {
        let out = dir.path().join(format!("{tag}.parquet"));
        let o = p(&out);
        let mut args = vec!["select", "dsir", "--target", "fixtures/target/math.jsonl", "--seed", "2"];
        args.extend_from_slice(&["--on-bad-record", "skip", "--out", &o]);
        args.extend_from_slice(extra);
        let l = p(lake);
        args.push(&l);
        let r = syllabus_at(&args, failpoint);
        // Exit code 3: records were skipped; None: the failpoint aborted the run.
        assert!(r.status.code().is_none_or(|c| c == 3), "{tag}: {}", String::from_utf8_lossy(&r.stderr));
        (r.status.code().is_some(), std::fs::read(&out).ok())
    };
    // Files: code.jsonl.zst, docs.parquet, e-bad.jsonl, math.jsonl.gz, prose.jsonl (4).
    let k = ["--k", "300"];
    let (finished, pieces) = select(&plain, "p4", &k, Some("write-in-order-4"));
    assert!(finished, "a plain jsonl file was read in order");
    let (finished, _) = select(&gz, "g4", &k, Some("write-in-order-4"));
    assert!(!finished, "the gzipped file was not read in order");
    let (_, in_order) = select(&gz, "g", &k, None);
    assert!(pieces.is_some() && pieces == in_order, "pieces and order wrote different bytes");
    for (tag, extra) in
        [("b5", &["--k", "300", "--batch-rows", "5", "--threads", "2"][..]), ("t1", &["--k", "300", "--threads", "1"])]
    {
        let (_, a) = select(&plain, &format!("p-{tag}"), extra, None);
        let (_, b) = select(&gz, &format!("g-{tag}"), extra, None);
        assert!(a.is_some() && a == b && a == pieces, "{tag}: the bytes changed");
    }
    // More than 1,024 rows chosen, read in batches larger than that: the rows written are
    // slices of the batches read (which keep their sources' null bitmaps), yet the bytes stay.
    let big = ["--k", "1030", "--batch-rows", "3000", "--threads", "2"];
    let (_, a) = select(&plain, "p-big", &big, None);
    let (_, b) = select(&gz, "g-big", &big, None);
    assert!(a.is_some() && a == b, "more than a batch: the bytes changed");
}
