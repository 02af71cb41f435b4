//! Proxy-model scores (EL2N, GraNd, loss) and selecting by any score column, through the CLI.

use std::collections::HashMap;
use std::path::Path;

use crate::util::*;

const DIGITS: &str = "fixtures/digits/train.parquet";
const MLP: &[&str] = &["--proxy", "mlp", "--features", "pixels", "--label", "label", "--epochs", "2", "--seeds", "2"];

fn floats(t: &HashMap<String, Vec<String>>, col: &str) -> Vec<f64> {
    t[col].iter().map(|s| s.parse().unwrap()).collect()
}

fn score(args: &[&str], out: &Path, extra: &[&str]) {
    let mut a: Vec<&str> = args.to_vec();
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--out", out.to_str().unwrap(), "-q", DIGITS]);
    ok(&syllabus(&a));
}

#[test]
fn el2n_of_a_classifier_is_bounded_and_repeats_for_any_thread_count() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    let trained = ["--proxy", "mlp", "--features", "pixels", "--label", "label", "--epochs", "10", "--seeds", "2"];
    score(&["score", "el2n"], &a, &[&trained[..], &["--threads", "1"]].concat());
    score(&["score", "el2n"], &b, &[&trained[..], &["--threads", "2"]].concat());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same scores, byte for byte");
    let t = parquet_table(&a);
    assert_eq!(t["id"].len(), 1347);
    assert!(t.contains_key("loss") && !t.contains_key("grand"));
    let el2n = floats(&t, "el2n");
    assert!(el2n.iter().all(|&e| (0.0..=2f64.sqrt()).contains(&e)));
    // A trained classifier finds most digits easy: the median EL2N is small.
    let mut s = el2n.clone();
    s.sort_by(f64::total_cmp);
    assert!(s[s.len() / 2] < 0.5, "median EL2N {}", s[s.len() / 2]);
}

#[test]
fn exact_grand_bounds_the_last_layer_closed_form() {
    let dir = tempdir();
    let (exact, last) = (dir.path().join("exact.parquet"), dir.path().join("last.parquet"));
    score(&["score", "grand"], &exact, MLP);
    score(&["score", "grand", "--last-layer"], &last, MLP);
    let (e, l) = (floats(&parquet_table(&exact), "grand"), floats(&parquet_table(&last), "grand"));
    assert_eq!(e.len(), l.len());
    assert!(e.iter().zip(&l).all(|(e, l)| e + 1e-9 >= *l && *l >= 0.0));
    // Same proxies (same seeds), so EL2N agrees between the two.
    assert_eq!(parquet_table(&exact)["el2n"], parquet_table(&last)["el2n"]);
}

#[test]
fn select_rules_on_any_score_column() {
    let dir = tempdir();
    let scores = dir.path().join("el2n.parquet");
    score(&["score", "el2n"], &scores, MLP);
    let sel = |rule: &[&str], name: &str| -> Vec<String> {
        let out = dir.path().join(name);
        let mut a = vec!["select", "--scores", scores.to_str().unwrap(), "--by", "el2n"];
        a.extend_from_slice(rule);
        a.extend_from_slice(&["--out", out.to_str().unwrap(), "-q", DIGITS]);
        ok(&syllabus(&a));
        parquet_table(&out)["id"].clone()
    };
    // The paper's noisy-label variant with no offset is keep-max.
    assert_eq!(sel(&["--offset", "0", "--k", "100"], "o.parquet"), sel(&["--keep-max", "100"], "m.parquet"));
    let max = sel(&["--keep-max", "0.5"], "max.parquet");
    let min = sel(&["--keep-min", "0.5"], "min.parquet");
    assert_eq!((max.len(), min.len()), (674, 674));
    let band = sel(&["--band", "0.25", "0.75"], "band.parquet");
    assert_eq!(band.len(), 1010 - 337);
    // The band is the middle half: every row outside it scores at most the band's lowest
    // score (a quarter of the rows) or at least its highest (the other quarter).
    let t = parquet_table(&scores);
    let by_id: HashMap<&str, f64> = t["id"].iter().map(String::as_str).zip(floats(&t, "el2n")).collect();
    let in_band: std::collections::HashSet<&str> = band.iter().map(String::as_str).collect();
    let band_scores: Vec<f64> = band.iter().map(|i| by_id[i.as_str()]).collect();
    let (b_lo, b_hi) = band_scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let outside: Vec<f64> = by_id.iter().filter(|(i, _)| !in_band.contains(*i)).map(|(_, &x)| x).collect();
    let below = outside.iter().filter(|&&x| x <= b_lo).count();
    let above = outside.iter().filter(|&&x| x >= b_hi).count();
    assert_eq!(below + above, outside.len(), "a row outside the band scores inside its range");
    let quarter = by_id.len() as f64 / 4.0;
    assert!(
        (below as f64 - quarter).abs() <= 1.0 && (above as f64 - quarter).abs() <= 1.0,
        "{below} below, {above} above"
    );
    let skipped = sel(&["--offset", "10", "--k", "5"], "skip.parquet");
    let top15 = sel(&["--keep-max", "15"], "top15.parquet");
    let top10 = sel(&["--keep-max", "10"], "top10.parquet");
    assert!(skipped.iter().all(|i| top15.contains(i) && !top10.contains(i)));

    // Works for the other scorers' columns too.
    let dsir = dir.path().join("dsir.parquet");
    ok(&syllabus(&[
        "score",
        "dsir",
        "--target",
        "fixtures/target/math.jsonl",
        "--out",
        &p(&dsir),
        "-q",
        "fixtures/target/docs.jsonl",
    ]));
    let out = dir.path().join("d.parquet");
    ok(&syllabus(&[
        "select",
        "--scores",
        &p(&dsir),
        "--by",
        "dsir_logw",
        "--keep-max",
        "10",
        "--out",
        &p(&out),
        "-q",
        "fixtures/target/docs.jsonl",
    ]));
    assert_eq!(parquet_table(&out)["id"].len(), 10);
}

