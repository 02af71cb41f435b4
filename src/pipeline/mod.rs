//! Jobs: the stages put together, for the CLI commands and for `syllabus run PIPELINE.toml`.

pub mod filters;

use std::path::{Path, PathBuf};

use crate::batch::COL_DOMAIN;
use crate::config::{PipelineConfig, SelectConfig, VisitSelecting};
use crate::curriculum::prepare::DomainOf;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::resume::{begin_work, inputs_fingerprint, load_marker, save_marker};
use crate::select::Noise;
use crate::shard::manifest::{json_hash, MANIFEST_FILE};
use crate::source::{expand_inputs, BadRecordPolicy, FileColumn, InputFile, RejectWriter};

use crate::methods::{FitLake, Method, Selecting};
use crate::passes::work::Work;
use crate::passes::{Keep, RunReport, ScoredLake};

/// What `syllabus run` produced.
#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub name: String,
    /// The selection method, when the pipeline selects.
    pub method: Option<&'static str>,
    pub report: RunReport,
    /// What `[decontaminate]` removed, per file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decontaminate: Option<filters::DecontamReport>,
    /// What `[dedup]` removed, per file and reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<crate::dedup::DedupReport>,
    /// What `[clusters]` found: sizes and the fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clusters: Option<crate::kmeans::ClusterReport>,
    /// `[order] method = "related"`: how similar neighbouring documents are, against input order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<crate::kmeans::related::RelatedReport>,
    /// The curriculum's totals, when the pipeline writes one.
    pub curriculum: Option<crate::shard::manifest::Totals>,
    /// Files written, relative to the output directory.
    pub outputs: Vec<PathBuf>,
    /// What `[eval]` found: per candidate and validation set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<Vec<crate::eval::SummaryRow>>,
}

/// Run a pipeline config, writing under `out_dir` (the config's unless overridden).
///
/// Each stage leaves a marker in `OUT/work` when it completes, under a key made of the
/// settings, the inputs and the tokenizer: started again after a crash, a run skips the
/// stages it finished and resumes the shards it was writing.
///
/// With `[eval]`, its candidates are then selected (each as a pipeline of its own under
/// `OUT/candidates/NAME`, resumable the same way) and evaluated into `OUT/eval`.
pub fn run(cfg: &PipelineConfig, out_dir: Option<&Path>, progress: &Progress) -> Result<RunSummary> {
    crate::par::init_threads(cfg.threads);
    let out_dir = out_dir.unwrap_or(&cfg.out_dir);
    crate::sink::output_dir(out_dir)?;
    let own = cfg.select.is_some()
        || cfg.tokenize.is_some()
        || cfg.dedup.is_some()
        || cfg.decontaminate.is_some()
        || cfg.clusters.is_some();
    let mut summary = if own {
        run_stages(cfg, out_dir, progress)?
    } else {
        RunSummary {
            name: cfg.name.clone(),
            method: None,
            report: RunReport::default(),
            decontaminate: None,
            dedup: None,
            clusters: None,
            related: None,
            curriculum: None,
            outputs: Vec::new(),
            eval: None,
        }
    };
    if let Some(e) = &cfg.eval {
        let report = run_eval(cfg, e, out_dir, own, progress)?;
        let files =
            [crate::eval::CURVES_FILE, crate::eval::SUMMARY_FILE, crate::eval::EVAL_FILE, crate::eval::PLOT_FILE];
        if e.scales.is_empty() {
            summary.outputs.extend(files.iter().map(|f| Path::new("eval").join(f)));
        } else {
            // Each scale's eval in its own directory, then the comparison; the summary keeps
            // the largest (last) scale's table.
            for s in &e.scales {
                summary.outputs.extend(files.iter().map(|f| Path::new("eval").join(s.dir_name()).join(f)));
            }
            for f in [
                crate::eval::scales::SCALES_FILE,
                crate::eval::scales::DECISIONS_FILE,
                crate::eval::scales::SCALES_JSON,
            ] {
                summary.outputs.push(Path::new("eval").join(f));
            }
        }
        summary.eval = Some(report.summary);
    }
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::io(out_dir, e.into()))?;
    crate::sink::write_atomic(&out_dir.join("summary.json"), &json)?;
    Ok(summary)
}

