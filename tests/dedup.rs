//! Duplicates through the command line: `--compat datatrove` removes exactly the rows
//! datatrove 0.10.1 removes (golden output made with datatrove, `fixtures/dedup/make_golden.py`)
//! and computes its normalization, words and signatures; the native mode finds the planted
//! copies of `fixtures/dedup`; the columns agree with each other; spilling, threads and a
//! resumed run change nothing; `select dedup` and a pipeline's `[dedup]` stage leave the removed
//! rows out of everything after them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::util::{fails, fixture, ok, p, parquet_table, read_jsonl, syllabus, syllabus_at, tempdir};

fn golden_removed() -> HashMap<String, String> {
    std::fs::read_to_string(fixture("dedup/datatrove_removed.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let (id, size) = l.split_once('\t').unwrap();
            (id.to_string(), size.to_string())
        })
        .collect()
}

/// Removed rows (id -> dup_count) of a `score dedup` table.
fn removed(t: &HashMap<String, Vec<String>>) -> HashMap<String, String> {
    (0..t["id"].len())
        .filter(|&i| t["dup_keep"][i] == "false")
        .map(|i| (t["id"][i].clone(), t["dup_count"][i].clone()))
        .collect()
}

#[test]
fn compat_datatrove_removes_the_rows_datatrove_removes() {
    let dir = tempdir();
    let out = dir.path().join("dt.parquet");
    let err = ok(&syllabus(&["score", "dedup", "--compat", "datatrove", "--out", &p(&out), &fixture("dedup/lake")]));
    let t = parquet_table(&out);
    let golden = golden_removed();
    assert!(golden.len() > 100, "the golden removes {} rows", golden.len());
    // The same rows, and the same cluster sizes (datatrove's minhash_cluster_size).
    assert_eq!(removed(&t), golden);
    assert!(err.contains(&format!("{} kept", t["id"].len() - golden.len())), "{err}");
    // datatrove keeps its union-find root, not always the cluster's first row: dup_cluster
    // still names the first row.
    let first: HashMap<&str, usize> = t["id"].iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let not_first =
        (0..t["id"].len()).filter(|&i| t["dup_keep"][i] == "true" && t["dup_cluster"][i] != t["id"][i]).count();
    assert!(not_first > 0, "some datatrove cluster keeps a row after its first");
    for i in 0..t["id"].len() {
        assert!(first[t["dup_cluster"][i].as_str()] <= i);
    }
}

