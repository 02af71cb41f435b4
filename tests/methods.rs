//! Every scoring method of the registry (`syllabus::methods::REGISTRY`) is reachable from each
//! surface it claims: `score NAME` and `select NAME` on the command line, `[select] method =
//! "NAME"` in a pipeline (choosing what the command chooses), its SQL function (giving what
//! `score` writes) and `--cluster` (writing what a local run writes). A method added to the
//! registry but left half-wired fails here.

use std::path::Path;

use syllabus::methods::{FitPass, Info, REGISTRY};

use crate::util::*;

const K: &str = "40";

/// What a method needs to fit on the fixtures, as flags.
fn fit_flags(info: &Info) -> Vec<String> {
    match info.fit {
        FitPass::None => Vec::new(),
        FitPass::Model => vec![format!("--{}", info.target_option), target_set(info)],
        FitPass::Target | FitPass::TargetAndLake => {
            vec![format!("--{}", info.target_option.replace('_', "-")), target_set(info)]
        }
    }
}

/// The set a method's fit reads: the math target set, for a benchmark (`--against`) a file
/// the lake holds, so that its rows are contaminated, or the model a classifier applies.
fn target_set(info: &Info) -> String {
    match info.target_option {
        "against" => fixture("lake/prose.jsonl"),
        // A fastText classifier trained on the lake's domains (its first label: docs).
        "model" => fixture("classifier/softmax.bin"),
        _ => fixture("target/math.jsonl"),
    }
}

fn columns(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    b.schema().fields().iter().map(|f| f.name().clone()).collect()
}

fn run(args: &[String]) -> String {
    ok(&syllabus(&args.iter().map(String::as_str).collect::<Vec<_>>()))
}

/// `select NAME` on the command line: its selection, k rows with the ranking column.
fn select_here(info: &Info, dir: &Path) -> std::path::PathBuf {
    let out = dir.join(format!("{}-select.parquet", info.name));
    let mut args: Vec<String> = vec!["select".into(), info.name.into(), "-q".into(), "--k".into(), K.into()];
    args.extend(fit_flags(info));
    args.extend(["--out".into(), p(&out), fixture("lake")]);
    run(&args);
    let t = parquet_table(&out);
    assert_eq!(t["id"].len(), 40, "select {}", info.name);
    assert!(columns(&out).contains(&info.columns[0].to_string()), "select {} writes {}", info.name, info.columns[0]);
    out
}