/// `[eval]`: make the candidates, then train and compare.
fn run_eval(
    cfg: &PipelineConfig,
    e: &crate::config::EvalConfig,
    out_dir: &Path,
    own: bool,
    progress: &Progress,
) -> Result<crate::eval::EvalReport> {
    let mut candidates = Vec::new();
    for c in &e.candidates {
        let dir = out_dir.join("candidates").join(&c.name);
        let path = match (&c.path, &c.select, &c.pipeline) {
            (Some(p), _, _) => p.clone(),
            (None, Some(sel), _) => {
                run(&cfg.candidate_pipeline(c, sel, dir.clone())?, None, progress)?;
                dir.display().to_string()
            }
            (None, None, Some(p)) => {
                let sub = PipelineConfig::load(p)?;
                if sub.eval.is_some() {
                    return Err(Error::Config(format!(
                        "eval.candidates {}: {} has an [eval] of its own",
                        c.name,
                        p.display()
                    )));
                }
                run(&sub, Some(&dir), progress)?;
                dir.display().to_string()
            }
            (None, None, None) => {
                return Err(Error::Config(format!("eval.candidates {}: no path, select or pipeline", c.name)))
            }
        };
        candidates.push(crate::eval::Candidate { name: c.name.clone(), path, train: c.train_override() });
    }
    if own {
        candidates.push(crate::eval::Candidate {
            name: cfg.name.clone(),
            path: out_dir.display().to_string(),
            train: Default::default(),
        });
    }
    let tokenizer = match (&e.tokenizer, &cfg.tokenize) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t.tokenizer.clone(),
        (None, None) => return Err(Error::Config("eval: a tokenizer is needed".into())),
    };
    let raw = if e.kl_against_source {
        cfg.source.lake()?.0.iter().map(|f| f.path.display().to_string()).collect()
    } else {
        Vec::new()
    };
    let spec = crate::eval::EvalSpec {
        tokenizer,
        candidates,
        valid: e.valid.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        raw,
        params: e.params(),
        seed: cfg.seed,
    };
    let (read, out) = (cfg.source.read_options(), out_dir.join("eval"));
    if e.scales.is_empty() {
        return crate::eval::run(&spec, &read, &out, progress);
    }
    let report = crate::eval::scales::run(&spec, &e.scales, &read, &out, progress)?;
    eprint!("{}", crate::eval::scales::render(&report));
    Ok(report.reports.into_iter().last().expect("at least two scales"))
}

