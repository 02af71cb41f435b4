//! `syllabus sql`: the saved queries in sql/ against their golden outputs, scorer functions,
//! formats, errors. `SYLLABUS_BLESS=1 cargo test --release --test tests sql::` rewrites the
//! golden files (sql/expected/) from the current outputs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::util::*;

/// The outputs the saved queries read, made once per test binary.
fn outputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempdir().keep();
        for name in ["quickstart", "domain_upsampling", "clean", "clusters"] {
            let cfg = format!("pipelines/{name}.toml");
            ok(&syllabus(&["run", &cfg, "--out", &p(&dir.join(name)), "-q"]));
        }
        dir
    })
}

/// The command a saved query documents (`--   syllabus sql out/NAME ... -f sql/FILE`), with
/// `out/` pointing at this test's outputs.
fn documented_args(sql: &str) -> Vec<String> {
    let line = sql
        .lines()
        .find(|l| l.trim_start_matches('-').trim().starts_with("syllabus sql"))
        .expect("a documented command");
    let words: Vec<&str> = line.trim_start_matches('-').split_whitespace().skip(2).collect();
    words
        .iter()
        .map(|w| match w.strip_prefix("out/") {
            Some(rest) => p(&outputs().join(rest)),
            None => w.to_string(),
        })
        .collect()
}

#[test]
fn saved_queries_match_their_golden_outputs() {
    let bless = std::env::var_os("SYLLABUS_BLESS").is_some();
    let mut checked = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("sql")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
        let sql = std::fs::read_to_string(f).unwrap();
        let mut args = vec!["sql".to_string()];
        args.extend(documented_args(&sql));
        args.extend(["--format".into(), "csv".into(), "-q".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = syllabus(&args);
        ok(&o);
        let got = String::from_utf8(o.stdout).unwrap();
        let golden = root().join("sql/expected").join(f.file_stem().unwrap()).with_extension("csv");
        if bless {
            std::fs::write(&golden, &got).unwrap();
        } else {
            let want =
                std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("{} missing: bless it", golden.display()));
            assert_eq!(got, want, "{} differs from {}", f.display(), golden.display());
        }
        checked += 1;
    }
    assert!(checked >= 4, "saved queries: {checked}");
}

#[test]
fn errors_name_the_problem_and_list_the_tables() {
    let qs = p(&outputs().join("quickstart"));
    let err = fails(&syllabus(&["sql", &qs, "-c", "select * from selectd"]), 1);
    assert!(err.contains("selectd") && err.contains("not found"), "{err}");
    assert!(err.contains("tables: curriculum, phases, rejects, scores, selected, sequences, shards"), "{err}");
    let err = fails(&syllabus(&["sql", &qs, "-c", "selec id from selected"]), 1);
    assert!(err.contains("selec"), "{err}");
    let err = fails(&syllabus(&["sql", "no/such/dir", "-c", "select 1"]), 1);
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn scorer_functions_agree_with_the_commands() {
    let qs = outputs().join("quickstart");
    // dsir_logw(text) with the run's model gives the scores the run wrote, to the bit.
    let o = syllabus(&[
        "sql", &p(&qs), "fixtures/lake", "--format", "csv", "-q", "-c",
        "select count(*) as n, max(abs(dsir_logw(l.text) - s.dsir_logw)) as diff, sum(case when n_words(l.text) = s.n_words then 1 else 0 end) as same_words \
         from lake l join scores s on l.id = s.id",
    ]);
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n,diff,same_words\n1225,0.0,1225\n");
    // zipfit(text) against `syllabus score zipfit`.
    let dir = tempdir();
    let z = dir.path().join("z.parquet");
    ok(&syllabus(&[
        "score",
        "zipfit",
        "--target",
        "fixtures/target/docs.jsonl",
        "--out",
        &p(&z),
        "-q",
        "fixtures/target/math.jsonl",
    ]));
    let o = syllabus(&[
        "sql", &p(&z), "fixtures/target/math.jsonl", "--zipfit-target", "fixtures/target/docs.jsonl", "--format", "csv", "-q", "-c",
        "select count(*) as n, max(abs(zipfit(m.text) - z.zipfit)) as diff, min(ncd(m.text, m.text)) >= 0 as ncd_ok from math m join z on m.id = z.id",
    ]);
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n,diff,ncd_ok\n115,0.0,true\n");
}

#[test]
fn formats_scripts_and_external_tables() {
    let qs = p(&outputs().join("quickstart"));
    let dir = tempdir();
    // Parquet output, then read back as a table of its own.
    let out = dir.path().join("top.parquet");
    ok(&syllabus(&[
        "sql",
        &qs,
        "--format",
        "parquet",
        "-o",
        &p(&out),
        "-c",
        "select id, dsir_logw from selected order by dsir_logw desc limit 7",
    ]));
    let o = syllabus(&["sql", &p(&out), "--format", "json", "-c", "select count(*) as n from top"]);
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), "{\"n\":7}");
    // A script on stdin, with \d and a CREATE EXTERNAL TABLE.
    let script = format!(
        "\\d\nCREATE EXTERNAL TABLE picked STORED AS PARQUET LOCATION '{}';\nselect count(*) as n\n  from picked;\n\\d picked\n",
        p(&outputs().join("quickstart/selected.parquet"))
    );
    let o = syllabus_stdin(&["sql", &qs, "--format", "csv"], Some(script.as_bytes()));
    ok(&o);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("sequences") && text.contains("n\n300\n") && text.contains("dsir_logw"), "{text}");
}

#[test]
fn large_sorts_spill_instead_of_failing() {
    // A full sort of 4 M rows (32 MB of values) with 20 MiB for operators: DataFusion spills
    // sorted runs to disk and merges them; the window over the sorted rows sees them in order.
    let o = syllabus(&[
        "sql", "--memory-limit-mb", "20", "--format", "csv", "-q", "-c",
        "select count(*) as n, sum(case when v < prev then 1 else 0 end) as out_of_order, max(v) as top \
         from (select v, lag(v) over (order by v) as prev from (select value % 1000003 as v from generate_series(1, 4000000)))",
    ]);
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n,out_of_order,top\n4000000,0,1000002\n");
}

/// jsonl tables learn their columns from a sample: a field that first appears after it is
/// named in a warning and is a column from the next statement on; `--schema-sample-rows 0`
/// reads every row first.
#[test]
fn a_field_after_the_schema_sample_widens_the_table() {
    let dir = tempdir();
    let lake = dir.path().join("late.jsonl");
    let rows: String = (0..3000)
        .map(|i| {
            let late = if i == 2500 { ",\"late\":\"here\"" } else { "" };
            format!("{{\"id\":\"d{i}\",\"text\":\"t{i}\"{late}}}\n")
        })
        .collect();
    std::fs::write(&lake, rows).unwrap();
    let two = syllabus(&[
        "sql",
        "-q",
        "--format",
        "csv",
        &p(&lake),
        "-c",
        "select count(*) from late; select count(late) from late",
    ]);
    let err = ok(&two);
    assert!(err.contains("late.jsonl: field \"late\" is not in table late"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&two.stdout).lines().collect::<Vec<_>>(),
        ["count(*)", "3000", "count(late.late)", "1"]
    );
    let all = syllabus(&[
        "sql",
        "-q",
        "--format",
        "csv",
        "--schema-sample-rows",
        "0",
        &p(&lake),
        "-c",
        "select count(late) from late",
    ]);
    assert!(!ok(&all).contains("warning"));
    assert_eq!(String::from_utf8_lossy(&all.stdout).lines().nth(1), Some("1"));
}