#[test]
fn select_errors_name_the_problem() {
    let dir = tempdir();
    let scores = dir.path().join("s.jsonl");
    std::fs::write(&scores, "{\"id\": \"tdocs-00000\", \"el2n\": 0.5}\n").unwrap();
    let out = dir.path().join("o.parquet");
    let err = fails(
        &syllabus(&[
            "select",
            "--scores",
            &p(&scores),
            "--by",
            "el2n",
            "--keep-max",
            "1",
            "--out",
            &p(&out),
            "fixtures/target/docs.jsonl",
        ]),
        1,
    );
    assert!(err.contains("docs.jsonl") && err.contains("line 2") && err.contains("no \"el2n\" score"), "{err}");
    let err = fails(
        &syllabus(&[
            "select",
            "--scores",
            &p(&scores),
            "--by",
            "el2n",
            "--keep-max",
            "1",
            "--keep-min",
            "1",
            "--out",
            &p(&out),
            "fixtures/target/docs.jsonl",
        ]),
        2,
    );
    assert!(err.contains("--keep-min") || err.contains("cannot be used"), "{err}");
    let err = fails(
        &syllabus(&[
            "select",
            "--scores",
            &p(&scores),
            "--by",
            "el2n",
            "--band",
            "0.8",
            "0.2",
            "--out",
            &p(&out),
            "fixtures/target/docs.jsonl",
        ]),
        1,
    );
    assert!(err.contains("band"), "{err}");
}

#[test]
fn lm_loss_is_lower_on_the_domain_it_was_trained_on() {
    let dir = tempdir();
    let out = dir.path().join("lm.parquet");
    let lm = [
        "score",
        "loss",
        "--proxy",
        "lm",
        "--tokenizer",
        "fixtures/tokenizer.json",
        "--width",
        "32",
        "--layers",
        "1",
        "--context",
        "32",
        "--epochs",
        "0.5",
        "--seeds",
        "1",
        "--batch-size",
        "32",
        "--train-on",
        "fixtures/target/math.jsonl",
    ];
    let mut a = lm.to_vec();
    a.extend_from_slice(&[
        "--out",
        out.to_str().unwrap(),
        "-q",
        "fixtures/target/docs.jsonl",
        "fixtures/target/math.jsonl",
    ]);
    ok(&syllabus(&a));
    let t = parquet_table(&out);
    let loss = floats(&t, "loss");
    let n: Vec<u64> = t["n_tokens"].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(loss.len(), 73 + 115);
    // n_tokens: the document's tokens and its end.
    let tok = syllabus::tokenize::Tok::load(&root().join("fixtures/tokenizer.json")).unwrap();
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(root().join("fixtures/target/docs.jsonl")).unwrap().lines().next().unwrap(),
    )
    .unwrap();
    assert_eq!(n[0], tok.encode(first["text"].as_str().unwrap()).unwrap().len() as u64 + 1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (docs, math) = loss.split_at(73);
    assert!(mean(math) < mean(docs), "math {} vs docs {}", mean(math), mean(docs));
    assert!(t["el2n"].iter().all(|e| (0.0..=2f64.sqrt()).contains(&e.parse::<f64>().unwrap())));
}

#[test]
fn proxy_pipeline_prunes_and_writes_a_curriculum() {
    let dir = tempdir();
    // The shipped EL2N pipeline on the two small target files, to keep the test quick.
    let text = std::fs::read_to_string(root().join("pipelines/el2n_pruned.toml")).unwrap();
    let start = text.find("[source.domains]").unwrap();
    let end = text.find("[select]").unwrap();
    let text = format!(
        "{}[source.domains]\nmath = [\"fixtures/target/math.jsonl\"]\ndocs = [\"fixtures/target/docs.jsonl\"]\n\n{}",
        &text[..start],
        &text[end..]
    )
    .replace("context = 64", "context = 32");
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    let err = ok(&syllabus(&["run", &p(&cfg), "--out", &p(&out), "-q"]));
    assert!(err.contains("188 eligible; 94 selected"), "{err}");
    ok(&syllabus(&["verify", &p(&out)]));
    let scores = parquet_table(&out.join("scores.parquet"));
    assert_eq!(scores["id"].len(), 188);
    let m = syllabus::shard::manifest::Manifest::load(&out).unwrap();
    assert_eq!((m.ordering.by.as_deref(), m.totals.documents), (Some("el2n"), 94));
}
