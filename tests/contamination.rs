//! Benchmark contamination through the command line: `score contamination` finds the lake
//! documents a benchmark's items were cut from, names the item, counts the items too short to
//! match; `select --scores ... --by contam_ngrams --below 1` drops them; bad benchmarks are
//! clear errors; the output does not depend on the thread count.

use crate::util::{fails, fixture, ok, p, parquet_table, read_jsonl, syllabus, tempdir};

/// A benchmark cut from the lake's prose: the whole of document 3, 20 words from the middle of
/// document 10, a 9-word item (matched whole) from document 20, and an item too short to match.
fn benchmark(dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>, usize) {
    let lake = read_jsonl(&std::path::PathBuf::from(fixture("lake/prose.jsonl")));
    let words = |i: usize| -> Vec<String> {
        lake[i]["text"].as_str().unwrap().split_whitespace().map(String::from).collect::<Vec<_>>()
    };
    let long = words(10);
    assert!(long.len() > 40, "document 10 is long enough to cut 20 words from");
    let nine = words(20);
    assert!(nine.len() >= 9);
    let items = [
        ("whole", lake[3]["text"].as_str().unwrap().to_string()),
        ("middle", long[10..30].join(" ")),
        ("nine", nine[..9].join(" ")),
        ("short", "far too short".to_string()),
    ];
    let path = dir.join("bench.jsonl");
    let lines: Vec<String> =
        items.iter().map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let ids = [3, 10, 20].iter().map(|&i| lake[i]["id"].as_str().unwrap().to_string()).collect();
    // The middle item's words as Python's `\w+` counts them (the prose is ASCII).
    assert!(items[1].1.is_ascii());
    let w = items[1].1.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|s| !s.is_empty()).count();
    (path, ids, w)
}

#[test]
fn score_contamination_finds_what_the_benchmark_was_cut_from_and_select_drops_it() {
    let dir = tempdir();
    let d = dir.path();
    let (bench, cut_from, middle_words) = benchmark(d);
    let out = d.join("contam.parquet");
    let o = syllabus(&["score", "contamination", "-q", "--against", &p(&bench), "--out", &p(&out), &fixture("lake")]);
    let err = ok(&o);
    assert!(err.contains("1 of the benchmark's 4 items have fewer than 8 words"), "{err}");
    let t = parquet_table(&out);
    assert_eq!(t.keys().count(), 4, "{:?}", t.keys());
    assert_eq!(t["id"].len(), 1225);
    let row = |id: &str| t["id"].iter().position(|x| x == id).unwrap();
    let (whole, middle, nine) = (row(&cut_from[0]), row(&cut_from[1]), row(&cut_from[2]));
    assert_eq!(t["contam_item"][whole], "whole");
    assert_eq!(t["contam_frac"][whole], "1.0", "every 13-gram of the document is the item's");
    assert_eq!(t["contam_item"][middle], "middle");
    // Each of the item's 13-grams starts one matching position of the document.
    assert_eq!(t["contam_ngrams"][middle], (middle_words - 12).to_string(), "{middle_words} words");
    assert_eq!(t["contam_item"][nine], "nine");
    assert!(t["contam_ngrams"][nine].parse::<i64>().unwrap() >= 1);
    let contaminated: Vec<usize> = (0..1225).filter(|&i| t["contam_ngrams"][i] != "0").collect();
    for &i in &contaminated {
        assert!(!t["contam_item"][i].is_empty() && t["contam_frac"][i] != "0.0");
    }
    for i in (0..1225).filter(|i| !contaminated.contains(i)) {
        assert_eq!((t["contam_item"][i].as_str(), t["contam_frac"][i].as_str()), ("", "0.0"));
    }

    // Drop every row that matches the benchmark.
    let clean = d.join("clean.parquet");
    ok(&syllabus(&[
        "select",
        "--scores",
        &p(&out),
        "--by",
        "contam_ngrams",
        "--below",
        "1",
        "--out",
        &p(&clean),
        &fixture("lake"),
    ]));
    let kept = parquet_table(&clean)["id"].clone();
    assert_eq!(kept.len(), 1225 - contaminated.len());
    assert!(cut_from.iter().all(|id| !kept.contains(id)));

    // `select contamination`: the most contaminated rows, the whole-document item first.
    let top = d.join("top.parquet");
    ok(&syllabus(&[
        "select",
        "contamination",
        "-q",
        "--against",
        &p(&bench),
        "--k",
        "100",
        "--out",
        &p(&top),
        &fixture("lake"),
    ]));
    assert_eq!(parquet_table(&top)["id"].len(), contaminated.len(), "only rows with a match are selected");

    // Threads do not change a byte.
    let one = d.join("one.parquet");
    ok(&syllabus(&[
        "score",
        "contamination",
        "-q",
        "--threads",
        "1",
        "--against",
        &p(&bench),
        "--out",
        &p(&one),
        &fixture("lake"),
    ]));
    assert!(std::fs::read(&one).unwrap() == std::fs::read(&out).unwrap());
}

#[test]
fn a_benchmark_that_cannot_match_is_a_clear_error() {
    let dir = tempdir();
    let d = dir.path();
    let out = d.join("c.parquet");
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let short = d.join("short.jsonl");
    std::fs::write(&short, "{\"id\": \"a\", \"text\": \"two words\"}\n{\"id\": \"b\", \"text\": \"...\"}\n").unwrap();
    for (bench, want) in [(&empty, "has no items"), (&short, "no item of the benchmark (--against) has 8 words")] {
        let o =
            syllabus(&["score", "contamination", "-q", "--against", &p(bench), "--out", &p(&out), &fixture("lake")]);
        let err = fails(&o, 1);
        assert!(err.contains(want), "{err}");
        assert!(!out.exists());
    }
    let o = syllabus(&[
        "score",
        "contamination",
        "--against",
        &p(&short),
        "--ngram",
        "5",
        "--min-item-words",
        "6",
        "--out",
        &p(&out),
        &fixture("lake"),
    ]);
    assert!(fails(&o, 1).contains("--min-item-words 6: must be between 1 and --ngram (5)"));
}
