//! `syllabus mix` and `syllabus mix graph` through the CLI.

use std::collections::HashMap;
use std::path::Path;

use crate::util::{fixture, ok, parquet_table, syllabus, syllabus_at, tempdir};

/// A tiny model: 512 predictions a step (8 windows of 64).
const TINY: &[&str] = &["--width", "32", "--layers", "1", "--batch-size", "8", "--valid-tokens", "2048"];

fn domains() -> Vec<String> {
    vec![
        format!("math={}", fixture("lake/math.jsonl.gz")),
        format!("prose={}", fixture("lake/prose.jsonl")),
        format!("code={}", fixture("lake/code.jsonl.zst")),
    ]
}

fn mix(out: &Path, threads: &str, extra: &[&str], failpoint: Option<&str>) -> std::process::Output {
    let (tok, valid, out) =
        (fixture("tokenizer.json"), format!("math={}", fixture("heldout/math.jsonl")), out.display().to_string());
    let doms = domains();
    let mut args = vec!["--threads", threads, "mix", "--tokenizer", &tok, "--valid", &valid, "--tokens", "3072"];
    if !extra.contains(&"--runs") {
        args.extend(["--runs", "8"]);
    }
    args.extend(["--seeds", "2", "--out", &out]);
    for d in &doms {
        args.extend(["--domain", d.as_str()]);
    }
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    syllabus_at(&args, failpoint)
}

fn csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines.map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_string)).collect()).collect()
}

/// The search, its fit and its check: the outputs hold every run, the proposal keeps to the
/// pass cap and is a schedule a pipeline runs; the same run on another thread count, killed
/// part way and resumed, keeps its finished runs and ends with the same bytes.
#[test]
fn mix_searches_fits_proposes_and_checks_and_a_killed_search_resumes_identically() {
    let tmp = tempdir();
    let whole = tmp.path().join("whole");
    let err = ok(&mix(&whole, "1", &[], None));
    assert!(err.contains("3 domains, 8 search runs + 3 mixtures x 2 seeds checked"), "{err}");
    let rows = csv(&whole.join("summary.csv"));
    assert_eq!(
        rows.iter().map(|r| r["mixture"].as_str()).collect::<Vec<_>>(),
        ["proposal", "natural", "uniform"],
        "one row per checked mixture and validation set"
    );
    for r in &rows {
        let shares: f64 =
            ["share_math", "share_prose", "share_code"].iter().map(|c| r[*c].parse::<f64>().unwrap()).sum();
        assert!((shares - 1.0).abs() < 1e-5, "{r:?}");
        assert!(r["loss_mean"].parse::<f64>().unwrap().is_finite() && r["predicted_loss"].parse::<f64>().is_ok());
    }
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(whole.join("mix.json")).unwrap()).unwrap();
    // The proposal keeps to the cap: at most 4 passes over any domain in the budget.
    let tokens: Vec<f64> = j["domain_tokens"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let proposal: Vec<f64> = j["proposal"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    for (w, d) in proposal.iter().zip(&tokens) {
        assert!(w * 3072.0 / d <= 4.0 + 1e-9, "{w} of {d} tokens");
    }
    // The natural mixture is the domains' token shares.
    let total: f64 = tokens.iter().sum();
    let natural = &rows[1];
    assert!((natural["share_math"].parse::<f64>().unwrap() - tokens[0] / total).abs() < 1e-6);
    // Every family was fitted, one chosen, with its cross-validated rank correlation.
    let fit = &j["fits"][0];
    assert_eq!(fit["fits"].as_array().unwrap().len(), 3);
    let rho = fit["fits"][fit["chosen"].as_u64().unwrap() as usize]["loo_spearman"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&rho));
    // runs.parquet: 8 search runs and 3 x 2 checks, one validation set.
    let t = parquet_table(&whole.join("runs.parquet"));
    assert_eq!(t["phase"].iter().filter(|p| *p == "search").count(), 8);
    assert_eq!(t["phase"].iter().filter(|p| *p == "check").count(), 6);
    assert!(t.contains_key("share_code") && t.contains_key("loss"));
    // The plot is there.
    assert!(std::fs::metadata(whole.join("mix.png")).unwrap().len() > 1000);

    // proposal.toml is a [schedule] a pipeline takes as it is.
    let proposal = std::fs::read_to_string(whole.join("proposal.toml")).unwrap();
    let pipe = format!(
        "name = \"p\"\nout_dir = \"{}\"\n[source.domains]\nmath = [\"{}\"]\nprose = [\"{}\"]\ncode = [\"{}\"]\n[order]\nmethod = \"random\"\n{proposal}\n[tokenize]\ntokenizer = \"{}\"\nseq_len = 256\n",
        tmp.path().join("pipe").display(),
        fixture("lake/math.jsonl.gz"),
        fixture("lake/prose.jsonl"),
        fixture("lake/code.jsonl.zst"),
        fixture("tokenizer.json"),
    );
    let pp = tmp.path().join("p.toml");
    std::fs::write(&pp, pipe).unwrap();
    ok(&syllabus(&["run", pp.to_str().unwrap()]));
    assert!(tmp.path().join("pipe/manifest.json").exists());

    // Killed after the fourth search run, on two threads; then resumed.
    let again = tmp.path().join("again");
    let o = mix(&again, "2", &[], Some("mix-search-3.json"));
    assert!(!o.status.success());
    let err = ok(&mix(&again, "2", &[], None));
    assert!(err.contains("(4 kept from an interrupted run)"), "{err}");
    for f in ["summary.csv", "proposal.toml", "runs.parquet", "mix.json"] {
        let (a, b) = (std::fs::read(whole.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap());
        if f == "mix.json" {
            // The same but for the count of kept runs.
            let strip = |x: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(x).unwrap();
                v["resumed_runs"] = 0.into();
                v
            };
            assert_eq!(strip(&a), strip(&b));
        } else {
            assert_eq!(a, b, "{f}");
        }
    }
}

