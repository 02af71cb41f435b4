//! fastText classifiers: `syllabus score classifier` gives what fastText 0.9's Python bindings
//! give (`fixtures/classifier/golden.jsonl`, made by `fixtures/classifier/make_models.py` with
//! fastText itself) for a model of every kind; damaged models are clear errors; training is
//! deterministic whatever the thread count and learns.

use std::collections::HashMap;
use std::path::Path;

use crate::util::*;

const MODELS: &[&str] = &[
    "softmax.bin",
    "ova.bin",
    "ns.bin",
    "hs.bin",
    "bigrams.bin",
    "subwords.bin",
    "quantized.ftz",
    "quantized_out.ftz",
];

struct Golden {
    labels: Vec<String>,
    probs: Vec<f64>,
}

fn golden() -> HashMap<(String, String), Golden> {
    let text = std::fs::read_to_string(fixture("classifier/golden.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = (v["model"].as_str().unwrap().to_string(), v["id"].as_str().unwrap().to_string());
            let labels = v["labels"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            let probs = v["probs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            (key, Golden { labels, probs })
        })
        .collect()
}

fn score(model: &str, out: &Path, extra: &[&str]) -> HashMap<String, Vec<String>> {
    let m = fixture(&format!("classifier/{model}"));
    let mut args = vec!["score", "classifier", "-q", "--model", &m, "--all-labels"];
    args.extend_from_slice(extra);
    let (o, t, h) = (p(out), fixture("target"), fixture("heldout"));
    args.extend(["--out", &o, &t, &h]);
    ok(&syllabus(&args));
    parquet_table(out)
}

#[test]
fn every_kind_of_model_predicts_what_fasttext_predicts() {
    let gold = golden();
    let dir = tempdir();
    for model in MODELS {
        let t = score(model, &dir.path().join(format!("{model}.parquet")), &[]);
        let n = t["id"].len();
        assert_eq!(n, 215, "{model}");
        let mut checked = 0;
        for i in 0..n {
            let g = &gold[&(model.to_string(), t["id"][i].clone())];
            // The top label, ties ordered as fastText orders them.
            assert_eq!(t["clf_label"][i], g.labels[0], "{model} {}", t["id"][i]);
            for (l, want) in g.labels.iter().zip(&g.probs) {
                let got: f64 = t[&format!("clf_{l}")][i].parse().unwrap();
                assert!((got - want).abs() <= 1e-7, "{model} {} {l}: {got} vs fastText's {want}", t["id"][i]);
                checked += 1;
            }
            // hierarchical softmax leaves out what it prunes under 1e-5; the others list all.
            if !model.starts_with("quantized_out") {
                for (c, v) in t.iter().filter(|(c, _)| c.starts_with("clf_") && *c != "clf_label" && *c != "clf_prob") {
                    if !g.labels.iter().any(|l| format!("clf_{l}") == **c) {
                        assert!(model.starts_with("hs"), "{model}: {c} missing from fastText's list");
                        assert!(v[i].parse::<f64>().unwrap() < 2e-5, "{model}: {c}");
                    }
                }
            }
        }
        assert!(
            checked >= 215 * 4 || model.starts_with("quantized_out") || model.starts_with("hs"),
            "{model}: {checked}"
        );
        // clf_prob is the model's first label's probability by default (fastText orders labels
        // by count: prose has the most documents).
        if !model.starts_with("quantized_out") {
            assert_eq!(t["clf_prob"], t["clf_prose"], "{model}");
        }
    }
}

#[test]
fn clf_prob_sums_the_chosen_labels_and_unknown_labels_are_named() {
    let dir = tempdir();
    let t = score("softmax.bin", &dir.path().join("a.parquet"), &["--label", "math", "--label", "__label__code"]);
    let f = |c: &str| t[c].iter().map(|x| x.parse::<f64>().unwrap()).collect::<Vec<_>>();
    let (prob, math, code) = (f("clf_prob"), f("clf_math"), f("clf_code"));
    assert_eq!(prob.len(), 215);
    for ((p, m), c) in prob.iter().zip(&math).zip(&code) {
        assert_eq!(*p, m + c);
    }
    let m = fixture("classifier/softmax.bin");
    let e = fails(
        &syllabus(&[
            "score",
            "classifier",
            "--model",
            &m,
            "--label",
            "poetry",
            "--out",
            &p(&dir.path().join("b.parquet")),
            &fixture("target"),
        ]),
        1,
    );
    assert!(e.contains("no label \"poetry\"") && e.contains("prose, code, math, docs"), "{e}");
}

fn train(dir: &Path, name: &str, threads: &str, extra: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let (pos, lake, o) = (fixture("target/math.jsonl"), fixture("lake"), p(&out));
    let mut args =
        vec!["--threads", threads, "classifier", "train", "-q", "--positive", &pos, "--negatives-from", &lake];
    args.extend(["--sample", "300", "--epoch", "20", "--lr", "0.5", "--dim", "16", "--out", &o]);
    args.extend_from_slice(extra);
    ok(&syllabus(&args));
    std::fs::read(&out).unwrap()
}

#[test]
fn training_is_deterministic_whatever_the_threads_and_learns_the_target() {
    let dir = tempdir();
    let d = dir.path();
    for loss in ["softmax", "ns", "hs", "ova"] {
        let one = train(d, &format!("{loss}1.bin"), "1", &["--loss", loss, "--word-ngrams", "2", "--bucket", "4096"]);
        let two = train(d, &format!("{loss}2.bin"), "2", &["--loss", loss, "--word-ngrams", "2", "--bucket", "4096"]);
        assert!(one == two, "{loss}: the same model bytes on 1 and 2 threads");
    }
    let other = train(d, "seed.bin", "2", &["--loss", "ns", "--word-ngrams", "2", "--bucket", "4096", "--seed", "7"]);
    assert!(other != std::fs::read(d.join("ns2.bin")).unwrap(), "the seed matters");

    // Held-out math (never trained on) scores far above the lake's prose and code.
    let out = d.join("s.parquet");
    let (m, h, pr, c) =
        (p(&d.join("softmax2.bin")), fixture("heldout"), fixture("lake/prose.jsonl"), fixture("lake/code.jsonl.zst"));
    ok(&syllabus(&["score", "classifier", "-q", "--model", &m, "--out", &p(&out), &h, &pr, &c]));
    let t = parquet_table(&out);
    let mean = |prefix: &str| {
        let v: Vec<f64> = t["id"]
            .iter()
            .zip(&t["clf_prob"])
            .filter(|(i, _)| i.starts_with(prefix))
            .map(|(_, x)| x.parse().unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean("hmath") > 0.5 && mean("prose") < 0.05 && mean("code") < 0.05,
        "{} {} {}",
        mean("hmath"),
        mean("prose"),
        mean("code")
    );
    // clf_label is the top label.
    assert!(t["clf_label"].iter().all(|l| l == "positive" || l == "negative"));
}

#[test]
fn bad_models_and_training_sets_are_clear_errors() {
    let dir = tempdir();
    let d = dir.path();
    let bad = d.join("bad.bin");
    std::fs::write(&bad, b"not a model at all").unwrap();
    let o = p(&d.join("o.parquet"));
    let e = fails(&syllabus(&["score", "classifier", "--model", &p(&bad), "--out", &o, &fixture("heldout")]), 1);
    assert!(e.contains("bad.bin") && e.contains("not a fastText model"), "{e}");
    let e = fails(
        &syllabus(&["score", "classifier", "--model", &p(&d.join("none.bin")), "--out", &o, &fixture("heldout")]),
        1,
    );
    assert!(e.contains("none.bin"), "{e}");
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let e = fails(
        &syllabus(&[
            "classifier",
            "train",
            "--positive",
            &p(&empty),
            "--negative",
            &fixture("heldout"),
            "--out",
            &p(&d.join("m.bin")),
        ]),
        1,
    );
    assert!(e.contains("--positive: no documents"), "{e}");
    let e = fails(
        &syllabus(&[
            "classifier",
            "train",
            "--positive",
            &fixture("heldout"),
            "--negative",
            &fixture("target"),
            "--dim",
            "0",
            "--out",
            &p(&d.join("m.bin")),
        ]),
        1,
    );
    assert!(e.contains("--dim 0"), "{e}");
}

/// A classifier's top label as the curriculum's domain (`--domain-from-label`), and in a
/// pipeline (`domain_field = "clf_label"` after a classifier's selection).
#[test]
fn a_classifiers_labels_are_domains() {
    let dir = tempdir();
    let d = dir.path();
    let table = d.join("labels.parquet");
    let m = fixture("classifier/softmax.bin");
    ok(&syllabus(&["score", "classifier", "-q", "--model", &m, "--out", &p(&table), &fixture("lake")]));
    let t = parquet_table(&table);
    let label_of: HashMap<&String, &String> = t["id"].iter().zip(&t["clf_label"]).collect();
    let out = d.join("c");
    let args =
        ["curriculum", "-q", "--tokenizer", "fixtures/tokenizer.json", "--seq-len", "512", "--domain-from-label"];
    ok(&syllabus(&[&args[..], &[&p(&table), "--out", &p(&out), &fixture("lake")]].concat()));
    let c = parquet_table(&out.join("curriculum.parquet"));
    assert_eq!(c["id"].len(), 1225);
    for (id, domain) in c["id"].iter().zip(&c["domain"]) {
        assert_eq!(label_of[id], domain, "{id}");
    }
    // The classifier trained on the lake's domains mostly agrees with them.
    let agree = c["id"].iter().zip(&c["domain"]).filter(|(id, dom)| id.starts_with(dom.as_str())).count();
    assert!(agree > 1000, "{agree} of 1225");

    let pipeline = d.join("p.toml");
    let toml = format!(
        "name = \"p\"\nout_dir = {:?}\n[source]\npaths = [{:?}]\ndomain_field = \"clf_label\"\n[select]\nmethod = \"classifier\"\nmodel = {m:?}\nk = 200\n[tokenize]\ntokenizer = \"fixtures/tokenizer.json\"\nseq_len = 256\n",
        p(&d.join("po")),
        fixture("lake")
    );
    std::fs::write(&pipeline, toml).unwrap();
    ok(&syllabus(&["run", "-q", &p(&pipeline)]));
    let c = parquet_table(&d.join("po/curriculum.parquet"));
    assert_eq!(c["id"].len(), 200);
    for (id, domain) in c["id"].iter().zip(&c["domain"]) {
        assert_eq!(label_of[id], domain, "{id}");
    }
}

/// `classifier train --input`: fastText's training format, any labels and prefix.
#[test]
fn training_from_fasttext_format_text_learns_every_label() {
    let dir = tempdir();
    let d = dir.path();
    // The fixture lake's prose and math, labelled by domain, fastText style, and a line without
    // a label (skipped and counted).
    let mut text = String::new();
    for (domain, file) in [("prose", "lake/prose.jsonl"), ("math", "target/math.jsonl")] {
        for r in read_jsonl(Path::new(&fixture(file))) {
            text.push_str(&format!("@@{domain} {}\n", r["text"].as_str().unwrap().replace('\n', " ")));
        }
    }
    text.push_str("no label here\n");
    // A line of two labels, one of them on no other line: one-vs-all learns both at once,
    // the other losses one per pass.
    text.push_str("@@math @@rare let x = 1 in x\n");
    let input = d.join("train.txt");
    std::fs::write(&input, text).unwrap();
    let model = d.join("m.bin");
    let e = ok(&syllabus(&[
        "classifier",
        "train",
        "--input",
        &p(&input),
        "--label-prefix",
        "@@",
        "--epoch",
        "20",
        "--lr",
        "0.5",
        "--dim",
        "16",
        "--out",
        &p(&model),
    ]));
    assert!(e.contains("462 labelled lines (3 labels; 1 lines without a label skipped)"), "{e}");
    let ova = d.join("ova.bin");
    ok(&syllabus(&[
        "classifier",
        "train",
        "-q",
        "--input",
        &p(&input),
        "--label-prefix",
        "@@",
        "--loss",
        "ova",
        "--out",
        &p(&ova),
    ]));
    let out = d.join("s.parquet");
    ok(&syllabus(&[
        "score",
        "classifier",
        "-q",
        "--model",
        &p(&model),
        "--all-labels",
        "--out",
        &p(&out),
        &fixture("heldout"),
    ]));
    let t = parquet_table(&out);
    // Labels keep their prefix (only fastText's own is taken off); prose, the more frequent, is first.
    let math = t["clf_label"].iter().filter(|l| *l == "@@math").count();
    assert!(math >= 24 && t["clf_label"].iter().all(|l| l == "@@math" || l == "@@prose"), "{:?}", t["clf_label"]);
    assert_eq!(t["clf_prob"], t["clf_@@prose"]);
    let e = fails(&syllabus(&["classifier", "train", "--input", &p(&input), "--out", &p(&model)]), 1);
    assert!(e.contains("0 label(s) found"), "{e}");
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    let m = p(&d.join("m.bin"));
    let (pos, neg) = (fixture("target/math.jsonl"), fixture("lake/prose.jsonl"));
    let e = fails(
        &syllabus(&[
            "classifier",
            "train",
            "--positive",
            &pos,
            "--negative",
            &neg,
            "--word-ngrams",
            "2",
            "--bucket",
            "0",
            "--out",
            &m,
        ]),
        1,
    );
    assert!(e.contains("--bucket 0"), "{e}");
    // BETR needs a sample to label.
    let o = p(&d.join("o.parquet"));
    let e = fails(
        &syllabus(&[
            "select",
            "classifier",
            "--target",
            &pos,
            "--label-by",
            "zipfit",
            "--sample",
            "1",
            "--k",
            "5",
            "--out",
            &o,
            &fixture("heldout"),
        ]),
        1,
    );
    assert!(e.contains("at least 2 needed"), "{e}");
    // A label named `prob` would write clf_prob twice with --all-labels.
    let input = d.join("t.txt");
    std::fs::write(&input, "__label__prob a b c\n__label__other d e f\n").unwrap();
    ok(&syllabus(&["classifier", "train", "-q", "--input", &p(&input), "--out", &m]));
    let e =
        fails(&syllabus(&["score", "classifier", "--model", &m, "--all-labels", "--out", &o, &fixture("heldout")]), 1);
    assert!(e.contains("column clf_prob twice"), "{e}");
    ok(&syllabus(&["score", "classifier", "-q", "--model", &m, "--out", &o, &fixture("heldout")]));
}
