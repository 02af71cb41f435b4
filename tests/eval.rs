//! `syllabus eval`: equal-compute training runs compared, through the CLI and a pipeline.

use std::path::Path;

use crate::util::{fixture, syllabus, syllabus_at, tempdir};

/// A tiny model and budget: 512 predictions a step (8 windows of 64), 12 steps.
const TINY: &[&str] = &["--width", "32", "--layers", "1", "--batch-size", "8", "--valid-tokens", "2048"];

fn eval(out: &Path, extra: &[&str], candidates: &[&str]) -> std::process::Output {
    eval_at(out, "1", extra, candidates, None)
}

/// `eval` with `seeds`, crashing at `failpoint` if one is given.
fn eval_at(
    out: &Path,
    seeds: &str,
    extra: &[&str],
    candidates: &[&str],
    failpoint: Option<&str>,
) -> std::process::Output {
    let tok = fixture("tokenizer.json");
    let valid = format!("math={}", fixture("heldout/math.jsonl"));
    let out = out.display().to_string();
    let mut args =
        vec!["eval", "--tokenizer", &tok, "--valid", &valid, "--tokens", "6144", "--seeds", seeds, "--out", &out];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    args.extend_from_slice(candidates);
    syllabus_at(&args, failpoint)
}

fn ok(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

/// summary.csv as (candidate, valid) -> column -> value.
fn summary(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines.map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_string)).collect()).collect()
}

#[test]
fn the_targets_own_domain_trains_the_lower_target_loss() {
    let tmp = tempdir();
    let out = tmp.path().join("ev");
    let math = format!("math={}", fixture("lake/math.jsonl.gz"));
    let prose = format!("prose={}", fixture("lake/prose.jsonl"));
    let o = eval(&out, &["--raw", &fixture("lake")], &[&prose, &math]);
    let err = ok(&o);
    assert!(err.contains("2 candidates x 1 seeds"), "{err}");
    let rows = summary(&out);
    let loss = |c: &str| rows.iter().find(|r| r["candidate"] == c).unwrap()["final_loss_mean"].parse::<f64>().unwrap();
    assert!(loss("math") + 0.3 < loss("prose"), "math {} vs prose {}", loss("math"), loss("prose"));
    // The cheap metric agrees: math data is closer to held-out math than prose is.
    let klr = |c: &str| rows.iter().find(|r| r["candidate"] == c).unwrap()["kl_reduction"].parse::<f64>().unwrap();
    assert!(klr("math") > klr("prose"));
    // Math reaches the prose baseline's final loss sooner.
    let sooner = rows.iter().find(|r| r["candidate"] == "math").unwrap()["sooner_pct"].parse::<f64>().unwrap();
    assert!(sooner > 0.0, "{sooner}");
    // The stdout table names both.
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("math") && table.contains("prose") && table.contains("KL reduction"), "{table}");

    // Curves: 0, every 1024 (default: ten points of 12 steps -> every 2 steps), and the end,
    // with exactly the budget trained by each candidate.
    let curves = read_curves(&out.join("curves.parquet"));
    for cand in ["math", "prose"] {
        let tokens: Vec<u64> = curves.iter().filter(|r| r.0 == cand).map(|r| r.2).collect();
        assert_eq!(tokens, vec![0, 1024, 2048, 3072, 4096, 5120, 6144], "{cand}");
    }

    // The plot: a PNG of one 720x480 panel, not blank.
    let png = std::fs::read(out.join("curves.png")).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (720, 480));
    let distinct: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    assert!(distinct.len() > 20, "{} colours: a blank image?", distinct.len());
    // The legend is in the strip beside the data (x >= 550), in the first two line colours.
    let px = |x: usize, y: usize| &buf[(y * 720 + x) * 3..(y * 720 + x) * 3 + 3];
    for rgb in [[0x00u8, 0x72, 0xB2], [0xD5, 0x5E, 0x00]] {
        assert!((550..720).any(|x| (30..120).any(|y| px(x, y) == rgb)), "legend colour {rgb:?} missing");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    // Only what eval used: its seeds, not the proxy's defaults.
    assert_eq!(report["settings"]["seeds"], 1);
    assert!(report["settings"]["model"].get("seeds").is_none() && report["settings"]["model"].get("epochs").is_none());
    // The summary says how many predictions each validation set had.
    for r in &rows {
        let n: u64 = r["valid_predictions"].parse().unwrap();
        assert!((64..=2048).contains(&n), "{n}");
    }
    assert_eq!(report["inputs"]["candidates"][1]["kind"], "table");
    assert!(report["inputs"]["candidates"][1]["hash"].as_str().unwrap().starts_with("xxh3:"));
}

