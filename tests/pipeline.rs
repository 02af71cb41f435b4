//! `syllabus run`: the quick start and config errors.

use crate::util::*;

#[test]
fn quickstart_runs_and_writes_its_outputs() {
    let dir = tempdir();
    let out = dir.path().join("qs");
    let err = ok(&syllabus(&["run", "pipelines/quickstart.toml", "--out", &p(&out), "-q"]));
    assert!(err.contains("read 1225 rows from 4 files: 1225 kept, 0 rejected; 1040 eligible; 300 selected"), "{err}");
    for f in ["selected.parquet", "scores.parquet", "dsir_model.json", "summary.json", "rejects.jsonl"] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["report"]["selected"], 300);
    let per_file: u64 =
        summary["report"]["selected_per_file"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(per_file, 300);
    // The math domain (the target's) dominates the selection.
    assert!(summary["report"]["selected_per_file"][2].as_u64().unwrap() > 150);
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempdir();
    let cfg = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("pipelines/quickstart.toml"))
        .unwrap()
        .replace("k = 300", "k = 300\nseeed = 4");
    std::fs::write(&cfg, text).unwrap();
    let err = fails(&syllabus(&["run", &p(&cfg), "-q"]), 1);
    assert!(err.contains("seeed"), "{err}");
}

#[test]
fn zipfit_pipeline_runs() {
    let dir = tempdir();
    let out = dir.path().join("z");
    let cfg = dir.path().join("z.toml");
    // The shipped pipeline, in fast mode to keep the test quick.
    let text = std::fs::read_to_string(root().join("pipelines/zipfit.toml"))
        .unwrap()
        .replace("compressor = \"gzip\"\nlevel = 6", "compressor = \"zstd\"\nfast = true");
    std::fs::write(&cfg, text).unwrap();
    let err = ok(&syllabus(&["run", &p(&cfg), "--out", &p(&out), "-q"]));
    assert!(err.contains("zipfit selection") && err.contains("300 selected"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "zipfit");
    assert!(out.join("selected.parquet").exists() && out.join("scores.parquet").exists());
}

#[test]
fn perplexity_reweighted_pipeline_keeps_the_middle_and_reweights() {
    let dir = tempdir();
    let out = dir.path().join("ppl");
    let err = ok(&syllabus(&["run", "pipelines/perplexity_reweighted.toml", "--out", &p(&out), "-q"]));
    assert!(err.contains("proxy selection"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let (eligible, selected) =
        (summary["report"]["eligible"].as_u64().unwrap(), summary["report"]["selected"].as_u64().unwrap());
    assert!((selected as f64 - 0.8 * eligible as f64).abs() <= 1.0, "the band [0.1, 0.9): {selected} of {eligible}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["reweighting"]["strategy"], "linupper");
    assert_eq!(manifest["totals"]["documents"], selected);
    ok(&syllabus(&["verify", &p(&out)]));
    // Window weights average 1 and are not all equal.
    let o = syllabus(&[
        "sql",
        &p(&out),
        "--format",
        "csv",
        "-c",
        "select round(avg(weight), 6) as a, count(distinct weight) > 10 as varied from curriculum",
    ]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().nth(1), Some("1.0,true"));
}

#[test]
fn steered_pipeline_records_its_feedback_for_serve() {
    let dir = tempdir();
    let out = dir.path().join("steered");
    ok(&syllabus(&["run", "pipelines/steered.toml", "--out", &p(&out), "-q"]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["feedback"]["rule"], "dump");
    assert_eq!(manifest["config"]["feedback"]["lag"], 2);
    assert_eq!(manifest["domains"], serde_json::json!(["prose", "code", "math", "docs"]));
    assert_eq!(manifest["ordering"]["method"], "random");
    ok(&syllabus(&["verify", &p(&out)]));
}