#[test]
fn mix_refuses_what_it_cannot_do_with_a_clear_error() {
    let tmp = tempdir();
    let out = tmp.path().join("m");
    // A budget the domains cannot fill in four passes each.
    let o = mix(&out, "1", &["--budget", "100000000000"], None);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("raise --max-passes or lower --budget"), "{e}");
    let e = String::from_utf8_lossy(&mix(&out, "1", &["--target", "poetry"], None).stderr).to_string();
    assert!(e.contains("--target \"poetry\" is not a validation set (math)"), "{e}");
    let e = String::from_utf8_lossy(&mix(&out, "1", &["--runs", "2"], None).stderr).to_string();
    assert!(e.contains("--runs 2: at least 3"), "{e}");
    // Domains from a pipeline: its [source.domains], or a clear error where it has none.
    let tok = fixture("tokenizer.json");
    let valid = format!("math={}", fixture("heldout/math.jsonl"));
    let run = |pipe: &str| {
        let o = syllabus(&[
            "mix",
            "--pipeline",
            pipe,
            "--tokenizer",
            &tok,
            "--valid",
            &valid,
            "--tokens",
            "1",
            "--budget",
            "100000000000",
            "--out",
            out.to_str().unwrap(),
        ]);
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = run("pipelines/compare.toml");
    assert!(e.contains("no [source.domains] to mix"), "{e}");
    let e = run("pipelines/domain_upsampling.toml");
    assert!(e.contains("raise --max-passes"), "its four domains were read: {e}");
}

