//! `score cluster`, `select cluster-balanced` and `select d4` through the command line.

use std::collections::HashMap;

use crate::util::{fails, fixture, ok, p, parquet_table, syllabus, syllabus_at, tempdir};

fn column<T: std::str::FromStr>(t: &HashMap<String, Vec<String>>, c: &str) -> Vec<Option<T>> {
    t[c].iter().map(|v| v.parse().ok()).collect()
}

#[test]
fn clusters_ranks_and_saved_models() {
    let dir = tempdir();
    let d = dir.path();
    let (out, model) = (d.join("c.parquet"), d.join("m.bin"));
    let err = ok(&syllabus(&[
        "score",
        "cluster",
        "--k",
        "4",
        "--threads",
        "2",
        "--out",
        &p(&out),
        "--save-model",
        &p(&model),
        &fixture("lake"),
    ]));
    assert!(err.contains("4 clusters: sizes"), "{err}");
    let t = parquet_table(&out);
    let cluster: Vec<Option<i64>> = column(&t, "cluster");
    let dist: Vec<Option<f64>> = column(&t, "cluster_dist");
    let rank: Vec<Option<i64>> = column(&t, "cluster_rank");
    assert_eq!(cluster.len(), 1225);
    // Ranks are 1..=size within each cluster, in order of distance (ties by row).
    let mut by_cluster: HashMap<i64, Vec<(f64, usize, i64)>> = HashMap::new();
    for i in 0..cluster.len() {
        let c = cluster[i].expect("every fixture row has words");
        assert!((0..4).contains(&c));
        by_cluster.entry(c).or_default().push((dist[i].unwrap(), i, rank[i].unwrap()));
    }
    assert_eq!(by_cluster.len(), 4, "no empty cluster on four domains");
    for rows in by_cluster.values_mut() {
        rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let ranks: Vec<i64> = rows.iter().map(|r| r.2).collect();
        assert_eq!(ranks, (1..=rows.len() as i64).collect::<Vec<_>>());
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.0)));
    }
    // The math documents (a domain of their own) share one cluster.
    let math: Vec<i64> =
        (0..cluster.len()).filter(|&i| t["id"][i].starts_with("math")).map(|i| cluster[i].unwrap()).collect();
    let most = math.iter().filter(|&&c| c == math[0]).count();
    assert!(most * 10 >= math.len() * 9, "{most} of {} math rows in one cluster", math.len());

    // One thread: the same bytes. The saved model assigns the same clusters and distances.
    let one = d.join("one.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "4", "--threads", "1", "--out", &p(&one), &fixture("lake")]));
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&out).unwrap());
    let again = d.join("again.parquet");
    ok(&syllabus(&["score", "cluster", "--model", &p(&model), "--out", &p(&again), &fixture("lake")]));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
    // The reader's batch size decides nothing: mini-batches are runs of rows in lake order.
    let small = d.join("small.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "4", "--batch-rows", "77", "--out", &p(&small), &fixture("lake")]));
    assert_eq!(std::fs::read(&small).unwrap(), std::fs::read(&out).unwrap());
    // Another seed is another fit.
    let other = d.join("other.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "4", "--seed", "9", "--out", &p(&other), &fixture("lake")]));
    assert_ne!(std::fs::read(&other).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn an_interrupted_clustering_keeps_its_model_and_finished_files() {
    let dir = tempdir();
    let d = dir.path();
    let clean = d.join("clean.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "3", "--out", &p(&clean), &fixture("lake")]));
    let out = d.join("resumed.parquet");
    let args = ["score", "cluster", "--k", "3", "--out", &p(&out), &fixture("lake")];
    assert!(!syllabus_at(&args, Some("scored-file-1")).status.success());
    assert!(d.join("resumed.parquet.work/kmeans_model.bin").exists(), "the fitted model is kept");
    let err = ok(&syllabus(&args));
    assert!(err.contains("kept the k-means model an interrupted run fitted"), "{err}");
    assert!(err.contains("resumed an interrupted run: kept the scores of 2 of 4 files"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());

    // Killed inside the fit, after its second pass: the resumed fit reads the lake for the
    // third pass only, and ends with the same model and the same table.
    let out = d.join("mid-fit.parquet");
    let args = ["score", "cluster", "--k", "3", "--out", &p(&out), &fixture("lake")];
    assert!(!syllabus_at(&args, Some("kmeans-pass-2")).status.success());
    assert!(d.join("mid-fit.parquet.work/kmeans_fit.state").exists());
    assert!(!d.join("mid-fit.parquet.work/kmeans_model.bin").exists());
    let err = ok(&syllabus(&args));
    assert!(err.contains("the k-means fit resumes after 2 of 3 passes"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());
}

#[test]
fn bad_settings_and_wordless_documents() {
    let dir = tempdir();
    let d = dir.path();
    let lake = d.join("odd.jsonl");
    let texts = ["", "alpha beta gamma", "   ", "delta epsilon", "alpha beta", "zeta eta theta"];
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("r{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(&lake, lines.join("\n") + "\n").unwrap();
    let out = d.join("c.parquet");
    let err = fails(&syllabus(&["score", "cluster", "--k", "5", "--out", &p(&out), &p(&lake)]), 1);
    assert!(err.contains("k = 5 clusters, but the lake has 4 documents with words"), "{err}");
    let err = fails(&syllabus(&["score", "cluster", "--out", &p(&out), &p(&lake)]), 1);
    assert!(err.contains("--k"), "{err}");
    let err = fails(&syllabus(&["score", "cluster", "--k", "2", "--passes", "0", "--out", &p(&out), &p(&lake)]), 1);
    assert!(err.contains("passes must be at least 1"), "{err}");
    // Copies of two texts cannot make three clusters.
    let copies = d.join("copies.jsonl");
    let lines: Vec<String> = (0..30)
        .map(|i| {
            let text = ["one two three four", "five six seven"][i % 2];
            serde_json::json!({"id": format!("c{i}"), "text": text}).to_string()
        })
        .collect();
    std::fs::write(&copies, lines.join("\n") + "\n").unwrap();
    let err = fails(&syllabus(&["score", "cluster", "--k", "3", "--out", &p(&out), &p(&copies)]), 1);
    assert!(err.contains("only 2 distinct vectors"), "{err}");
    let bad_model = d.join("bad.bin");
    std::fs::write(&bad_model, b"SYLKMEANS\x01\x00\x00\x00garbage").unwrap();
    let err = fails(&syllabus(&["score", "cluster", "--model", &p(&bad_model), "--out", &p(&out), &p(&lake)]), 1);
    assert!(err.contains("bad.bin: not a syllabus k-means model"), "{err}");

    let err = ok(&syllabus(&["score", "cluster", "--k", "2", "--out", &p(&out), &p(&lake)]));
    assert!(err.contains("2 rows without words (no cluster)"), "{err}");
    let t = parquet_table(&out);
    let cluster: Vec<Option<i64>> = column(&t, "cluster");
    let rank: Vec<Option<i64>> = column(&t, "cluster_rank");
    assert_eq!(cluster[0], None);
    assert_eq!(cluster[2], None);
    assert_eq!(rank[2], None);
    assert!(cluster.iter().enumerate().all(|(i, c)| c.is_some() != [0, 2].contains(&i)));
}

#[test]
fn balanced_and_d4_selections() {
    let dir = tempdir();
    let d = dir.path();
    let clusters = d.join("c.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "4", "--out", &p(&clusters), &fixture("lake")]));
    let t = parquet_table(&clusters);
    let cluster_of: HashMap<String, i64> =
        t["id"].iter().zip(&t["cluster"]).map(|(id, c)| (id.clone(), c.parse().unwrap())).collect();
    let mut sizes = [0u64; 4];
    cluster_of.values().for_each(|&c| sizes[c as usize] += 1);

    // Equal budgets: 100 rows, at most a quarter from each cluster unless it is smaller.
    let out = d.join("balanced.parquet");
    let err = ok(&syllabus(&[
        "select",
        "cluster-balanced",
        "--clusters",
        &p(&clusters),
        "--k",
        "100",
        "--out",
        &p(&out),
        &fixture("lake"),
    ]));
    assert!(err.contains("budgets: 100 rows over 4 of 4 clusters"), "{err}");
    let s = parquet_table(&out);
    assert_eq!(s["id"].len(), 100);
    let mut got = [0u64; 4];
    s["id"].iter().for_each(|id| got[cluster_of[id] as usize] += 1);
    let b: Vec<u64> = {
        let mut small: Vec<usize> = (0..4).collect();
        small.sort_by_key(|&c| sizes[c]);
        let mut left = 100u64;
        let mut b = vec![0u64; 4];
        for (i, &c) in small.iter().enumerate() {
            let share = left / (4 - i) as u64;
            b[c] = share.min(sizes[c]);
            left -= b[c];
        }
        b
    };
    assert_eq!(got.iter().sum::<u64>(), 100);
    for c in 0..4 {
        assert!(got[c].abs_diff(b[c]) <= 1, "cluster {c}: {got:?} vs {b:?} (sizes {sizes:?})");
    }
    assert!(s.contains_key("text"), "written with all their columns");

    // Within a cluster by a score: the nearest rows first (--by with a negated distance is
    // not available, so use cluster_rank through --budget size and check proportions).
    let prop = d.join("prop.parquet");
    ok(&syllabus(&[
        "select",
        "cluster-balanced",
        "--clusters",
        &p(&clusters),
        "--k",
        "245",
        "--budget",
        "size",
        "--by",
        "cluster_dist",
        "--out",
        &p(&prop),
        &fixture("lake"),
    ]));
    let s = parquet_table(&prop);
    let mut got = [0u64; 4];
    s["id"].iter().for_each(|id| got[cluster_of[id] as usize] += 1);
    for c in 0..4 {
        let want = 245.0 * sizes[c] as f64 / 1225.0;
        assert!((got[c] as f64 - want).abs() <= 1.0, "{got:?} vs sizes {sizes:?}");
    }
    // The highest distances of each cluster were taken.
    let dist: HashMap<&String, f64> =
        t["id"].iter().zip(&t["cluster_dist"]).map(|(i, x)| (i, x.parse().unwrap())).collect();
    let chosen: std::collections::HashSet<&String> = s["id"].iter().collect();
    for c in 0..4 {
        let lowest_chosen = t["id"]
            .iter()
            .filter(|id| cluster_of[*id] == c && chosen.contains(id))
            .map(|id| dist[id])
            .fold(f64::INFINITY, f64::min);
        let highest_left = t["id"]
            .iter()
            .filter(|id| cluster_of[*id] == c && !chosen.contains(id))
            .map(|id| dist[id])
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(lowest_chosen >= highest_left, "cluster {c}");
    }

    // D4: a fifth of each cluster, the rows nearest the centroid, dropped.
    let d4 = d.join("d4.parquet");
    ok(&syllabus(&["select", "d4", "--clusters", &p(&clusters), "--drop", "0.2", "--out", &p(&d4), &fixture("lake")]));
    let s = parquet_table(&d4);
    let want: usize = sizes.iter().map(|&n| n as usize - (0.2 * n as f64).round() as usize).sum();
    assert_eq!(s["id"].len(), want);
    let rank: HashMap<&String, i64> =
        t["id"].iter().zip(&t["cluster_rank"]).map(|(i, x)| (i, x.parse().unwrap())).collect();
    for id in &s["id"] {
        let n = sizes[cluster_of[id] as usize] as f64;
        assert!(rank[id] as f64 > (0.2 * n).round(), "{id} is among the nearest");
    }
    // A cluster number no clustering writes is refused, not allocated for.
    let odd = d.join("odd.jsonl");
    let rows: Vec<String> = t["id"]
        .iter()
        .enumerate()
        .map(|(i, id)| serde_json::json!({"id": id, "cluster": if i == 0 { 3e9 } else { 1.0 }}).to_string())
        .collect();
    std::fs::write(&odd, rows.join("\n") + "\n").unwrap();
    let err = fails(
        &syllabus(&[
            "select",
            "cluster-balanced",
            "--clusters",
            &p(&odd),
            "--k",
            "5",
            "--out",
            &p(&d4),
            &fixture("lake"),
        ]),
        1,
    );
    assert!(err.contains("cluster 3000000000 is not a cluster number"), "{err}");
    let err = fails(
        &syllabus(&["select", "d4", "--clusters", &p(&clusters), "--drop", "1.5", "--out", &p(&d4), &fixture("lake")]),
        1,
    );
    assert!(err.contains("--drop 1.5"), "{err}");
}

/// Two vocabularies that share no word: k = 2 puts each in a cluster of its own, whatever the
/// seed, and the rank sort spilled to disk changes nothing.
#[test]
fn two_topics_by_hand_and_a_spilled_rank_sort() {
    let dir = tempdir();
    let d = dir.path();
    let lake = d.join("two.jsonl");
    let (a, b) = (["cat", "dog", "mouse", "bird", "fish"], ["stock", "bond", "yield", "price", "fund"]);
    let mut lines = Vec::new();
    for i in 0..400usize {
        let words = if i % 3 == 0 { &b } else { &a };
        let text: Vec<&str> = (0..6 + i % 5).map(|j| words[(i * 7 + j * 3) % 5]).collect();
        lines.push(serde_json::json!({"id": format!("r{i}"), "text": text.join(" ")}).to_string());
    }
    std::fs::write(&lake, lines.join("\n") + "\n").unwrap();
    let mut first: Option<Vec<u8>> = None;
    for seed in ["0", "1", "2", "3"] {
        let out = d.join(format!("c{seed}.parquet"));
        ok(&syllabus(&["score", "cluster", "--k", "2", "--seed", seed, "--out", &p(&out), &p(&lake)]));
        let t = parquet_table(&out);
        let c: Vec<i64> = t["cluster"].iter().map(|v| v.parse().unwrap()).collect();
        let topic_b = c[0];
        for (i, &ci) in c.iter().enumerate() {
            assert_eq!(ci == topic_b, i % 3 == 0, "seed {seed} row {i}");
        }
        if seed == "0" {
            first = Some(std::fs::read(&out).unwrap());
        }
    }
    let spilled = d.join("spilled.parquet");
    ok(&syllabus(&["score", "cluster", "--k", "2", "--memory-limit", "4KB", "--out", &p(&spilled), &p(&lake)]));
    assert_eq!(std::fs::read(&spilled).unwrap(), first.unwrap());
}

/// `pipelines/clusters.toml`: [dedup], [clusters], a balanced selection and a curriculum whose
/// domains are the clusters; a rerun skips the finished stages.
#[test]
fn the_clusters_pipeline_uses_clusters_as_domains() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let err = ok(&syllabus(&["run", "pipelines/clusters.toml", "--out", &p(&out)]));
    assert!(err.contains("6 clusters: sizes"), "{err}");
    let c = parquet_table(&out.join("clusters.parquet"));
    let cluster_of: HashMap<&String, &String> = c["id"].iter().zip(&c["cluster"]).collect();
    assert_eq!(c["id"].len(), 1213, "the rows [dedup] kept");
    let mut sizes: HashMap<&String, u64> = HashMap::new();
    c["cluster"].iter().for_each(|k| *sizes.entry(k).or_default() += 1);
    let s = parquet_table(&out.join("selected.parquet"));
    assert_eq!(s["id"].len(), 600);
    // The curriculum's domain of each document is its cluster.
    let cur = parquet_table(&out.join("curriculum.parquet"));
    assert_eq!(cur["id"].len(), 600);
    let mut per_domain: HashMap<&String, u64> = HashMap::new();
    for (id, domain) in cur["id"].iter().zip(&cur["domain"]) {
        assert_eq!(cluster_of[id], domain, "{id}");
        *per_domain.entry(domain).or_default() += 1;
    }
    // Equal budgets of 100, water-filled past the clusters smaller than that.
    let small: u64 = sizes.values().filter(|&&n| n < 100).sum();
    let n_small = sizes.values().filter(|&&n| n < 100).count() as u64;
    let share = (600 - small) as f64 / (6 - n_small) as f64;
    for (k, n) in &per_domain {
        let want = if sizes[k] < 100 { sizes[k] as f64 } else { share };
        assert!((*n as f64 - want).abs() <= 1.0, "cluster {k}: {n} of {} (share {share})", sizes[k]);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["domains"], serde_json::json!(["0", "1", "2", "3", "4", "5"]));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["clusters"]["sizes"].as_array().unwrap().len(), 6);
    // One row per cluster: its size, its top terms, and its nearest rows (rank 1 first).
    let terms = parquet_table(&out.join("cluster_terms.parquet"));
    assert_eq!(terms["cluster"], ["0", "1", "2", "3", "4", "5"]);
    let rank: HashMap<&String, &String> = c["id"].iter().zip(&c["cluster_rank"]).collect();
    for (i, k) in terms["cluster"].iter().enumerate() {
        assert_eq!(terms["size"][i].parse::<u64>().unwrap(), sizes[k]);
        let nearest: Vec<&str> = terms["nearest"][i].split(", ").collect();
        assert_eq!(nearest.len(), 3.min(sizes[k] as usize));
        for (r, id) in nearest.iter().enumerate() {
            assert_eq!(rank[&id.to_string()], &(r + 1).to_string());
            assert_eq!(cluster_of[&id.to_string()], k);
        }
    }
    // HOL Light's tactics name the math cluster.
    assert!(terms["top_terms"].iter().any(|t| t.contains("rewrite_tac")), "{:?}", terms["top_terms"]);
    // A rerun finds every stage done: the clusters are not fitted again.
    let before = std::fs::read(out.join("clusters.parquet")).unwrap();
    let err = ok(&syllabus(&["run", "pipelines/clusters.toml", "--out", &p(&out)]));
    assert!(!err.contains("clusters: wrote"), "{err}");
    assert_eq!(std::fs::read(out.join("clusters.parquet")).unwrap(), before);
}

#[test]
fn a_cluster_selection_needs_clusters_and_d4_clusters_on_its_own() {
    let dir = tempdir();
    let d = dir.path();
    let cfg = d.join("p.toml");
    let base = "name = \"t\"\nout_dir = \"o\"\n[source]\npaths = [\"fixtures/lake\"]\n";
    std::fs::write(&cfg, format!("{base}[select]\nmethod = \"d4\"\n")).unwrap();
    let err = fails(&syllabus(&["run", &p(&cfg)]), 1);
    assert!(err.contains("needs clusters"), "{err}");
    std::fs::write(&cfg, format!("{base}domain_field = \"cluster\"\n[select]\nmethod = \"random\"\nk = 5\n")).unwrap();
    let err = fails(&syllabus(&["run", &p(&cfg)]), 1);
    assert!(err.contains("needs a [clusters] stage"), "{err}");
    std::fs::write(&cfg, format!("{base}[clusters]\nk = 3\n[select]\nmethod = \"d4\"\ncluster = {{ k = 3 }}\n"))
        .unwrap();
    let err = fails(&syllabus(&["run", &p(&cfg)]), 1);
    assert!(err.contains("choose one"), "{err}");
    std::fs::write(&cfg, format!("{base}[select]\nmethod = \"d4\"\ndrop = 0.5\ncluster = {{ k = 3 }}\n")).unwrap();
    let out = d.join("out");
    ok(&syllabus(&["run", &p(&cfg), "--out", &p(&out)]));
    let c = parquet_table(&out.join("clusters.parquet"));
    let s = parquet_table(&out.join("selected.parquet"));
    let mut sizes: HashMap<&String, usize> = HashMap::new();
    c["cluster"].iter().for_each(|k| *sizes.entry(k).or_default() += 1);
    let want: usize = sizes.values().map(|&n| n - (0.5 * n as f64).round() as usize).sum();
    assert_eq!(s["id"].len(), want);
    assert!(out.join("kmeans_model.bin").exists());
}

/// `pipelines/related.toml`: every document once, neighbours more alike than in input order,
/// the same bytes on one thread and two; and `syllabus curriculum --order related`.
#[test]
fn the_related_order_keeps_neighbours_together() {
    let dir = tempdir();
    let d = dir.path();
    let (one, two) = (d.join("one"), d.join("two"));
    let err = ok(&syllabus(&["run", "pipelines/related.toml", "--out", &p(&two), "--threads", "2"]));
    assert!(err.contains("related order: 1225 documents"), "{err}");
    ok(&syllabus(&["run", "pipelines/related.toml", "--out", &p(&one), "--threads", "1"]));
    for f in ["curriculum.parquet", "clusters.parquet"] {
        assert_eq!(std::fs::read(one.join(f)).unwrap(), std::fs::read(two.join(f)).unwrap(), "{f}");
    }
    let cur = parquet_table(&two.join("curriculum.parquet"));
    let mut ids = cur["id"].clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1225, "every document exactly once");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(two.join("summary.json")).unwrap()).unwrap();
    let r = &summary["related"];
    assert!(r["mean_cos_related"].as_f64().unwrap() > r["mean_cos_input"].as_f64().unwrap() + 0.05, "{r}");
    // Neighbours in the curriculum share their cluster far more often than in input order.
    let c = parquet_table(&two.join("clusters.parquet"));
    let cluster_of: HashMap<&String, &String> = c["id"].iter().zip(&c["cluster"]).collect();
    let same = |ids: &[String]| {
        ids.windows(2).filter(|w| cluster_of[&w[0]] == cluster_of[&w[1]]).count() as f64 / (ids.len() - 1) as f64
    };
    let (related, input) = (same(&cur["id"]), same(&c["id"]));
    assert!(related > 0.95 && related > input, "{related} vs {input}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ordering"]["method"], "related");

    // The command: the same order from the pipeline's model.
    let out = d.join("cmd");
    let model = two.join("kmeans_model.bin");
    let args = [
        "curriculum",
        "--tokenizer",
        "fixtures/tokenizer.json",
        "--seq-len",
        "512",
        "--order",
        "related",
        "--kmeans-model",
        &p(&model),
        "--out",
        &p(&out),
        &fixture("lake"),
    ];
    let err = ok(&syllabus(&args));
    assert!(err.contains("related order"), "{err}");
    let cmd = parquet_table(&out.join("curriculum.parquet"));
    assert_eq!(cmd["id"], cur["id"]);
    let err = fails(
        &syllabus(
            &args[..args.len() - 5]
                .iter()
                .chain(&["--out", &p(&d.join("x")), &fixture("lake")])
                .copied()
                .collect::<Vec<_>>(),
        ),
        1,
    );
    assert!(err.contains("--order related and --kmeans-model go together"), "{err}");

    // Clusters as domains from the command line.
    let by_cluster = d.join("by-cluster");
    let table = two.join("clusters.parquet");
    ok(&syllabus(&[
        "curriculum",
        "--tokenizer",
        "fixtures/tokenizer.json",
        "--seq-len",
        "512",
        "--domain-from-clusters",
        &p(&table),
        "--out",
        &p(&by_cluster),
        &fixture("lake"),
    ]));
    let bc = parquet_table(&by_cluster.join("curriculum.parquet"));
    assert_eq!(bc["id"].len(), 1225);
    for (id, domain) in bc["id"].iter().zip(&bc["domain"]) {
        assert_eq!(cluster_of[id], domain, "{id}");
    }
}
