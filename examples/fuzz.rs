//! A mutation fuzzer for syllabus's input parsers (in-tree, on stable Rust): each target takes
//! seed inputs built from the fixtures, mutates them (bit flips, interesting bytes, inserted
//! and deleted ranges, splices, truncation, JSON tokens) and feeds them to the parser the way
//! the commands do. A panic is a finding: the input is saved under `--out` and the run fails.
//! The parsers must also keep their promises: counts reconcile (read = kept + rejected).
//!
//!     cargo run --release --example fuzz -- --seconds 600 [TARGET ...]
//!     make fuzz                               # every target, FUZZ_SECONDS each
//!
//! Targets: jsonl, jsonl-gz, jsonl-zst, parquet, sql-parquet, shard, megatron, manifest,
//! pipeline, report. A run is reproducible from its seed (`--seed`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use syllabus::loader::feedback::{parse_report, Feedback, FeedbackConfig, Rule};
use syllabus::shard::manifest::Manifest;
use syllabus::shard::{megatron, Shard};
use syllabus::source::{BadRecordPolicy, Extras, InputFile, LakeReader, ReadOptions};

const TARGETS: [&str; 10] =
    ["jsonl", "jsonl-gz", "jsonl-zst", "parquet", "sql-parquet", "shard", "megatron", "manifest", "pipeline", "report"];

/// SplitMix64: small, seedable, good enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\u",
    b"\\ud800",
    b"\n",
    b"\r\n",
    b"null",
    b"true",
    b"1e308",
    b"-0",
    b"18446744073709551616",
    b"\"text\"",
    b"\"id\"",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"NaN",
    b"inf",
    b"=",
    b"[[",
    b"]]",
    b"\"step\":",
    b"\"stats\":",
    b"PAR1",
    b"SYLSHARD",
    b"MMIDIDX\x00\x00",
];

fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = v.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                v[i] = [0u8, 0xff, 0x7f, 0x80, 1, b'0', b'9'][rng.below(7)];
            }
            2 => {
                let i = rng.below(n + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(i..i, t.iter().copied());
            }
            3 if n > 0 => {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(64)).min(n);
                v.drain(a..b);
            }
            4 if n > 0 => {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(256)).min(n);
                let chunk = v[a..b].to_vec();
                let at = rng.below(n + 1);
                v.splice(at..at, chunk);
            }
            5 if n > 0 => v.truncate(rng.below(n)),
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let at = rng.below(n + 1);
                    v.splice(at..at, other[a..b].iter().copied());
                }
            }
            7 if n >= 8 => {
                // An integer field set to an extreme (sizes, counts, offsets).
                let i = rng.below(n - 7);
                let x: u64 = [0, 1, u64::MAX, u32::MAX as u64, 1 << 40, 0x7fff_ffff][rng.below(6)];
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
            _ => {
                let i = rng.below(n + 1);
                let b = rng.next() as u8;
                v.insert(i, b);
            }
        }
    }
    v
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)).expect("fixture")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small curriculum (syllabus and Megatron shards) to take seeds from.
fn curriculum(work: &Path) -> PathBuf {
    let out = work.join("curriculum");
    if !out.join("manifest.json").exists() {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/syllabus");
        let bin = std::env::var_os("SYLLABUS_BIN").map(PathBuf::from).unwrap_or(bin);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new(bin)
            .args([
                "-q",
                "curriculum",
                "--tokenizer",
                "fixtures/tokenizer.json",
                "--seq-len",
                "32",
                "--shard-tokens",
                "2048",
            ])
            .args(["--format", "syllabus,megatron", "--out"])
            .arg(&out)
            .arg("fixtures/target/docs.jsonl")
            .current_dir(root)
            .status()
            .expect("run syllabus (set SYLLABUS_BIN)");
        assert!(status.success(), "building the seed curriculum failed");
    }
    out
}

fn small_jsonl() -> Vec<u8> {
    let text = String::from_utf8(fixture("target/docs.jsonl")).unwrap();
    let mut s: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
    s.push_str("{\"id\":7,\"text\":\"caf\\u00e9 \\ud83c\\udf89\",\"meta\":{\"a\":[1,2]},\"n\":null}\n");
    s.into_bytes()
}