/// The pipeline's own stages: selection and curriculum.
fn run_stages(cfg: &PipelineConfig, out_dir: &Path, progress: &Progress) -> Result<RunSummary> {
    let mut read = cfg.source.read_options();
    let (raw, domains) = cfg.source.lake()?;
    let spec = cfg.curriculum();
    let config = cfg.manifest_config();
    let mut fingerprint = vec![inputs_fingerprint(&raw)];
    if let Some(sel) = &cfg.select {
        let target = sel.inputs();
        if !target.is_empty() {
            fingerprint.push(inputs_fingerprint(&expand_inputs(&target)?));
        }
    }
    // Saved k-means models by their bytes: a file replaced at the same path is another run.
    let models = cfg.clusters.as_ref().and_then(|c| c.model.as_deref()).into_iter();
    for m in models.chain(cfg.select.as_ref().and_then(SelectConfig::model_file)) {
        let bytes = crate::store::read(m)?;
        fingerprint.push(serde_json::json!(xxhash_rust::xxh3::xxh3_128(&bytes).to_string()));
    }
    if let Some(spec) = &spec {
        let t = &spec.tokenize.tokenizer;
        let bytes = crate::store::read(t)?;
        fingerprint.push(serde_json::json!(xxhash_rust::xxh3::xxh3_128(&bytes).to_string()));
    }
    let key = json_hash(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
        "inputs": fingerprint,
    }));
    let work = begin_work(out_dir, &key)?;
    let mut outputs = Vec::new();
    let rejects_path = out_dir.join("rejects.jsonl");
    let skip = read.on_bad_record == BadRecordPolicy::Skip;
    let selected = out_dir.join("selected.parquet");
    // Rows removed first, by [decontaminate] and [dedup]: no later stage reads them.
    let reads_lake_later = cfg.select.is_some() || cfg.tokenize.is_some();
    let filtered = filters::run(cfg, &raw, &mut read, &work, &key, out_dir, progress)?;
    outputs.extend(filtered.outputs.iter().cloned());
    let clusters = match &cfg.clusters {
        Some(settings) => {
            outputs.extend([CLUSTERS_FILE, KMEANS_MODEL_FILE, CLUSTER_TERMS_FILE].map(|f| out_dir.join(f)));
            Some(cluster_stage(settings, cfg.cluster.as_deref(), &raw, &read, &work, &key, out_dir, progress)?)
        }
        None => None,
    };
    let (method, report) = match &cfg.select {
        None if !reads_lake_later && read.exclude.is_some() => {
            // Only rows removed: the rest of the lake is the selection.
            let report = match load_marker::<RunReport>(&work, "select.json") {
                Some(r) => r,
                None => {
                    let lake = ScoredLake { raw: &raw, read: &read, progress, file_column: None, work: None };
                    let r = kept_rows(&lake, &selected, skip.then_some(rejects_path.as_path()))?;
                    save_marker(&work, "select.json", &r)?;
                    r
                }
            };
            outputs.push(selected.clone());
            if skip {
                outputs.push(rejects_path.clone());
            }
            (None, report)
        }
        None => (None, RunReport::default()),
        Some(sel) => {
            let method = sel.method();
            outputs.push(selected.clone());
            if sel.writes_scores() {
                outputs.push(out_dir.join("scores.parquet"));
            }
            if sel.cluster_source().is_some_and(|(tables, own)| tables.is_empty() && own.is_some()) {
                outputs.extend([CLUSTERS_FILE, KMEANS_MODEL_FILE, CLUSTER_TERMS_FILE].map(|f| out_dir.join(f)));
            }
            if let Some(f) = crate::methods::info(method).and_then(|i| i.model_file) {
                outputs.push(out_dir.join(f));
            }
            if skip {
                outputs.push(rejects_path.clone());
            }
            let report = match load_marker::<RunReport>(&work, "select.json") {
                Some(r) => r,
                None => {
                    let file_column = match &domains {
                        DomainOf::PerFile { names, of_file } => Some(FileColumn {
                            name: COL_DOMAIN.into(),
                            values: of_file.iter().map(|&d| names[d].clone()).collect(),
                        }),
                        _ => None,
                    };
                    // Scoring methods keep their finished files in `OUT/work/select`, so a run
                    // killed while selecting resumes at the file it was on; proxies their
                    // finished seeds.
                    let select_work = (!matches!(sel, SelectConfig::Scores(_)))
                        .then(|| Work::at(work.join("select"), key.clone()))
                        .transpose()?;
                    let lake = ScoredLake { raw: &raw, read: &read, progress, file_column, work: select_work.as_ref() };
                    let r = select(cfg, sel, &lake, &read, out_dir, skip.then_some(rejects_path.as_path()))?;
                    save_marker(&work, "select.json", &r)?;
                    select_work.map(Work::finish).transpose()?;
                    crate::failpoint::hit(format_args!("selected"));
                    r
                }
            };
            (Some(method), report)
        }
    };
    // `domain_field = "cluster"`: each document's domain is its cluster, by id.
    let domains = match &domains {
        DomainOf::Column(c, _) if c == crate::kmeans::COL_CLUSTER && cfg.clusters.is_some() => {
            crate::kmeans::cluster_domains(&out_dir.join(CLUSTERS_FILE))?
        }
        // `domain_field = "clf_label"` after a classifier's selection: its top label, by id.
        DomainOf::Column(c, _)
            if c == crate::classifier::COL_CLF_LABEL
                && cfg.select.as_ref().is_some_and(|s| s.method() == "classifier") =>
        {
            crate::methods::classifier::label_domains(&out_dir.join("scores.parquet"))?
        }
        _ => domains,
    };
    let mut curriculum = None;
    let mut related = None;
    if let Some(spec) = &spec {
        // After a selection, the curriculum is built from the selected rows.
        let selected_files;
        let (files, table_domains, rejects) = if cfg.select.is_some() {
            selected_files = vec![InputFile::new(&selected)?];
            let d = match domains {
                DomainOf::PerFile { names, .. } => DomainOf::Column(COL_DOMAIN.into(), names),
                other => other,
            };
            (selected_files.as_slice(), d, None)
        } else {
            (raw.as_slice(), domains, skip.then_some(rejects_path.as_path()))
        };
        if rejects.is_some() {
            outputs.push(rejects_path.clone());
        }
        let mut build = crate::curriculum::Build {
            spec,
            config: config.clone(),
            files,
            read: &read,
            domains: table_domains,
            out: out_dir,
            work: &work,
            rejects,
            progress,
            order_positions: None,
        };
        if spec.order.method == crate::curriculum::OrderMethod::Related {
            related = load_marker::<crate::kmeans::related::RelatedReport>(&work, "related.json");
            if !build.prepared() {
                let (positions, r) = crate::kmeans::related::positions_for(
                    files,
                    &read,
                    &out_dir.join(KMEANS_MODEL_FILE),
                    spec.order.sort_memory_mb as u64 * 1048576,
                    &work,
                    progress,
                )?;
                save_marker(&work, "related.json", &r)?;
                (build.order_positions, related) = (Some(positions), Some(r));
            }
        }
        let manifest = build.run()?;
        outputs.extend([out_dir.join(MANIFEST_FILE), out_dir.join("curriculum.parquet")]);
        curriculum = Some(manifest.totals);
    }
    // Relative to the output directory, so the summary is the same wherever the run writes.
    let outputs = outputs.into_iter().map(|o| o.strip_prefix(out_dir).map(Path::to_path_buf).unwrap_or(o)).collect();
    Ok(RunSummary {
        name: cfg.name.clone(),
        method,
        report,
        decontaminate: filtered.decontaminate,
        dedup: filtered.dedup,
        clusters,
        related,
        curriculum,
        outputs,
        eval: None,
    })
}