#[test]
fn compat_datatrove_normalizes_splits_and_signs_as_datatrove() {
    use syllabus::dedup::datatrove::{simplify, words, Signer};
    use syllabus::dedup::minhash::Scratch;
    use syllabus::dedup::{Compat, DedupSettings, Sign};
    let settings = DedupSettings { compat: Compat::Datatrove, ..Default::default() };
    let signer = Signer::new(&settings).unwrap();
    let vectors = read_jsonl(Path::new(&fixture("dedup/datatrove_vectors.jsonl")));
    assert!(vectors.len() >= 20);
    let mut buf = Scratch::default();
    for v in vectors {
        let text = v["text"].as_str().unwrap();
        let mut norm = String::new();
        simplify(text, &mut buf, &mut norm);
        assert_eq!(norm, v["normalized"].as_str().unwrap(), "{text:?}");
        let mut w = Vec::new();
        words(&norm, &mut w);
        let want: Vec<&str> = v["words"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(w, want, "{text:?}");
        let mut sig = Vec::new();
        let signed = signer.sign(text, "", &mut buf, &mut sig);
        match v["signature"].as_array() {
            None => assert!(!signed, "{text:?} has fewer than 5 words"),
            Some(bands) => {
                let want: Vec<u64> =
                    bands.iter().flat_map(|b| b.as_array().unwrap().iter().map(|x| x.as_u64().unwrap())).collect();
                assert_eq!(sig, want, "{text:?}");
            }
        }
    }
}

/// Every planted exact and case copy is removed, never an original, and no removed row joins
/// another original's cluster (precision 1 on the fixture); overall, at least as many planted
/// copies are found as datatrove finds with the same shingles and bands.
#[test]
fn native_mode_finds_the_planted_copies() {
    let dir = tempdir();
    let out = dir.path().join("d.parquet");
    ok(&syllabus(&["score", "dedup", "-q", "--out", &p(&out), &fixture("dedup/lake")]));
    let t = parquet_table(&out);
    let truth: HashMap<String, (String, String)> = read_jsonl(Path::new(&fixture("dedup/truth.jsonl")))
        .into_iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("id"), (s("origin"), s("kind")))
        })
        .collect();
    let datatrove = golden_removed();
    let (mut found, mut planted, mut by_datatrove) = (0, 0, 0);
    for (i, id) in t["id"].iter().enumerate() {
        let Some((origin, kind)) = truth.get(id) else { continue };
        let removed = t["dup_keep"][i] == "false";
        if kind == "original" {
            assert!(!removed, "{id} is an original, before its copies");
            continue;
        }
        planted += 1;
        found += removed as usize;
        by_datatrove += datatrove.contains_key(id) as usize;
        if matches!(kind.as_str(), "exact" | "case") {
            assert!(removed, "{id} is an {kind} copy of {origin}");
            assert_eq!(&t["dup_exact"][i], origin, "{id}: its normalized text is {origin}'s");
        }
        if removed {
            // The cluster it joined is its original's (through other copies, perhaps).
            let head = &t["dup_cluster"][i];
            assert_eq!(&truth[head].0, origin, "{id} was clustered with {head}");
        }
    }
    // Measured on this fixture: 439 of 700 (datatrove: 426); edits of 1-20% of 100-word
    // documents are mostly below the 0.72 threshold of 14 bands x 8.
    assert!(planted > 600, "{planted} planted copies");
    assert!(found >= by_datatrove, "found {found} of {planted} planted copies, datatrove {by_datatrove}");
}

/// The columns agree: one kept row per cluster, its first in lake order natively; dup_count is
/// the cluster's size; exact copies share a cluster.
#[test]
fn columns_describe_the_same_clusters() {
    let dir = tempdir();
    let out = dir.path().join("d.parquet");
    ok(&syllabus(&["score", "dedup", "-q", "--out", &p(&out), &fixture("dedup/lake")]));
    let t = parquet_table(&out);
    let n = t["id"].len();
    let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, head) in t["dup_cluster"].iter().enumerate() {
        members.entry(head.as_str()).or_default().push(i);
    }
    let at: HashMap<&str, usize> = t["id"].iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    for (head, rows) in &members {
        let kept: Vec<usize> = rows.iter().copied().filter(|&i| t["dup_keep"][i] == "true").collect();
        assert_eq!(kept.len(), 1, "cluster {head}");
        assert_eq!(&t["id"][kept[0]], head, "the first row is kept");
        assert_eq!(rows[0], at[head]);
        for &i in rows {
            assert_eq!(t["dup_count"][i], rows.len().to_string(), "cluster {head}");
        }
    }
    for i in 0..n {
        let e = at[t["dup_exact"][i].as_str()];
        assert!(e <= i);
        assert_eq!(t["dup_cluster"][e], t["dup_cluster"][i], "exact copies share a cluster");
    }
}