fn seeds(target: &str, work: &Path) -> Vec<Vec<u8>> {
    match target {
        "jsonl" => vec![small_jsonl(), b"{\"text\":\"x\"}\n\n{\"text\":\"y\",\"id\":null}".to_vec()],
        "jsonl-gz" => vec![gz(&small_jsonl())],
        "jsonl-zst" => vec![zstd::encode_all(&small_jsonl()[..], 3).unwrap()],
        "parquet" | "sql-parquet" => vec![fixture("lake/docs.parquet"), fixture("digits/test.parquet")],
        "shard" | "megatron" | "manifest" => {
            let c = curriculum(work);
            match target {
                "shard" => vec![std::fs::read(c.join("shards/shard-00000.syl")).unwrap()],
                "megatron" => {
                    let (bin, idx) = (
                        std::fs::read(c.join("megatron/part-00000.bin")).unwrap(),
                        std::fs::read(c.join("megatron/part-00000.idx")).unwrap(),
                    );
                    // bin and idx travel as one input: u32 length of bin, bin, idx.
                    let mut v = (bin.len() as u32).to_le_bytes().to_vec();
                    v.extend(bin);
                    v.extend(idx);
                    vec![v]
                }
                _ => vec![std::fs::read(c.join("manifest.json")).unwrap()],
            }
        }
        "pipeline" => std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect(),
        "report" => vec![
            br#"{"op":"report","step":0,"stats":{"a":[0.5,0.25],"b":[1.5]}}"#.to_vec(),
            br#"{"op":"report","step":3,"stats":{"b":[1e12,-1e12,0.0]}}"#.to_vec(),
        ],
        other => panic!("unknown target {other}"),
    }
}