/// The lake's rows that `lake.read` does not leave out, all columns, to `out` (a pipeline
/// whose only stages remove rows); bad records to `rejects` when given.
fn kept_rows(lake: &ScoredLake, out: &Path, rejects: Option<&Path>) -> Result<RunReport> {
    let mut rejects = rejects.map(RejectWriter::create).transpose()?;
    let mut reader =
        crate::source::LakeReader::new(lake.raw, lake.read, crate::source::Extras::none(), rejects.as_mut());
    for b in reader.by_ref() {
        b?;
    }
    let files = reader.into_stats();
    let per_file = crate::dedup::write_kept(lake, &files, crate::source::Exclusions::default(), out)?;
    let selected = per_file.iter().sum();
    let rejects_written = rejects.map(RejectWriter::finish).transpose()?.unwrap_or(0);
    Ok(RunReport {
        eligible: selected,
        selected,
        selected_per_file: per_file,
        files,
        rejects_written,
        ..Default::default()
    })
}

/// The selection stage of a pipeline: `selected.parquet` and `scores.parquet`.
fn select(
    cfg: &PipelineConfig,
    sel: &SelectConfig,
    lake: &ScoredLake,
    read: &crate::source::ReadOptions,
    out_dir: &Path,
    rejects_path: Option<&Path>,
) -> Result<RunReport> {
    if let Some((tables, own)) = sel.cluster_source() {
        let own = own.map(|o| (o, cfg.cluster.as_deref()));
        return cluster_selection(sel, tables, own, cfg.seed, lake, out_dir, rejects_path);
    }
    if let Some(url) = &cfg.cluster {
        return cluster_select(url, cfg, sel, lake, read, out_dir, rejects_path);
    }
    let progress = lake.progress;
    let raw = lake.raw;
    let mut rejects = match lake.work {
        Some(w) => w.rejects(rejects_path)?,
        None => rejects_path.map(RejectWriter::create).transpose()?,
    };
    let selected = out_dir.join("selected.parquet");
    let scores = out_dir.join("scores.parquet");
    let mut report = match sel {
        SelectConfig::Proxy(sel) => {
            let spec = sel.spec(cfg.seed);
            // Finished seeds are kept in the stage's work directory.
            let keep = lake.work.map(Work::keep_seeds).transpose()?;
            let (table, _) = spec.score(sel.score, raw, read, rejects.as_mut(), progress, keep)?;
            table.write(&scores)?;
            let by = sel.score.column();
            let map = crate::select::rule::read_scores(&[InputFile::new(&scores)?], by)?;
            lake.select_by_rule(&map, by, sel.keep.rule()?, &selected, None)?
        }
        SelectConfig::Scores(sel) => {
            let map = crate::select::rule::read_scores(&expand_inputs(&sel.scores)?, &sel.by)?;
            lake.select_by_rule(&map, &sel.by, sel.keep.rule()?, &selected, rejects.as_mut())?
        }
        method => {
            let local = SelectHere { seed: cfg.seed, lake, out_dir, rejects: rejects.as_mut() };
            method.visit(local).expect("a scoring method")?
        }
    };
    if let Some(r) = rejects {
        report.rejects_written = r.finish()?;
    }
    Ok(report)
}