/// (candidate, seed, tokens, valid, loss) rows.
fn read_curves(path: &Path) -> Vec<(String, u32, u64, String, f64)> {
    use arrow::array::{AsArray, Float64Array, UInt32Array, UInt64Array};
    let f = std::fs::File::open(path).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let mut out = Vec::new();
    for b in r {
        let b = b.unwrap();
        let c = b.column(0).as_string::<i32>();
        let s = b.column(1).as_any().downcast_ref::<UInt32Array>().unwrap();
        let t = b.column(2).as_any().downcast_ref::<UInt64Array>().unwrap();
        let v = b.column(3).as_string::<i32>();
        let l = b.column(4).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((c.value(i).to_string(), s.value(i), t.value(i), v.value(i).to_string(), l.value(i)));
        }
    }
    out
}

#[test]
fn a_validation_set_shorter_than_one_context_window_is_refused() {
    let tmp = tempdir();
    let tok = fixture("tokenizer.json");
    let cand = format!("math={}", fixture("lake/math.jsonl.gz"));
    for (name, text) in [("four", "{\"id\":\"a\",\"text\":\"x = 1\"}\n"), ("empty", "{\"id\":\"a\",\"text\":\"\"}\n")] {
        let v = tmp.path().join(format!("{name}.jsonl"));
        std::fs::write(&v, text).unwrap();
        let out = tmp.path().join(name).display().to_string();
        let valid = format!("{name}={}", v.display());
        let mut args =
            vec!["eval", "--tokenizer", &tok, "--valid", &valid, "--tokens", "1024", "--seeds", "1", "--out", &out];
        args.extend_from_slice(TINY);
        args.push(&cand);
        let o = syllabus(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: accepted");
        assert!(
            err.contains(&format!("the validation set {name}")) && err.contains("one context window (64)"),
            "{err}"
        );
        assert!(!Path::new(&out).join("summary.csv").exists());
    }
}

#[test]
fn a_short_candidate_repeats_and_says_so() {
    let tmp = tempdir();
    let small = tmp.path().join("small.jsonl");
    std::fs::write(&small, "{\"id\":\"a\",\"text\":\"let x = 1 + 1 in x * x;;\"}\n{\"id\":\"b\",\"text\":\"prove (`!n. n + 0 = n`, ARITH_TAC);;\"}\n").unwrap();
    let out = tmp.path().join("ev");
    ok(&eval(&out, &[], &[&format!("small={}", small.display())]));
    let rows = summary(&out);
    let toks: u64 = rows[0]["candidate_tokens"].parse().unwrap();
    assert!(toks > 10 && toks < 100, "{toks}");
    assert_eq!(rows[0]["repeated_tokens"].parse::<u64>().unwrap(), 6144 - toks);
    assert!(rows[0]["epochs"].parse::<f64>().unwrap() > 60.0);
}

#[test]
fn results_do_not_depend_on_the_thread_count_and_a_killed_eval_resumes() {
    let tmp = tempdir();
    let math = format!("math={}", fixture("lake/math.jsonl.gz"));
    let docs = format!("docs={}", fixture("lake/docs.parquet"));
    let cands = [math.as_str(), docs.as_str()];
    let bytes = |out: &Path| {
        (std::fs::read(out.join("curves.parquet")).unwrap(), std::fs::read(out.join("summary.csv")).unwrap())
    };
    let run = |name: &str, threads: &str| {
        let out = tmp.path().join(name);
        ok(&eval_at(&out, "2", &["--threads", threads], &cands, None));
        bytes(&out)
    };
    let one = run("t1", "1");
    assert!(one == run("t2", "2"), "1 vs 2 threads differ");

    // Killed after its second run (math, seed 1) finished: the next start keeps both and ends
    // as an uninterrupted run.
    let out = tmp.path().join("killed");
    assert!(!eval_at(&out, "2", &[], &cands, Some("eval-run-0-1")).status.success());
    assert!(!out.join("summary.csv").exists() && !out.join("curves.parquet").exists(), "nothing looks finished");
    let err = ok(&eval_at(&out, "2", &[], &cands, None));
    assert!(err.contains("(2 kept from an interrupted run)"), "{err}");
    assert!(bytes(&out) == one, "resumed = uninterrupted");
    assert!(!out.join("work").exists(), "the work directory is removed when done");

    // A kept run is not trained again: mark its final loss, and the mark is what comes out.
    let out = tmp.path().join("marked");
    assert!(!eval_at(&out, "2", &[], &cands, Some("eval-run-0-0")).status.success());
    let kept = out.join("work/run-0-0.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    let last = v["points"].as_array().unwrap().len() - 1;
    v["points"][last]["loss"][0] = serde_json::json!(123.0);
    std::fs::write(&kept, serde_json::to_vec(&v).unwrap()).unwrap();
    ok(&eval_at(&out, "2", &[], &cands, None));
    let curves = read_curves(&out.join("curves.parquet"));
    let marked = curves.iter().find(|r| r.0 == "math" && r.1 == 0 && r.2 == 6144).unwrap().4;
    assert_eq!(marked, 123.0, "the kept run was trained again");
    // Other settings start over.
    let err = ok(&eval_at(&out, "1", &[], &cands, Some("")));
    assert!(!err.contains("kept"), "{err}");
}

#[test]
fn a_curriculum_candidate_is_read_in_manifest_order() {
    let tmp = tempdir();
    let table = tmp.path().join("docs.jsonl");
    // Ranks run opposite to file order, so manifest order is not file order.
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{{\"id\":\"d{i}\",\"rank\":{},\"text\":\"document number {i} says {}\"}}\n",
                40 - i,
                "word ".repeat(20 + i)
            )
        })
        .collect();
    std::fs::write(&table, rows).unwrap();
    let cur = tmp.path().join("cur");
    let o = syllabus(&[
        "curriculum",
        "--tokenizer",
        &fixture("tokenizer.json"),
        "--order",
        "ascending",
        "--by",
        "rank",
        "--seq-len",
        "64",
        "--shard-tokens",
        "512",
        "--out",
        cur.to_str().unwrap(),
        table.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = syllabus::tokenize::Tok::load(Path::new(&fixture("tokenizer.json"))).unwrap();
    let s = syllabus::eval::data::load_curriculum(&cur, &tok).unwrap();
    let m = syllabus::shard::manifest::Manifest::load(&cur).unwrap();
    assert!(m.shards.iter().filter(|e| e.format == "syllabus").count() > 2, "several shards");
    assert_eq!(s.documents, 40);
    assert_eq!(
        s.units.iter().map(|u| u.tokens.len() as u64).sum::<u64>(),
        m.totals.tokens,
        "every document token, no padding"
    );
    // The stream starts with the lowest rank (the file's last document) and ends with the highest.
    let text = tok.decode(&s.units.iter().flat_map(|u| u.tokens.clone()).collect::<Vec<_>>()).unwrap();
    let (first, last) = (text.find("number 39 ").unwrap(), text.find("number 0 ").unwrap());
    assert!(first < text.find("number 20 ").unwrap() && text.find("number 20 ").unwrap() < last, "manifest order");
    // And eval takes it as a curriculum.
    let out = tmp.path().join("ev");
    ok(&eval(&out, &[], &[&format!("cur={}", cur.display())]));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["inputs"]["candidates"][0]["kind"], "curriculum");
    // A curriculum as a validation set: its packed sequences, in manifest order, are the
    // validation windows (capped at --valid-tokens whole sequences, the last cut short).
    let out = tmp.path().join("ev-valid");
    let tok_path = fixture("tokenizer.json");
    let (vcur, cand) = (format!("packed={}", cur.display()), format!("math={}", fixture("target/math.jsonl")));
    let mut args = vec!["eval", "--tokenizer", &tok_path, "--valid", &vcur, "--tokens", "2048", "--seeds", "1"];
    let out_s = out.display().to_string();
    args.extend([
        "--width",
        "32",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--valid-tokens",
        "1000",
        "--out",
        &out_s,
        &cand,
    ]);
    ok(&syllabus(&args));
    let row = &summary(&out)[0];
    assert_eq!(row["valid"], "packed");
    let packed: u64 = s.units.iter().map(|u| u.predictions()).sum();
    assert_eq!(row["valid_predictions"].parse::<u64>().unwrap(), packed.min(1000));
    // --shuffle-sequences: the same curriculum's sequences in a seeded order, another run.
    let (plain, shuffled) = (tmp.path().join("in-order"), tmp.path().join("shuffled"));
    let c = format!("cur={}", cur.display());
    ok(&eval(&plain, &[], &[&c]));
    ok(&eval(&shuffled, &["--shuffle-sequences"], &[&c]));
    let loss = |d: &Path| summary(d)[0]["final_loss_mean"].clone();
    assert_ne!(loss(&plain), loss(&shuffled));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(shuffled.join("eval.json")).unwrap()).unwrap();
    assert_eq!(j["settings"]["shuffle_sequences"], true);
    // Another tokenizer than the curriculum's is refused.
    let other = tmp.path().join("other.json");
    let mut t: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("tokenizer.json")).unwrap()).unwrap();
    t["normalizer"] = serde_json::Value::Null;
    std::fs::write(&other, serde_json::to_vec(&t).unwrap()).unwrap();
    let o = syllabus(&[
        "eval",
        "--tokenizer",
        other.to_str().unwrap(),
        "--valid",
        &format!("m={}", fixture("heldout/math.jsonl")),
        "--tokens",
        "512",
        "--out",
        tmp.path().join("ev2").to_str().unwrap(),
        &format!("cur={}", cur.display()),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("pass the curriculum's tokenizer"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_pipeline_selects_its_candidates_and_evaluates_them_with_its_own_output() {
    let tmp = tempdir();
    let out = tmp.path().join("p");
    let toml = format!(
        r#"
name = "mini"
out_dir = "{out}"
seed = 1
[source]
paths = ["{lake}"]
[select]
method = "dsir"
target = ["{target}"]
k = 100
[eval]
tokenizer = "{tok}"
valid = {{ math = ["{valid}"] }}
tokens = 4096
seeds = 1
valid_tokens = 1024
model = {{ width = 32, layers = 1, batch_size = 8 }}
[[eval.candidates]]
name = "random"
select = {{ method = "random", k = 100 }}
[[eval.candidates]]
name = "prose"
path = "{prose}"
[[eval.candidates]]
name = "qs"
pipeline = "pipelines/quickstart.toml"
"#,
        out = out.display(),
        lake = fixture("lake"),
        target = fixture("target/math.jsonl"),
        tok = fixture("tokenizer.json"),
        valid = fixture("heldout/math.jsonl"),
        prose = fixture("lake/prose.jsonl"),
    );
    let p = tmp.path().join("mini.toml");
    std::fs::write(&p, toml).unwrap();
    let o = syllabus(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = summary(&out.join("eval"));
    let names: Vec<&str> = rows.iter().map(|r| r["candidate"].as_str()).collect();
    assert_eq!(names, ["random", "prose", "qs", "mini"], "listed candidates, then the pipeline's own output");
    // Another pipeline's output: its curriculum, read from its shards.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("eval/eval.json")).unwrap()).unwrap();
    assert_eq!(report["inputs"]["candidates"][2]["kind"], "curriculum");
    assert_eq!(report["inputs"]["candidates"][3]["kind"], "table");
    assert!(out.join("candidates/qs/manifest.json").exists());
    let n = |c: &str| rows.iter().find(|r| r["candidate"] == c).unwrap()["candidate_documents"].parse::<u64>().unwrap();
    assert_eq!((n("random"), n("mini")), (100, 100));
    assert!(out.join("candidates/random/selected.parquet").exists());
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["eval"].as_array().unwrap().len(), 4);
    // A second run keeps everything: the selections' markers, and eval writes the same bytes.
    let before = std::fs::read(out.join("eval/summary.csv")).unwrap();
    let o = syllabus(&["run", p.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(out.join("eval/summary.csv")).unwrap(), before);
}

#[test]
fn a_candidate_that_holds_validation_text_is_warned_about() {
    let tmp = tempdir();
    // Two held-out documents among prose: the candidate learns part of what it is measured on.
    let held = std::fs::read_to_string(fixture("heldout/math.jsonl")).unwrap();
    let prose = std::fs::read_to_string(fixture("lake/prose.jsonl")).unwrap();
    let lines: Vec<&str> = prose.lines().take(40).chain(held.lines().skip(3).take(2)).collect();
    let leaky = tmp.path().join("leaky.jsonl");
    std::fs::write(&leaky, lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("ev");
    let err = ok(&eval(
        &out,
        &[],
        &[&format!("leaky={}", leaky.display()), &format!("prose={}", fixture("lake/prose.jsonl"))],
    ));
    assert!(
        err.contains("warning: 2 of the 42 documents of candidate leaky share a 13-gram with the validation set math"),
        "{err}"
    );
    assert!(!err.contains("candidate prose share"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        report["overlaps"],
        serde_json::json!([{"candidate": "leaky", "valid": "math", "documents": 2, "of": 42}])
    );
}

/// `--lr-schedule`: every candidate trains under the schedule asked for; eval.json records it,
/// and a different schedule is a different run (not a resumed one).
#[test]
fn the_learning_rate_schedule_is_chosen_and_recorded() {
    let tmp = tempdir();
    let cand = format!("math={}", fixture("target/math.jsonl"));
    let (cos, wsd) = (tmp.path().join("cos"), tmp.path().join("wsd"));
    ok(&eval(&cos, &[], &[&cand]));
    ok(&eval(&wsd, &["--lr-schedule", "wsd", "--final-lr", "0", "--decay", "0.5"], &[&cand]));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(wsd.join("eval.json")).unwrap()).unwrap();
    let s = &j["settings"]["schedule"];
    assert_eq!(
        (s["kind"].as_str(), s["final_lr"].as_f64(), s["decay"].as_f64()),
        (Some("wsd"), Some(0.0), Some(0.5)),
        "{j}"
    );
    let loss = |d: &Path| summary(d)[0]["final_loss_mean"].parse::<f64>().unwrap();
    assert_ne!(loss(&cos), loss(&wsd), "the schedule changes the training");
    let e = String::from_utf8_lossy(&eval(&wsd, &["--lr-schedule", "constant", "--final-lr", "0.1"], &[&cand]).stderr)
        .to_string();
    assert!(e.contains("a constant schedule has none"), "{e}");
}

/// `--average-last N`: the uniform average of the last N checkpoints' weights is validated as
/// one more point per run, marked in curves.parquet and summarised in summary.csv.
#[test]
fn the_last_checkpoints_are_averaged_into_a_point_of_their_own() {
    let tmp = tempdir();
    let cand = format!("math={}", fixture("target/math.jsonl"));
    let out = tmp.path().join("avg");
    let avg = ["--lr-schedule", "constant", "--every", "1024", "--average-last", "3"];
    ok(&eval(&out, &avg, &[&cand]));
    let rows = summary(&out);
    let (last, averaged): (f64, f64) =
        (rows[0]["final_loss_mean"].parse().unwrap(), rows[0]["averaged_loss_mean"].parse().unwrap());
    assert!(averaged.is_finite() && averaged != last, "{last} vs {averaged}");
    let f = std::fs::File::open(out.join("curves.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let (mut marked, mut total) = (0, 0);
    for b in reader {
        let b = b.unwrap();
        let col = b
            .column_by_name("averaged")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .unwrap()
            .clone();
        let tokens =
            b.column_by_name("tokens").unwrap().as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap().clone();
        for i in 0..b.num_rows() {
            total += 1;
            if col.value(i) {
                marked += 1;
                assert_eq!(tokens.value(i), 6144, "the averaged point sits at the end");
            }
        }
    }
    assert_eq!((marked, total), (1, 8), "0, six checkpoints, and the average");
    // Without it, the summary's columns are empty; too many checkpoints is refused.
    let plain = tmp.path().join("plain");
    ok(&eval(&plain, &["--every", "1024"], &[&cand]));
    assert_eq!(summary(&plain)[0]["averaged_loss_mean"], "");
    let e = String::from_utf8_lossy(&eval(&plain, &["--every", "3072", "--average-last", "3"], &[&cand]).stderr)
        .to_string();
    assert!(e.contains("average_last 3: between 2 and the 2 checkpoints"), "{e}");
}

/// Candidates that differ by order and schedule alone: the same selection as a table, and as
/// a curriculum in ascending order, each under eval's cosine and under its own constant rate
/// with averaging. The ordered candidate is a curriculum of the same documents; each candidate
/// trains under its own schedule, recorded in eval.json; a candidate's schedule is checked
/// before anything runs.
#[test]
fn candidates_differ_by_order_and_schedule_alone() {
    let tmp = tempdir();
    let out = tmp.path().join("o");
    let sel = format!(r#"{{ method = "dsir", target = ["{}"], k = 60, top_k = true }}"#, fixture("target/math.jsonl"));
    let toml = |extra: &str| {
        format!(
            r#"
name = "ord"
out_dir = "{out}"
[source]
paths = ["{lake}"]
[eval]
tokenizer = "{tok}"
valid = {{ math = ["{valid}"] }}
tokens = 4096
every = 1024
seeds = 1
valid_tokens = 1024
model = {{ width = 32, layers = 1, batch_size = 8 }}
[[eval.candidates]]
name = "random"
select = {sel}
[[eval.candidates]]
name = "ascending"
select = {sel}
order = {{ method = "ascending", by = "dsir_logw" }}
[[eval.candidates]]
name = "random-const"
select = {sel}
lr_schedule = "constant"
average_last = 3
[[eval.candidates]]
name = "ascending-const"
select = {sel}
order = {{ method = "ascending", by = "dsir_logw" }}
lr_schedule = "constant"
average_last = 3
{extra}
"#,
            out = out.display(),
            lake = fixture("lake"),
            tok = fixture("tokenizer.json"),
            valid = fixture("heldout/math.jsonl"),
        )
    };
    let p = tmp.path().join("ord.toml");
    std::fs::write(&p, toml("")).unwrap();
    let o = syllabus(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = summary(&out.join("eval"));
    let row = |c: &str| rows.iter().find(|r| r["candidate"] == c).unwrap().clone();
    for c in ["random", "ascending", "random-const", "ascending-const"] {
        assert_eq!(row(c)["candidate_documents"], "60", "{c}: the same selection");
    }
    // Averaging where a candidate asked for it, not elsewhere.
    assert_eq!(row("random")["averaged_loss_mean"], "");
    assert!(row("ascending-const")["averaged_loss_mean"].parse::<f64>().unwrap().is_finite());
    // The same documents in two orders are two different runs; so are two schedules.
    assert_ne!(row("random")["final_loss_mean"], row("ascending")["final_loss_mean"]);
    assert_ne!(row("random")["final_loss_mean"], row("random-const")["final_loss_mean"]);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval/eval.json")).unwrap()).unwrap();
    let cands = j["inputs"]["candidates"].as_array().unwrap();
    assert_eq!(
        cands.iter().map(|c| c["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        ["table", "curriculum", "table", "curriculum"]
    );
    assert!(cands[0].get("schedule").is_none(), "eval's own schedule is in settings");
    assert_eq!(cands[2]["schedule"]["kind"], "constant");
    assert_eq!(cands[2]["average_last"], 3);
    assert_eq!(j["settings"]["schedule"]["kind"], "cosine");
    // The curriculum holds the selection's documents, most target-like last.
    assert!(out.join("candidates/ascending/manifest.json").exists());
    // A candidate's schedule is checked up front.
    std::fs::write(
        &p,
        toml("[[eval.candidates]]\nname = \"bad\"\nselect = { method = \"random\", k = 5 }\naverage_last = 9\n"),
    )
    .unwrap();
    let o = syllabus(&["run", p.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("eval.candidates bad") && e.contains("average_last 9"), "{e}");
    std::fs::write(
        &p,
        toml("[[eval.candidates]]\nname = \"bad\"\npath = \"x\"\norder = { method = \"ascending\", by = \"x\" }\n"),
    )
    .unwrap();
    let e = String::from_utf8_lossy(&syllabus(&["run", p.to_str().unwrap()]).stderr).to_string();
    assert!(e.contains("order applies to a select candidate"), "{e}");
}

/// `--scales`: every candidate at each scale, in a directory of its own, and the comparison of
/// the rankings: one row per pair of scales, one decision per scale, figures that follow from
/// the per-scale summaries.
#[test]
fn scales_rank_the_same_candidates_and_say_how_far_they_agree() {
    let tmp = tempdir();
    let out = tmp.path().join("sc");
    let cands = [
        format!("prose={}", fixture("lake/prose.jsonl")),
        format!("math={}", fixture("lake/math.jsonl.gz")),
        format!("code={}", fixture("lake/code.jsonl.zst")),
    ];
    let cands: Vec<&str> = cands.iter().map(String::as_str).collect();
    let o = eval(&out, &["--scales", "16x1,32x1:tokens=4096"], &cands);
    let err = ok(&o);
    assert!(err.contains("2 scales"), "{err}");
    let small = summary(&out.join("16x1"));
    let large = summary(&out.join("32x1_tokens4096"));
    assert_eq!((small.len(), large.len()), (3, 3));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("32x1_tokens4096/eval.json")).unwrap()).unwrap();
    assert_eq!((j["settings"]["model"]["width"].as_u64(), j["settings"]["tokens"].as_u64()), (Some(32), Some(4096)));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("16x1/eval.json")).unwrap()).unwrap();
    assert_eq!((j["settings"]["model"]["width"].as_u64(), j["settings"]["tokens"].as_u64()), (Some(16), Some(6144)));
    // The agreement row follows from the two summaries.
    let loss = |rows: &[std::collections::HashMap<String, String>], c: &str| {
        rows.iter().find(|r| r["candidate"] == c).unwrap()["final_loss_mean"].parse::<f64>().unwrap()
    };
    let names = ["prose", "math", "code"];
    let mut agree = 0;
    for i in 0..3 {
        for k in i + 1..3 {
            let a = loss(&small, names[i]) < loss(&small, names[k]);
            let b = loss(&large, names[i]) < loss(&large, names[k]);
            agree += (a == b) as usize;
        }
    }
    let text = std::fs::read_to_string(out.join("scales.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "valid,scale_a,scale_b,pairs,agree,pairwise_agreement,kendall_tau,same_winner");
    assert_eq!(lines.len(), 2, "{text}");
    let f: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((f[0], f[1], f[2], f[3]), ("math", "16x1", "32x1:tokens=4096", "3"));
    assert_eq!(f[4].parse::<usize>().unwrap(), agree);
    // Without ties, tau = (C - D) / pairs.
    let tau: f64 = f[6].parse().unwrap();
    assert!((tau - (2.0 * agree as f64 - 3.0) / 3.0).abs() < 1e-4, "{tau} vs {agree} of 3");
    // Math data wins on held-out math at both scales.
    let d = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    assert!(d.lines().nth(1).unwrap().starts_with("math,16x1,math,"), "{d}");
    assert!(d.lines().nth(2).unwrap().starts_with("math,32x1:tokens=4096,math,"), "{d}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("math: 16x1 vs 32x1:tokens=4096"), "{stdout}");
    // One scale is no comparison; a bad scale is refused before anything trains.
    let e = String::from_utf8_lossy(&eval(&tmp.path().join("x"), &["--scales", "16x1"], &cands).stderr).to_string();
    assert!(e.contains("at least two scales"), "{e}");
    let e = String::from_utf8_lossy(&eval(&tmp.path().join("x"), &["--scales", "16x1,16"], &cands).stderr).to_string();
    assert!(e.contains("WIDTHxLAYERS"), "{e}");
}