/// Run one input through a target. Panics are findings; errors are fine.
fn run_one(target: &str, input: &[u8], work: &Path, rt: &tokio::runtime::Runtime) {
    match target {
        "jsonl" | "jsonl-gz" | "jsonl-zst" | "parquet" => {
            let ext = match target {
                "jsonl" => "jsonl",
                "jsonl-gz" => "jsonl.gz",
                "jsonl-zst" => "jsonl.zst",
                _ => "parquet",
            };
            let path = work.join(format!("input.{ext}"));
            std::fs::write(&path, input).unwrap();
            let files = vec![InputFile::new(&path).unwrap()];
            for policy in [BadRecordPolicy::Skip, BadRecordPolicy::Fail] {
                let opts = ReadOptions {
                    on_bad_record: policy,
                    batch_rows: 3,
                    max_record_bytes: 1 << 16,
                    ..Default::default()
                };
                let mut reader = LakeReader::new(&files, &opts, Extras::none(), None);
                let mut rows = 0u64;
                let mut failed = false;
                for b in reader.by_ref() {
                    match b {
                        Ok(b) => rows += b.batch.num_rows() as u64,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                let st = &reader.into_stats()[0];
                if !failed {
                    assert_eq!(st.read, st.kept + st.rejected, "counts reconcile");
                    assert_eq!(st.kept, rows, "every kept row is returned");
                }
                if policy == BadRecordPolicy::Skip && target != "parquet" {
                    assert!(!failed || target != "jsonl", "skip mode reads a plain jsonl file to its end");
                }
            }
            let _ = syllabus::source::inspect_file(&files[0], &ReadOptions::default());
        }
        "sql-parquet" => {
            let path = work.join("t.parquet");
            std::fs::write(&path, input).unwrap();
            let opts = syllabus::sql::SqlOptions {
                paths: vec![path],
                dsir_model: None,
                zipfit_target: Vec::new(),
                memory_limit_mb: 64,
                ..Default::default()
            };
            rt.block_on(async {
                if let Ok(s) = syllabus::sql::Session::new(&opts).await {
                    let mut out =
                        syllabus::sql::Output::new(syllabus::sql::SqlFormat::Csv, Some(&work.join("q.csv"))).unwrap();
                    let _ = s.run("select count(*), max(id) from t", &mut out).await;
                }
            });
        }
        "shard" => {
            if let Ok(s) = Shard::decode(input) {
                let _ = s.doc_token_stream().count();
                let _ = s.padding_tokens();
                assert_eq!(Shard::decode(&s.encode()).unwrap(), s, "a decoded shard encodes to the same shard");
            }
        }
        "megatron" => {
            if input.len() >= 4 {
                let n = (u32::from_le_bytes(input[..4].try_into().unwrap()) as usize).min(input.len() - 4);
                let _ = megatron::decode(&input[4..4 + n], &input[4 + n..]);
            }
        }
        "manifest" => {
            let c = curriculum(work.parent().expect("work lies under --out"));
            let d = work.join("m");
            if !d.exists() {
                std::fs::create_dir_all(&d).unwrap();
                for sub in ["shards", "megatron"] {
                    std::os::unix::fs::symlink(c.join(sub), d.join(sub)).unwrap();
                }
            }
            std::fs::write(d.join("manifest.json"), input).unwrap();
            let _ = Manifest::load(&d);
            let _ = syllabus::shard::verify::verify(&d);
        }
        "pipeline" => {
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = syllabus::config::PipelineConfig::from_toml(text, Path::new("fuzz.toml"));
            }
        }
        "report" => {
            let cfg = FeedbackConfig { rule: Rule::Dump, every: 1, lag: 0, ..Default::default() };
            let mut f = Feedback::new(cfg, vec!["a".into(), "b".into()], &[0.5, 0.5]).unwrap();
            let domains: Vec<u16> = (0..64).map(|i| (i % 2) as u16).collect();
            let mut plan = vec![0u64; 64];
            f.hello(4).unwrap();
            f.extend(&domains, &mut plan);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(input) {
                if let Ok((step, report)) = parse_report(&v) {
                    let mut none =
                        |_: u64| -> syllabus::Result<Option<syllabus::loader::feedback::Decision>> { Ok(None) };
                    if let Ok((d, _)) = f.report(step.min(3), report, &domains, &mut plan, &mut none) {
                        assert!(d.mixture.values().all(|p| p.is_finite() && *p >= 0.0), "a finite mixture");
                    }
                }
            }
        }
        other => panic!("unknown target {other}"),
    }
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let mut out = PathBuf::from("target/fuzz");
    let mut targets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N"),
            "--out" => out = PathBuf::from(args.next().expect("--out DIR")),
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => panic!("unknown argument {other} (targets: {})", TARGETS.join(", ")),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    std::fs::create_dir_all(&out).unwrap();
    // Findings are reported once, by the harness, with the input saved.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut findings = 0;
    for target in &targets {
        let work = out.join(format!("work-{target}"));
        std::fs::create_dir_all(&work).unwrap();
        let corpus = seeds(target, &out);
        let mut pool: Vec<Vec<u8>> = corpus.clone();
        let mut rng = Rng(seed ^ xxhash_rust::xxh3::xxh3_64(target.as_bytes()));
        let start = Instant::now();
        let mut runs = 0u64;
        let mut target_findings = 0;
        while start.elapsed() < Duration::from_secs(seconds) {
            let base = pool[rng.below(pool.len())].clone();
            let input = if runs < corpus.len() as u64 { base } else { mutate(&mut rng, &base, &corpus) };
            // The input being run, for a finding that kills the process (an abort).
            std::fs::write(out.join(format!("current-{target}.bin")), &input).unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(target, &input, &work, &rt)));
            runs += 1;
            match r {
                Ok(()) => {
                    // Keep some mutants as bases, so mutations compound.
                    if pool.len() < 256 && rng.below(16) == 0 {
                        pool.push(input);
                    } else if rng.below(64) == 0 {
                        let i = rng.below(pool.len());
                        pool[i] = input;
                    }
                }
                Err(p) => {
                    let msg = syllabus::error::panic_message(p.as_ref());
                    let file = out.join(format!("crash-{target}-{runs}.bin"));
                    std::fs::write(&file, &input).unwrap();
                    eprintln!("fuzz {target}: PANIC after {runs} runs: {msg} (input saved to {})", file.display());
                    target_findings += 1;
                    if target_findings >= 5 {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(out.join(format!("current-{target}.bin")));
        println!(
            "fuzz {target}: {runs} inputs in {:.0} s ({:.0}/s), {target_findings} findings",
            start.elapsed().as_secs_f64(),
            runs as f64 / start.elapsed().as_secs_f64().max(1e-9)
        );
        findings += target_findings;
    }
    if findings > 0 {
        eprintln!("fuzz: {findings} findings");
        std::process::exit(1);
    }
}