const CLUSTERS_FILE: &str = "clusters.parquet";
const KMEANS_MODEL_FILE: &str = "kmeans_model.bin";
const CLUSTER_TERMS_FILE: &str = "cluster_terms.parquet";

/// `[clusters]`: every row's cluster to `OUT/clusters.parquet`, the model beside it; a marker
/// in `OUT/work` skips it on a rerun, and a killed run resumes with its fit and finished files.
#[allow(clippy::too_many_arguments)]
fn cluster_stage(
    settings: &crate::kmeans::ClusterSettings,
    url: Option<&str>,
    raw: &[InputFile],
    read: &crate::source::ReadOptions,
    work: &Path,
    key: &str,
    out_dir: &Path,
    progress: &Progress,
) -> Result<crate::kmeans::ClusterReport> {
    if let Some(r) = load_marker::<crate::kmeans::ClusterReport>(work, "clusters.json") {
        return Ok(r);
    }
    let w = Work::at(work.join("clusters"), key.to_string())?;
    let lake = ScoredLake { raw, read, progress, file_column: None, work: Some(&w) };
    let r = cluster_to(settings, url, &lake, out_dir)?;
    eprintln!("syllabus run: clusters: wrote {}", out_dir.join(CLUSTERS_FILE).display());
    crate::kmeans::print_report(&r);
    save_marker(work, "clusters.json", &r)?;
    w.finish()?;
    Ok(r)
}

/// Where `score cluster` and a pipeline's clusters assign the rows: here, or on a cluster
/// reached before the fit (`--cluster`); the same output either way. (In this layer: above
/// both the clusters and the cluster jobs.)
pub enum Assigner {
    Here,
    #[cfg(feature = "cluster")]
    Cluster(crate::cluster::Cluster),
}

impl Assigner {
    /// Here, or the cluster at `url`, reached now (an error without the `cluster` feature).
    pub fn connect(url: Option<&str>) -> Result<Self> {
        match url {
            None => Ok(Assigner::Here),
            #[cfg(feature = "cluster")]
            Some(url) => Ok(Assigner::Cluster(crate::cluster::Cluster::connect(url)?)),
            #[cfg(not(feature = "cluster"))]
            Some(_) => Err(Error::InvalidArgument("this syllabus was built without the `cluster` feature".into())),
        }
    }

    /// [`crate::kmeans::assign_to`] here, or [`crate::cluster::jobs::cluster_assign`] on the cluster.
    pub fn assign(
        &self,
        lake: &ScoredLake,
        model: std::sync::Arc<crate::kmeans::KMeansModel>,
        memory_limit: u64,
        rejects: Option<&mut RejectWriter>,
        out: &Path,
        terms_out: Option<&Path>,
    ) -> Result<(RunReport, crate::kmeans::ClusterReport)> {
        match self {
            Assigner::Here => crate::kmeans::assign_to(lake, model, memory_limit, rejects, out, terms_out),
            #[cfg(feature = "cluster")]
            Assigner::Cluster(c) => {
                crate::cluster::jobs::cluster_assign(c, lake, model, memory_limit, rejects, out, terms_out)
            }
        }
    }
}

