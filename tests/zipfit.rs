//! ZIP-FIT: the reference's scores (zip-fit 1.0.9, from tests/golden/make_zipfit_golden.py),
//! its top-k, and the fast mode.

use crate::util::*;

/// The golden files use the first 25 rows of the math target set.
fn target_subset(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(root().join("fixtures/target/math.jsonl")).unwrap();
    let rows: Vec<&str> = text.lines().take(25).collect();
    let path = dir.join("target25.jsonl");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    p(&path)
}

fn score(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let target = target_subset(dir);
    let out = dir.join("scores.jsonl");
    let mut all = vec!["score", "zipfit", "-q", "--target", &target];
    all.extend_from_slice(args);
    let out_s = p(&out);
    all.extend_from_slice(&["--out", &out_s, "fixtures/lake"]);
    ok(&syllabus(&all));
    read_jsonl(&out)
}

#[test]
fn scores_match_reference() {
    for (file, args) in [
        ("zipfit_gzip6_scores.jsonl", vec![]),
        ("zipfit_gzip1_scores.jsonl", vec!["--level", "1"]),
        ("zipfit_zstd3_scores.jsonl", vec!["--compressor", "zstd"]),
    ] {
        let dir = tempdir();
        let ours = score(dir.path(), &args);
        let reference = read_jsonl(&golden(file));
        assert_eq!(ours.len(), reference.len());
        let mut worst = 0.0f64;
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a["id"], b["id"]);
            let d = (a["zipfit"].as_f64().unwrap() - b["zipfit"].as_f64().unwrap()).abs();
            worst = worst.max(d);
            assert!(d <= 1e-12, "{file}: {} differs by {d}", a["id"]);
        }
        eprintln!("{file}: worst absolute difference {worst:e}");
    }
}

#[test]
fn top_k_matches_reference() {
    let dir = tempdir();
    let target = target_subset(dir.path());
    let out = dir.path().join("sel.jsonl");
    ok(&syllabus(&["select", "zipfit", "-q", "--target", &target, "--k", "100", "--out", &p(&out), "fixtures/lake"]));
    let reference = read_jsonl(&golden("zipfit_gzip6_scores.jsonl"));
    let mut order: Vec<usize> = (0..reference.len()).collect();
    order.sort_by(|&a, &b| {
        reference[b]["zipfit"].as_f64().unwrap().total_cmp(&reference[a]["zipfit"].as_f64().unwrap()).then(a.cmp(&b))
    });
    let mut want: Vec<usize> = order[..100].to_vec();
    want.sort();
    let want: Vec<String> = want.iter().map(|&i| reference[i]["id"].as_str().unwrap().to_string()).collect();
    let rows = read_jsonl(&out);
    assert_eq!(ids(&rows), want);
    assert!(rows.iter().all(|r| r.get("domain").is_some() && r.get("zipfit").is_some()));
}

#[test]
fn fast_modes_rank_the_target_domain_first() {
    for args in [vec!["--fast"], vec!["--compressor", "zstd", "--fast"]] {
        fast_mode_ranks_like_gzip(&args);
    }
}

fn fast_mode_ranks_like_gzip(args: &[&str]) {
    let dir = tempdir();
    let fast = score(dir.path(), args);
    let exact = read_jsonl(&golden("zipfit_gzip6_scores.jsonl"));
    let top = |rows: &[serde_json::Value]| -> Vec<String> {
        let mut v: Vec<(f64, String)> =
            rows.iter().map(|r| (r["zipfit"].as_f64().unwrap(), r["id"].as_str().unwrap().to_string())).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.into_iter().take(200).map(|x| x.1).collect()
    };
    let share = |ids: &[String]| ids.iter().filter(|i| i.starts_with("math-")).count() as f64 / ids.len() as f64;
    let (f, e) = (share(&top(&fast)), share(&top(&exact)));
    assert!(f > 0.8 && (f - e).abs() < 0.1, "fast {f} exact {e}");
}

#[test]
fn k_larger_than_the_lake_keeps_everything() {
    let dir = tempdir();
    let target = target_subset(dir.path());
    let out = dir.path().join("sel.jsonl");
    ok(&syllabus(&[
        "select",
        "zipfit",
        "-q",
        "--compressor",
        "zstd",
        "--fast",
        "--target",
        &target,
        "--k",
        "5000",
        "--out",
        &p(&out),
        "fixtures/lake/docs.parquet",
    ]));
    assert_eq!(read_jsonl(&out).len(), 269);
}

#[test]
fn bad_settings_are_clear_errors() {
    let err = fails(
        &syllabus(&[
            "score",
            "zipfit",
            "-q",
            "--fast",
            "--compressor",
            "gzip",
            "--target",
            "fixtures/target/math.jsonl",
            "--out",
            "/tmp/never.jsonl",
            "fixtures/lake",
        ]),
        1,
    );
    assert!(err.contains("fast mode uses zstd or lz4"), "{err}");
    let err = fails(
        &syllabus(&[
            "score",
            "zipfit",
            "-q",
            "--level",
            "12",
            "--target",
            "fixtures/target/math.jsonl",
            "--out",
            "/tmp/never.jsonl",
            "fixtures/lake",
        ]),
        1,
    );
    assert!(err.contains("level 12 is out of range"), "{err}");
}

#[test]
fn scores_lie_in_the_unit_interval_and_ignore_thread_count() {
    let dir = tempdir();
    let target = target_subset(dir.path());
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("s{threads}.jsonl"));
        ok(&syllabus(&[
            "score",
            "zipfit",
            "-q",
            "--threads",
            threads,
            "--compressor",
            "zstd",
            "--target",
            &target,
            "--out",
            &p(&out),
            "fixtures/lake",
        ]));
        outs.push(std::fs::read(&out).unwrap());
        for r in read_jsonl(&out) {
            let s = r["zipfit"].as_f64().unwrap();
            // 1 - NCD lies in [0, 1] up to compressor overhead.
            assert!((-0.05..=1.05).contains(&s), "{}: {s}", r["id"]);
        }
    }
    assert!(outs[0] == outs[1]);
}