/// A lake of `n` generated documents, every tenth a copy of an earlier one.
fn generated_lake(dir: &Path, n: usize) -> std::path::PathBuf {
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"];
    let mut state = 7u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut texts: Vec<String> = Vec::new();
    let mut lines = String::new();
    for i in 0..n {
        let text = if i % 10 == 9 {
            texts[next() % texts.len()].clone()
        } else {
            (0..30).map(|_| words[next() % words.len()]).collect::<Vec<_>>().join(" ")
        };
        lines.push_str(&serde_json::json!({"id": format!("g{i}"), "text": text}).to_string());
        lines.push('\n');
        texts.push(text);
    }
    let path = dir.join("gen.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

#[test]
fn spilling_and_threads_change_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let lake = generated_lake(d, 6000);
    let run = |name: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut args = vec!["score", "dedup"];
        args.extend_from_slice(extra);
        let (o, l) = (p(&out), p(&lake));
        args.extend_from_slice(&["--out", &o, &l]);
        let err = ok(&syllabus(&args));
        (std::fs::read(&out).unwrap(), err)
    };
    let (memory, err) = run("memory.parquet", &["--threads", "2"]);
    assert!(err.contains("0 spilled runs"), "{err}");
    let (spilled, err) = run("spilled.parquet", &["--threads", "2", "--memory-limit", "1MB"]);
    let runs: u64 = err.split(" spilled runs").next().unwrap().rsplit("; ").next().unwrap().parse().unwrap();
    assert!(runs >= 2, "{err}");
    assert_eq!(memory, spilled, "the spilled join finds the same clusters");
    let (one, _) = run("one.parquet", &["--threads", "1"]);
    assert_eq!(memory, one, "one thread or two, the same bytes");
    // datatrove's join sorts whole band values (80-byte records): spilled, the same.
    let (dt_memory, _) = run("dt-memory.parquet", &["--compat", "datatrove"]);
    let (dt_spilled, err) = run("dt-spilled.parquet", &["--compat", "datatrove", "--memory-limit", "1MB"]);
    assert!(!err.contains("; 0 spilled runs"), "{err}");
    assert_eq!(dt_memory, dt_spilled);
    // Every tenth document is a copy: 600 removed (a few generated texts may repeat too).
    let t = parquet_table(&d.join("memory.parquet"));
    let gone = t["dup_keep"].iter().filter(|k| *k == "false").count();
    assert!((600..620).contains(&gone), "{gone} removed");
}