/// Fit (or load) and assign: `OUT/clusters.parquet` and `OUT/kmeans_model.bin`; with `url`,
/// the rows are assigned on that cluster (the fit runs here). Bad records are counted, not
/// written: the stage that reads the lake next writes them.
fn cluster_to(
    settings: &crate::kmeans::ClusterSettings,
    url: Option<&str>,
    lake: &ScoredLake,
    out_dir: &Path,
) -> Result<crate::kmeans::ClusterReport> {
    let s = settings;
    let assigner = Assigner::connect(url)?;
    let (model, fit) = crate::kmeans::model_for(lake, s)?;
    // The model this run used, whatever an earlier run left there.
    model.save(&out_dir.join(KMEANS_MODEL_FILE))?;
    let table = out_dir.join(CLUSTERS_FILE);
    let terms = out_dir.join(CLUSTER_TERMS_FILE);
    let (_, mut report) = assigner.assign(lake, model, s.memory_limit, None, &table, Some(&terms))?;
    report.fit = fit;
    Ok(report)
}

/// A selection by clusters (`cluster-balanced`, `d4`), always here: from the named tables,
/// from clusters made with the selection's own settings (assigned on the cluster given with
/// it), or from `[clusters]`.
fn cluster_selection(
    sel: &SelectConfig,
    tables: &[String],
    own: Option<(&crate::kmeans::ClusterSettings, Option<&str>)>,
    seed: u32,
    lake: &ScoredLake,
    out_dir: &Path,
    rejects_path: Option<&Path>,
) -> Result<RunReport> {
    let files = match (tables, own) {
        ([], Some((settings, url))) => {
            cluster_to(settings, url, lake, out_dir)?;
            vec![InputFile::new(out_dir.join(CLUSTERS_FILE))?]
        }
        ([], None) => vec![InputFile::new(out_dir.join(CLUSTERS_FILE))?],
        (t, _) => expand_inputs(t)?,
    };
    let mut rejects = rejects_path.map(RejectWriter::create).transpose()?;
    let selected = out_dir.join("selected.parquet");
    // The join reads the lake once more, without the work directory's parts.
    let plain = ScoredLake {
        raw: lake.raw,
        read: lake.read,
        progress: lake.progress,
        file_column: lake.file_column.clone(),
        work: None,
    };
    let mut report = match sel {
        SelectConfig::ClusterBalanced(b) => {
            let table = crate::kmeans::balanced_table(&files, b.by.as_deref(), &b.scores)?;
            let how = crate::kmeans::Balanced {
                k: b.k,
                budget: b.budget,
                alpha: b.alpha,
                by: b.by.clone(),
                seed: u64::from(seed),
            };
            crate::kmeans::select_balanced(&plain, &table, &how, rejects.as_mut(), &selected)?.0
        }
        SelectConfig::D4(d) => {
            let table = crate::kmeans::d4_table(&files)?;
            crate::kmeans::select_d4(&plain, &table, d.drop, rejects.as_mut(), &selected)?
        }
        _ => unreachable!("a cluster selection"),
    };
    if let Some(r) = rejects {
        report.rejects_written = r.finish()?;
    }
    Ok(report)
}

/// A pipeline's selection by `M` once fitted, here or on a cluster: the fitted state saved
/// where the method keeps one (`dsir_model.json`), how many to keep and the Gumbel seed.
fn fitted_selection<M: Method>(
    s: &Selecting<M>,
    fitted: &crate::methods::Fitted,
    seed: u32,
    out_dir: &Path,
) -> Result<(Keep, Option<u32>)> {
    if let Some(f) = M::INFO.model_file {
        crate::sink::write_atomic(&out_dir.join(f), &fitted.scorer.saved()?)?;
    }
    Ok((M::INFO.keep(s.k), crate::methods::pipeline_draw(&M::INFO, seed, s.top_k)?))
}

/// A scoring method's selection here: fit, save the fitted state where the method keeps one,
/// then score and keep k rows, writing `selected.parquet` and `scores.parquet`.
struct SelectHere<'a, 'b> {
    seed: u32,
    lake: &'a ScoredLake<'b>,
    out_dir: &'a Path,
    rejects: Option<&'a mut RejectWriter>,
}