/// Skill-It's graph: each domain trained alone; training on a domain helps its own validation
/// set most; the block is what `[feedback]` reads.
#[test]
fn mix_graph_measures_how_each_domain_helps_the_others() {
    let tmp = tempdir();
    let out = tmp.path().join("g");
    let (tok, o) = (fixture("tokenizer.json"), out.display().to_string());
    let (dm, dd) =
        (format!("math={}", fixture("lake/math.jsonl.gz")), format!("docs={}", fixture("lake/docs.parquet")));
    let (vm, vd) =
        (format!("math={}", fixture("heldout/math.jsonl")), format!("docs={}", fixture("target/docs.jsonl")));
    let mut args = vec!["mix", "graph", "--tokenizer", &tok, "--tokens", "3072", "--seeds", "1", "--out", &o];
    args.extend(["--domain", &dm, "--domain", &dd, "--valid", &vm, "--valid", &vd]);
    args.extend_from_slice(TINY);
    let err = ok(&syllabus(&args));
    assert!(err.contains("2 domains x 1 seeds"), "{err}");
    let text = std::fs::read_to_string(out.join("graph.toml")).unwrap();
    #[derive(serde::Deserialize)]
    struct P {
        feedback: syllabus::loader::feedback::FeedbackConfig,
    }
    let p: P = toml::from_str(&text).unwrap();
    let g = p.feedback.graph.clone().unwrap();
    p.feedback.validate(&["math".into(), "docs".into()]).unwrap();
    assert!(g.iter().flatten().all(|x| (0.0..1.0).contains(x)), "{g:?}");
    assert!(g[0][0] > g[0][1] && g[1][1] > g[1][0], "each domain helps itself most: {g:?}");
    // graph.csv: the same numbers, and the unclipped ones.
    let rows = csv(&out.join("graph.csv"));
    assert_eq!(rows[0]["trained_on"], "math");
    assert!((rows[0]["math"].parse::<f64>().unwrap() - g[0][0]).abs() < 1e-6);
    // A domain without its validation set is refused.
    let mut args = vec!["mix", "graph", "--tokenizer", &tok, "--tokens", "3072", "--out", &o];
    args.extend(["--domain", &dm, "--domain", &dd, "--valid", &vm]);
    let e = String::from_utf8_lossy(&syllabus(&args).stderr).to_string();
    assert!(e.contains("no validation set for domain \"docs\""), "{e}");
}

/// Clusters as domains: a cluster table splits the lake, the domains are the cluster numbers,
/// and the proposal's keys are those numbers (what a pipeline with `domain_field = "cluster"`
/// names its domains).
#[test]
fn clusters_are_domains_to_mix() {
    let tmp = tempdir();
    let table = tmp.path().join("clusters.parquet");
    let lake = fixture("lake");
    ok(&syllabus(&[
        "score",
        "cluster",
        "--k",
        "3",
        "--on-bad-record",
        "skip",
        "--out",
        table.to_str().unwrap(),
        &lake,
    ]));
    let out = tmp.path().join("m");
    let (tok, valid) = (fixture("tokenizer.json"), format!("math={}", fixture("heldout/math.jsonl")));
    let mut args = vec!["mix", "--clusters", table.to_str().unwrap(), "--lake", &lake, "--on-bad-record", "skip"];
    args.extend(["--tokenizer", &tok, "--valid", &valid, "--tokens", "2048", "--runs", "4", "--seeds", "1"]);
    let o = out.display().to_string();
    args.extend(["--out", &o]);
    args.extend_from_slice(TINY);
    ok(&syllabus(&args));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("mix.json")).unwrap()).unwrap();
    let names: Vec<&str> = j["domains"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(names.len() >= 2 && names.iter().all(|n| n.parse::<u32>().map_or(*n == "none", |c| c < 3)), "{names:?}");
    // Every lake document is in exactly one domain: the domains' documents add up to the table's rows.
    let docs: u64 = j["inputs"]["domains"].as_array().unwrap().iter().map(|d| d["documents"].as_u64().unwrap()).sum();
    assert_eq!(docs as usize, parquet_table(&table)["id"].len());
    let proposal = std::fs::read_to_string(out.join("proposal.toml")).unwrap();
    let t: toml::Table = toml::from_str(&proposal).unwrap();
    let mixture = t["schedule"]["phases"][0]["mixture"].as_table().unwrap();
    assert_eq!(mixture.keys().map(String::as_str).collect::<Vec<_>>(), names);
    // --clusters without --lake is refused by the parser.
    let e = String::from_utf8_lossy(
        &syllabus(&["mix", "--clusters", "x", "--tokenizer", &tok, "--valid", &valid, "--tokens", "1"]).stderr,
    )
    .to_string();
    assert!(e.contains("--lake"), "{e}");
}