#[test]
fn every_method_is_reachable_from_the_command_line_a_pipeline_and_sql() {
    assert!(REGISTRY.len() >= 3, "the registry lists the methods");
    let dir = tempdir();
    let d = dir.path();
    let help = |cmd: &str| String::from_utf8(syllabus(&[cmd, "--help"]).stdout).unwrap();
    let (score_help, select_help) = (help("score"), help("select"));
    for info in REGISTRY {
        let name = info.name;
        // The command line: select always; score where the method has scores of its own.
        assert!(select_help.contains(&format!("  {name} ")), "select {name} is listed:\n{select_help}");
        let selected = select_here(info, d);
        let scores = d.join(format!("{name}-score.parquet"));
        let mut args: Vec<String> = vec!["score".into(), name.into(), "-q".into()];
        args.extend(fit_flags(info));
        if info.model_file.is_some() {
            args.extend(["--save-model".into(), p(&d.join(format!("{name}.model")))]);
        }
        args.extend(["--out".into(), p(&scores), fixture("lake")]);
        let o = syllabus(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if info.score_command {
            ok(&o);
            assert!(score_help.contains(&format!("  {name} ")), "score {name} is listed:\n{score_help}");
            let mut want = vec!["id".to_string()];
            want.extend(info.columns.iter().map(|c| c.to_string()));
            assert_eq!(columns(&scores), want, "score {name}'s columns");
        } else {
            fails(&o, 1);
        }

        // A pipeline: the same selection as the command's (same seed, same k).
        let out = d.join(format!("{name}-pipeline"));
        let target = match info.fit {
            FitPass::None => String::new(),
            FitPass::Model => format!("{} = {:?}\n", info.target_option, target_set(info)),
            _ => format!("{} = [{:?}]\n", info.target_option, target_set(info)),
        };
        let toml = format!(
            "name = \"{name}\"\nout_dir = {:?}\n[source]\npaths = [{:?}]\n[select]\nmethod = \"{name}\"\nk = {K}\n{target}",
            p(&out),
            fixture("lake")
        );
        let pipeline = d.join(format!("{name}.toml"));
        std::fs::write(&pipeline, toml).unwrap();
        run(&["run".into(), "-q".into(), p(&pipeline)]);
        assert_eq!(
            parquet_table(&out.join("selected.parquet"))["id"],
            parquet_table(&selected)["id"],
            "[select] method = \"{name}\" chooses what select {name} chooses"
        );
        let mut want = vec!["id".to_string()];
        want.extend(info.columns.iter().map(|c| c.to_string()));
        assert_eq!(columns(&out.join("scores.parquet")), want, "{name}: the pipeline's scores.parquet");
        if let Some(f) = info.model_file {
            assert!(out.join(f).is_file(), "{name}: the pipeline saves its fitted state as {f}");
        }

        // SQL: the function gives, for every row, exactly what `score` wrote.
        if let Some(option) = info.sql {
            let value = match info.model_file {
                Some(_) => p(&d.join(format!("{name}.model"))),
                None => target_set(info),
            };
            let flag = vec![option.to_string(), value];
            let col = info.columns[0];
            let q = format!(
                "SELECT count(*) AS n FROM lake JOIN {t} ON lake.id = {t}.id WHERE {col}(lake.text) = {t}.{col}",
                t = format!("{name}_score")
            );
            let mut args: Vec<String> = vec!["sql".into(), "-q".into(), "--format".into(), "csv".into()];
            args.extend(flag);
            args.extend(["-c".into(), q, fixture("lake"), p(&scores)]);
            let o = syllabus(&args.iter().map(String::as_str).collect::<Vec<_>>());
            ok(&o);
            let csv = String::from_utf8(o.stdout).unwrap();
            assert_eq!(csv.lines().nth(1), Some("1225"), "sql {col}(text) equals score {name}: {csv}");
        }
    }
}

/// `--cluster` runs every method that says it can and writes what a local run writes; the
/// others are refused.
#[cfg(feature = "cluster")]
#[test]
fn every_cluster_method_runs_on_a_cluster_as_it_runs_here() {
    let c = crate::cluster::Cluster::start(&[&[]]);
    let dir = tempdir();
    let d = dir.path();
    for info in REGISTRY {
        let local = select_here(info, d);
        let remote = d.join(format!("{}-cluster.parquet", info.name));
        let mut args: Vec<String> = vec!["select".into(), info.name.into(), "-q".into(), "--k".into(), K.into()];
        args.extend(fit_flags(info));
        args.extend(["--out".into(), p(&remote), fixture("lake"), "--cluster".into(), c.url()]);
        let o = c.syllabus(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if info.cluster {
            ok(&o);
            assert!(
                std::fs::read(&local).unwrap() == std::fs::read(&remote).unwrap(),
                "{}: cluster vs local",
                info.name
            );
        } else {
            assert!(fails(&o, 1).contains("runs on one machine"), "{}", info.name);
        }
    }
}

/// A pipeline's `[select] method` takes exactly the registry's methods, the two rules and the
/// two selections by clusters.
#[test]
fn the_pipeline_knows_exactly_the_registry_and_the_rules() {
    let dir = tempdir();
    let pipeline = dir.path().join("x.toml");
    std::fs::write(
        &pipeline,
        "name = \"x\"\nout_dir = \"o\"\n[source]\npaths = [\"l\"]\n[select]\nmethod = \"nope\"\n",
    )
    .unwrap();
    let e = fails(&syllabus(&["run", &p(&pipeline)]), 1);
    let mut listed: Vec<&str> = e.split('`').skip(3).step_by(2).collect();
    listed.sort();
    let mut want: Vec<&str> =
        REGISTRY.iter().map(|i| i.name).chain(["proxy", "scores", "cluster-balanced", "d4"]).collect();
    want.sort();
    assert_eq!(listed, want, "{e}");
}

/// Moore-Lewis is DSIR's log weight per word, row by row, with DSIR's word counts.
#[test]
fn moore_lewis_is_dsirs_weight_per_word() {
    let dir = tempdir();
    let (dsir, ml) = (dir.path().join("dsir.parquet"), dir.path().join("ml.parquet"));
    let target = fixture("target/math.jsonl");
    ok(&syllabus(&["score", "dsir", "-q", "--target", &target, "--out", &p(&dsir), &fixture("lake")]));
    ok(&syllabus(&["score", "moorelewis", "-q", "--target", &target, "--out", &p(&ml), &fixture("lake")]));
    let (a, b) = (parquet_table(&dsir), parquet_table(&ml));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["n_words"], b["n_words"]);
    let num = |s: &String| s.parse::<f64>().unwrap();
    for i in 0..a["id"].len() {
        let want = num(&a["dsir_logw"][i]) / num(&a["n_words"][i]).max(1.0);
        assert_eq!(num(&b["moore_lewis"][i]), want, "row {i}");
    }
    // Not DSIR's ranking: per word, long documents lose their advantage.
    assert_ne!(a["dsir_logw"], b["moore_lewis"]);
}