impl VisitSelecting<'_> for SelectHere<'_, '_> {
    type Out = Result<RunReport>;
    fn visit<M: Method>(self, s: &Selecting<M>) -> Result<RunReport> {
        let SelectHere { seed, lake, out_dir, mut rejects } = self;
        let fit = FitLake { raw: lake.raw, read: lake.read, progress: lake.progress, work: lake.work, counts: None };
        let fitted = crate::methods::fit::<M>(&s.settings, &fit, rejects.as_deref_mut())?;
        let (keep, seed) = fitted_selection(s, &fitted, seed, out_dir)?;
        let noise = seed.map_or(Noise::None, Noise::gumbel);
        let (selected, scores) = (out_dir.join("selected.parquet"), out_dir.join("scores.parquet"));
        let mut report = lake.select_to(fitted.scorer.as_ref(), keep, noise, &selected, Some(&scores), rejects)?;
        report.target_files = fitted.target_stats;
        Ok(report)
    }
}

/// The selection stage on a cluster ([`crate::cluster`]): the same `selected.parquet`,
/// `scores.parquet` and `dsir_model.json` as [`select`] writes, and the same rejects file.
#[cfg(feature = "cluster")]
fn cluster_select(
    url: &str,
    cfg: &PipelineConfig,
    sel: &SelectConfig,
    lake: &ScoredLake,
    read: &crate::source::ReadOptions,
    out_dir: &Path,
    rejects_path: Option<&Path>,
) -> Result<RunReport> {
    use crate::cluster::jobs::ClusterLake;
    let cluster = crate::cluster::Cluster::connect(url)?;
    let mut cl = ClusterLake::new(&cluster, lake.raw, read, lake.progress)?;
    cl.file_column = lake.file_column.clone();
    let mut rejects = rejects_path.map(RejectWriter::create).transpose()?;
    /// Fit on the cluster; the scorer, the target's counts, k and the Gumbel seed.
    struct Fit<'a, 'b> {
        cl: &'a ClusterLake<'b>,
        seed: u32,
        out_dir: &'a Path,
        rejects: Option<&'a mut RejectWriter>,
    }
    type Fitted = (std::sync::Arc<dyn crate::score::Scorer>, Vec<crate::source::FileStats>, Keep, Option<u32>);
    impl VisitSelecting<'_> for Fit<'_, '_> {
        type Out = Result<Fitted>;
        fn visit<M: Method>(self, s: &Selecting<M>) -> Result<Fitted> {
            if !M::INFO.cluster {
                return Err(not_on_cluster());
            }
            let fitted = self.cl.fit::<M>(&s.settings, self.rejects)?;
            let (keep, seed) = fitted_selection(s, &fitted, self.seed, self.out_dir)?;
            Ok((fitted.scorer, fitted.target_stats, keep, seed))
        }
    }
    let fit = Fit { cl: &cl, seed: cfg.seed, out_dir, rejects: rejects.as_mut() };
    let (scorer, target_stats, keep, seed) = sel.visit(fit).ok_or_else(not_on_cluster)??;
    let files = cl.file_stats(rejects.as_mut())?;
    cl.score_to(&scorer, files.clone(), &out_dir.join("scores.parquet"))?;
    let mut report = cl.select_to(&scorer, files, keep, seed, &out_dir.join("selected.parquet"))?;
    report.target_files = target_stats;
    if let Some(r) = rejects {
        report.rejects_written = r.finish()?;
    }
    Ok(report)
}

/// Why a selection does not run with `--cluster`.
#[cfg(feature = "cluster")]
fn not_on_cluster() -> Error {
    Error::InvalidArgument(
        "--cluster runs the selections of the methods that run there (see `syllabus select --help`); this pipeline's selection runs on one machine (drop --cluster)"
            .into(),
    )
}

#[cfg(not(feature = "cluster"))]
fn cluster_select(
    _url: &str,
    _cfg: &PipelineConfig,
    _sel: &SelectConfig,
    _lake: &ScoredLake,
    _read: &crate::source::ReadOptions,
    _out_dir: &Path,
    _rejects_path: Option<&Path>,
) -> Result<RunReport> {
    Err(crate::Error::InvalidArgument("this syllabus was built without the `cluster` feature".into()))
}
