//! Resumable scoring commands: a `score` or `select` run killed part way and started again
//! keeps the files it finished (fit counts, score rows, counts, rejects) and ends with the
//! same bytes as an uninterrupted run.

use std::path::Path;

use crate::util::*;

/// `select dsir` (fit and scores) or `score zipfit` over the mixed lake, writing into `dir`.
fn command(kind: &str, lake: &Path, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = match kind {
        "select dsir" => {
            ["select", "dsir", "--target", "fixtures/target/math.jsonl", "--k", "100"].map(String::from).to_vec()
        }
        _ => ["score", "zipfit", "--target", "fixtures/target/math.jsonl", "--fast"].map(String::from).to_vec(),
    };
    args.extend(["--on-bad-record", "skip", "--batch-rows", "40"].map(String::from));
    args.extend(["--rejects".into(), p(&dir.join("rejects.jsonl")), "--out".into(), p(&dir.join("out.parquet"))]);
    if kind == "select dsir" {
        args.extend(["--scores-out".into(), p(&dir.join("scores.parquet"))]);
    }
    args.push(p(lake));
    args
}

fn run(args: &[String], failpoint: Option<&str>) -> std::process::Output {
    syllabus_at(&args.iter().map(String::as_str).collect::<Vec<_>>(), failpoint)
}

fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn scoring_commands_resume_at_the_file_they_were_on() {
    let tmp = tempdir();
    let lake = mixed_lake(tmp.path());
    // Files: code.jsonl.zst, docs.parquet, e-bad.jsonl (6 rejects), math.jsonl.gz, prose.jsonl.
    let cases = [
        ("select dsir", "fit-file-2", "kept the target set, the fit of 1 file, the scores of 0 of 5 files"),
        ("select dsir", "scored-file-2", "kept the target set, the fitted model, the scores of 3 of 5 files"),
        ("score zipfit", "scored-file-3", "kept the target set, the scores of 4 of 5 files"),
    ];
    for (i, (kind, point, resumed)) in cases.into_iter().enumerate() {
        let clean = tmp.path().join(format!("clean-{i}"));
        std::fs::create_dir_all(&clean).unwrap();
        fails(&run(&command(kind, &lake, &clean), None), 3);

        let dir = tmp.path().join(format!("killed-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let args = command(kind, &lake, &dir);
        let crashed = run(&args, Some(point));
        assert!(!crashed.status.success(), "{kind} at {point}: the run should have aborted");
        let work = dir.join("out.parquet.work");
        assert!(work.join("KEY").exists() && !dir.join("out.parquet").exists());
        let err = fails(&run(&args, None), 3);
        assert!(err.contains(resumed), "{kind} at {point}: {err}");
        assert!(!work.exists(), "the work directory is removed once the output is written");
        assert_eq!(outputs(&dir), outputs(&clean), "{kind} at {point}");
    }
}

#[test]
fn a_resumed_scoring_run_does_not_read_finished_files_again() {
    let tmp = tempdir();
    let lake = mixed_lake(tmp.path());
    let args = command("select dsir", &lake, tmp.path());
    assert!(!run(&args, Some("scored-file-2")).status.success());
    // Mark the kept counts of the first file: a run that read it again would report 330 rows.
    let marker = tmp.path().join("out.parquet.work/score/file-000000.json");
    let mut done: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_eq!(done["stats"]["read"], 330);
    done["stats"]["read"] = 777.into();
    std::fs::write(&marker, done.to_string()).unwrap();
    let err = fails(&run(&args, None), 3);
    let line = err.lines().find(|l| l.contains("code.jsonl.zst")).unwrap();
    assert!(line.split_whitespace().nth(2) == Some("777"), "{line}");
}

#[test]
fn a_changed_input_starts_the_work_over() {
    let tmp = tempdir();
    let lake = mixed_lake(tmp.path());
    let args = command("score zipfit", &lake, tmp.path());
    assert!(!run(&args, Some("scored-file-1")).status.success());
    // Another size: the kept work belongs to other inputs.
    let f = lake.join("prose.jsonl");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("{\"id\":\"new\",\"text\":\"one more document\"}\n");
    std::fs::write(&f, text).unwrap();
    let err = fails(&run(&args, None), 3);
    assert!(!err.contains("resumed"), "{err}");
    assert!(err.contains("347"), "the new row is read: {err}");
}

#[test]
fn a_damaged_work_directory_is_an_error_not_a_wrong_result() {
    let tmp = tempdir();
    let lake = mixed_lake(tmp.path());
    let args = command("select dsir", &lake, tmp.path());
    assert!(!run(&args, Some("scored-file-2")).status.success());
    std::fs::remove_file(tmp.path().join("out.parquet.work/score/file-000001.arrow")).unwrap();
    let err = fails(&run(&args, None), 1);
    assert!(
        err.contains("file-000001.arrow: 0 rows kept for") && err.contains("docs.parquet, its counts say 269"),
        "{err}"
    );
    assert!(!tmp.path().join("out.parquet").exists());
}

/// Proxy-model scores keep each finished seed: a run killed after its second of three seeds
/// trains only the third when started again, and writes the same bytes.
#[test]
fn proxy_scores_resume_at_the_seed_they_were_on() {
    let tmp = tempdir();
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = [
            "score",
            "el2n",
            "--proxy",
            "mlp",
            "--features",
            "pixels",
            "--label",
            "label",
            "--epochs",
            "2",
            "--seeds",
            "3",
        ]
        .map(String::from)
        .to_vec();
        a.extend(["--out".into(), p(out), fixture("digits/train.parquet")]);
        a
    };
    let trained = |err: &str| -> u64 {
        let rest = err.split("trained on ").nth(1).expect("a training summary");
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let clean = tmp.path().join("clean.parquet");
    let all = trained(&ok(&run(&args(&clean), None)));
    let out = tmp.path().join("out.parquet");
    assert!(!run(&args(&out), Some("proxy-seed-1")).status.success());
    assert_eq!(
        std::fs::read_dir(tmp.path().join("out.parquet.work"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("seed-"))
            .count(),
        2
    );
    let err = ok(&run(&args(&out), None));
    assert!(err.contains("kept the scores of 2 of 3 seeds"), "{err}");
    assert_eq!(trained(&err) * 3, all, "only the third seed was trained: {err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());
    assert!(!tmp.path().join("out.parquet.work").exists());
}

#[test]
fn a_directory_that_is_not_a_work_directory_is_never_removed() {
    let tmp = tempdir();
    let mine = tmp.path().join("out.parquet.work");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let args = command("score zipfit", &mixed_lake(tmp.path()), tmp.path());
    let err = fails(&run(&args, None), 1);
    assert!(err.contains("is not a syllabus work directory"), "{err}");
    assert_eq!(std::fs::read_to_string(mine.join("notes.txt")).unwrap(), "mine");
}