#[test]
fn an_interrupted_run_resumes_with_its_finished_files() {
    let dir = tempdir();
    let d = dir.path();
    let clean = d.join("clean.parquet");
    ok(&syllabus(&["score", "dedup", "--out", &p(&clean), &fixture("dedup/lake")]));
    let out = d.join("resumed.parquet");
    let args = ["score", "dedup", "--out", &p(&out), &fixture("dedup/lake")];
    let crashed = syllabus_at(&args, Some("scored-file-1"));
    assert!(!crashed.status.success());
    assert!(d.join("resumed.parquet.work").is_dir(), "the finished files are kept");
    let err = ok(&syllabus(&args));
    assert!(err.contains("resumed an interrupted run: kept the scores of 2 of 4 files"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());
    assert!(!d.join("resumed.parquet.work").exists());
}

#[test]
fn select_dedup_writes_the_kept_rows_with_all_their_columns() {
    let dir = tempdir();
    let d = dir.path();
    let (out, scores) = (d.join("kept.parquet"), d.join("scores.parquet"));
    ok(&syllabus(&["select", "dedup", "-q", "--out", &p(&out), "--scores-out", &p(&scores), &fixture("lake")]));
    let s = parquet_table(&scores);
    let kept: Vec<String> =
        (0..s["id"].len()).filter(|&i| s["dup_keep"][i] == "true").map(|i| s["id"][i].clone()).collect();
    let t = parquet_table(&out);
    assert_eq!(t["id"], kept, "the kept rows, in lake order");
    assert!(kept.len() < s["id"].len(), "the fixture lake has near duplicates");
    for c in ["text", "domain", "source"] {
        assert!(t.contains_key(c), "{c} is written: {:?}", t.keys());
    }
}

#[test]
fn bad_settings_and_wordless_documents() {
    let dir = tempdir();
    let d = dir.path();
    let lake = d.join("odd.jsonl");
    let rows = [("a", ""), ("b", "   "), ("c", "word"), ("d", "Word"), ("e", "..."), ("f", "")];
    let lines: Vec<String> = rows.iter().map(|(id, t)| serde_json::json!({"id": id, "text": t}).to_string()).collect();
    std::fs::write(&lake, lines.join("\n") + "\n").unwrap();
    let out = d.join("odd.parquet");
    let err = ok(&syllabus(&["score", "dedup", "--out", &p(&out), &p(&lake)]));
    assert!(err.contains("(4 rows without words"), "{err}");
    let t = parquet_table(&out);
    // Empty and blank texts are exact copies of each other; so are "word" and "Word".
    assert_eq!(t["dup_exact"], ["a", "a", "c", "c", "e", "a"]);
    assert_eq!(t["dup_keep"], ["true", "false", "true", "false", "true", "false"]);
    // Settings the command checks end 1; what clap cannot parse ends 2.
    for (flag, value, says, code) in [
        ("--ngram", "0", "ngram must be 1..=64", 1),
        ("--bands", "0", "bands must be 1..=255", 1),
        ("--memory-limit", "10KB", "at least 1MB", 1),
        ("--memory-limit", "lots", "a size in bytes", 2),
    ] {
        let err = fails(&syllabus(&["score", "dedup", flag, value, "--out", &p(&out), &p(&lake)]), code);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    let err = fails(
        &syllabus(&["score", "dedup", "--compat", "datatrove", "--hashes-per-band", "9", "--out", &p(&out), &p(&lake)]),
        1,
    );
    assert!(err.contains("up to 8 per band"), "{err}");
}

/// A pipeline that only removes rows writes the rest as `selected.parquet`, and its bad
/// records once, also when it runs again.
#[test]
fn a_dedup_only_pipeline_writes_the_rest_and_its_rejects_once() {
    let dir = tempdir();
    let d = dir.path();
    let lake = d.join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let good = std::fs::read_to_string(fixture("dedup/lake/part-003.jsonl")).unwrap();
    std::fs::write(lake.join("a.jsonl"), format!("{good}{{not json\n{good}")).unwrap();
    let out = d.join("out");
    let toml = d.join("p.toml");
    std::fs::write(
        &toml,
        format!(
            "name = \"d\"\nout_dir = \"{}\"\n[source]\npaths = [\"{}\"]\non_bad_record = \"skip\"\n[dedup]\n",
            p(&out),
            p(&lake)
        ),
    )
    .unwrap();
    for _ in 0..2 {
        fails(&syllabus(&["run", &p(&toml), "-q"]), 3);
        let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
        assert_eq!(rejects.lines().count(), 1, "{rejects}");
        let kept = parquet_table(&out.join("selected.parquet"));
        let rows = good.lines().count();
        let t = parquet_table(&out.join("dedup.parquet"));
        assert_eq!(t["id"].len(), 2 * rows);
        let keep = t["dup_keep"].iter().filter(|k| *k == "true").count();
        assert_eq!(kept["id"].len(), keep);
        // The second copy of every row is an exact duplicate of the first.
        assert!(t["dup_keep"][rows..].iter().all(|k| k == "false"));
    }
}

/// `pipelines/clean.toml`: decontamination, then dedup, then DSIR; the removed rows reach
/// nothing after them and every count reconciles.
#[test]
fn the_clean_pipeline_removes_rows_before_selection() {
    let dir = tempdir();
    let out = dir.path().join("clean");
    ok(&syllabus(&["run", "pipelines/clean.toml", "--out", &p(&out), "-q"]));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let dedup = &summary["dedup"];
    let removed_here = dedup["removed_exact"].as_u64().unwrap() + dedup["removed_near"].as_u64().unwrap();
    assert!(removed_here > 0, "{dedup}");
    let per_file: u64 = dedup["per_file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["removed_exact"].as_u64().unwrap() + f["removed_near"].as_u64().unwrap())
        .sum();
    assert_eq!(per_file, removed_here);
    let t = parquet_table(&out.join("dedup.parquet"));
    let gone: HashSet<&String> =
        (0..t["id"].len()).filter(|&i| t["dup_keep"][i] == "false").map(|i| &t["id"][i]).collect();
    assert_eq!(gone.len() as u64, removed_here);
    let selected = parquet_table(&out.join("selected.parquet"));
    assert!(selected["id"].iter().all(|id| !gone.contains(id)), "no removed row is selected");
    let scores = parquet_table(&out.join("scores.parquet"));
    assert!(scores["id"].iter().all(|id| !gone.contains(id)), "no removed row is scored");
    // read = kept + rejected + removed, per file of the selection's report.
    for f in summary["report"]["files"].as_array().unwrap() {
        let n = |k: &str| f[k].as_u64().unwrap_or(0);
        assert_eq!(n("read"), n("kept") + n("rejected") + n("removed"), "{f}");
    }
    let removed: u64 =
        summary["report"]["files"].as_array().unwrap().iter().map(|f| f["removed"].as_u64().unwrap_or(0)).sum();
    let decontaminated = summary["decontaminate"]["removed"].as_u64().unwrap();
    assert_eq!(removed, removed_here + decontaminated);
    assert_eq!(scores["id"].len() as u64, 1225 - removed);
}

/// In SQL: `dedup_key` groups the exact copies `score dedup` finds, and `minhash_jaccard`
/// estimates `jaccard` within its binomial bound (112 values: sd = sqrt(J(1-J)/112)).
#[test]
fn sql_finds_the_same_exact_copies_and_explains_similarity() {
    let lake = fixture("dedup/lake");
    let sql = |q: &str| {
        let o = syllabus(&["sql", "-q", "--format", "csv", &lake, "-c", q]);
        ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let dir = tempdir();
    let out = dir.path().join("d.parquet");
    ok(&syllabus(&["score", "dedup", "-q", "--out", &p(&out), &lake]));
    let t = parquet_table(&out);
    let exact_copies = (0..t["id"].len()).filter(|&i| t["dup_exact"][i] != t["id"][i]).count();
    let got = sql(
        "SELECT sum(n) - count(*) FROM (SELECT dedup_key(text) k, count(*) n FROM lake GROUP BY k HAVING count(*) > 1)",
    );
    assert_eq!(got.lines().nth(1).unwrap(), exact_copies.to_string(), "{got}");
    let pairs = sql("SELECT jaccard(a.text, b.text), minhash_jaccard(a.text, b.text), jaccard(a.text, a.text) \
         FROM lake a JOIN lake b ON b.id = a.id || '~edit0'");
    let mut n = 0;
    for line in pairs.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let (j, est, same) = (v[0], v[1], v[2]);
        assert_eq!(same, 1.0);
        let sd = (j * (1.0 - j) / 112.0).sqrt();
        assert!((est - j).abs() <= 4.0 * sd + 1e-9, "estimate {est} of {j}");
        n += 1;
    }
    assert!(n >= 20, "{n} pairs");
}

/// `--min-jaccard`: confirmed clusters are a refinement of the unconfirmed ones (every
/// confirmed link is a candidate link), copies whose signatures agree are still removed, and a
/// threshold of 1 keeps only identical signatures together.
#[test]
fn min_jaccard_confirms_candidates() {
    let dir = tempdir();
    let d = dir.path();
    let lake = fixture("dedup/lake");
    let run = |name: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut args = vec!["score", "dedup", "-q"];
        args.extend_from_slice(extra);
        let o = p(&out);
        args.extend_from_slice(&["--out", &o, &lake]);
        let err = ok(&syllabus(&args));
        (parquet_table(&out), err)
    };
    let (all, _) = run("all.parquet", &[]);
    let (half, err) = run("half.parquet", &["--min-jaccard", "0.5"]);
    let (one, _) = run("one.parquet", &["--min-jaccard", "1"]);
    assert!(err.contains("agreed with none of its group's representatives"), "{err}");
    let removed = |t: &HashMap<String, Vec<String>>| t["dup_keep"].iter().filter(|k| *k == "false").count();
    assert!(removed(&one) < removed(&half) && removed(&half) <= removed(&all));
    for t in [&half, &one] {
        for i in 0..t["id"].len() {
            // A confirmed cluster lies within an unconfirmed one.
            let head = &t["dup_cluster"][i];
            let j = t["id"].iter().position(|x| x == head).unwrap();
            assert_eq!(all["dup_cluster"][i], all["dup_cluster"][j], "{} and {head}", t["id"][i]);
            if t["id"][i].contains("~exact") || t["id"][i].contains("~case") {
                assert_eq!(t["dup_keep"][i], "false", "{}", t["id"][i]);
            }
        }
    }
    let err = fails(&syllabus(&["score", "dedup", "--min-jaccard", "0", "--out", &p(&d.join("x.parquet")), &lake]), 1);
    assert!(err.contains("min_jaccard must be in (0, 1]"), "{err}");
}
