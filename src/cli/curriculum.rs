//! `syllabus run`, `syllabus curriculum`, `syllabus tokenizer train` and `syllabus verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{exit_code, open_lake, print_report, print_totals, SourceArgs};
use crate::config::PipelineConfig;
use crate::pipeline;
use crate::progress::Progress;

#[derive(Subcommand)]
pub(super) enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer on a lake and write it as tokenizer.json.
    Train {
        /// Vocabulary size, special tokens (<|endoftext|>, <pad>) included.
        #[arg(long)]
        vocab_size: usize,
        /// Merges need at least this many occurrences.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        #[arg(required = true)]
        inputs: Vec<String>,
    },
}

#[derive(Args)]
pub(super) struct CurriculumArgs {
    /// A Hugging Face tokenizer.json.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Tokens per sequence.
    #[arg(long)]
    seq_len: u32,
    /// End-of-document token (default: <|endoftext|>, </s>, <eos>, ... whichever it has).
    #[arg(long)]
    eos: Option<String>,
    /// Padding token (default: <pad>, <|pad|> or [PAD], else the EOS token).
    #[arg(long)]
    pad: Option<String>,
    #[arg(long, value_enum, default_value = "concat")]
    packing: crate::curriculum::Packing,
    /// Ordering within each domain.
    #[arg(long, value_enum, default_value = "input")]
    order: crate::curriculum::OrderMethod,
    /// The score column to order by (ascending, descending, folding).
    #[arg(long)]
    by: Option<String>,
    /// Folding passes L.
    #[arg(long, default_value_t = 3)]
    fold_passes: usize,
    /// --order related: the k-means model (`syllabus score cluster --save-model`) whose
    /// vectors and centroids find each document's neighbours.
    #[arg(long, value_name = "FILE")]
    kmeans_model: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    sort_memory_mb: usize,
    /// Domain of each document from this column.
    #[arg(long, conflicts_with = "domain")]
    domain_field: Option<String>,
    /// NAME=PATH: the files of a domain (file, directory or glob); repeat per domain.
    #[arg(long)]
    domain: Vec<String>,
    /// Each document's domain is its cluster in this table (`syllabus score cluster`'s output,
    /// joined by id): clusters as domains.
    #[arg(long, value_name = "TABLE", conflicts_with_all = ["domain", "domain_field"])]
    domain_from_clusters: Option<PathBuf>,
    /// Each document's domain is its top label in this table (`syllabus score classifier`'s
    /// clf_label, joined by id): a language-id or topic classifier's labels as domains.
    #[arg(long, value_name = "TABLE", conflicts_with_all = ["domain", "domain_field", "domain_from_clusters"])]
    domain_from_label: Option<PathBuf>,
    /// Token budget T (default: every document once).
    #[arg(long)]
    budget_tokens: Option<u64>,
    /// START:DOMAIN=SHARE,DOMAIN=SHARE: a phase of the schedule from START (a fraction of T);
    /// repeat per phase, e.g. --phase 0:web=0.7,code=0.3 --phase 0.8:web=0.3,code=0.7.
    #[arg(long)]
    phase: Vec<String>,
    /// Move linearly between phase mixtures.
    #[arg(long)]
    interpolate: bool,
    #[arg(long, value_enum, default_value = "stop")]
    on_exhausted: crate::curriculum::Exhausted,
    /// Per-sample weights from this loss column (Sow et al.).
    #[arg(long)]
    reweight_by: Option<String>,
    #[arg(long, value_enum, default_value = "linupper")]
    strategy: crate::curriculum::Strategy,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Documents per reweighting window.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Shard formats (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "syllabus")]
    format: Vec<crate::curriculum::ShardFormat>,
    /// Tokens per shard (rounded down to whole sequences).
    #[arg(long, default_value_t = 1 << 23)]
    shard_tokens: u64,
    /// MiB of token store between the checkpoints of tokenization: the most a run resumed
    /// after a kill redoes (never changes a result).
    #[arg(long, default_value_t = 16.0)]
    checkpoint_mb: f64,
    /// Seed of random orderings.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// The document table: files, directories or globs (e.g. a selection's output).
    inputs: Vec<String>,
}

impl TokenizerCommand {
    pub(super) fn stage_outputs(&mut self, o: &mut crate::store::output::Outputs) -> crate::error::Result<()> {
        match self {
            TokenizerCommand::Train { out, source, .. } => {
                o.stage_in_place(out)?;
                source.stage_outputs(o)
            }
        }
    }
}

impl CurriculumArgs {
    pub(super) fn stage_outputs(&mut self, o: &mut crate::store::output::Outputs) -> crate::error::Result<()> {
        o.stage_in_place(&mut self.out)?;
        self.source.stage_outputs(o)
    }

    fn spec(&self) -> anyhow::Result<crate::curriculum::CurriculumSpec> {
        use crate::curriculum::*;
        let mut phases = Vec::new();
        for p in &self.phase {
            let (start, mix) =
                p.split_once(':').with_context(|| format!("--phase {p:?}: expected START:DOMAIN=SHARE,..."))?;
            let start: f64 = start.trim().parse().with_context(|| format!("--phase {p:?}: bad start"))?;
            let mut mixture = indexmap::IndexMap::new();
            for part in mix.split(',').filter(|s| !s.trim().is_empty()) {
                let (d, w) = part.split_once('=').with_context(|| format!("--phase {p:?}: expected DOMAIN=SHARE"))?;
                let w: f64 = w.trim().parse().with_context(|| format!("--phase {p:?}: bad share for {d}"))?;
                mixture.insert(d.trim().to_string(), w);
            }
            phases.push(PhaseConfig { start, mixture });
        }
        if phases.is_empty() && (self.budget_tokens.is_some() || self.interpolate) {
            bail!("--budget-tokens and --interpolate need at least one --phase");
        }
        let spec = CurriculumSpec {
            seed: self.seed,
            reweight: self.reweight_by.as_ref().map(|by| ReweightConfig {
                by: by.clone(),
                strategy: self.strategy,
                temperature: self.temperature,
                window: self.window,
            }),
            schedule: (!phases.is_empty()).then(|| ScheduleConfig {
                tokens: self.budget_tokens,
                interpolate: self.interpolate,
                on_exhausted: self.on_exhausted,
                phases,
            }),
            order: OrderConfig {
                method: self.order,
                by: self.by.clone(),
                passes: self.fold_passes,
                sort_memory_mb: self.sort_memory_mb,
            },
            tokenize: TokenizeConfig {
                tokenizer: self.tokenizer.clone(),
                seq_len: self.seq_len,
                eos: self.eos.clone(),
                pad: self.pad.clone(),
                packing: self.packing,
            },
            output: OutputConfig {
                formats: self.format.clone(),
                shard_tokens: self.shard_tokens,
                checkpoint_mb: self.checkpoint_mb,
            },
        };
        spec.validate()?;
        Ok(spec)
    }

    fn source(&self) -> anyhow::Result<crate::config::SourceConfig> {
        let mut domains = indexmap::IndexMap::new();
        for d in &self.domain {
            let (name, path) = d.split_once('=').with_context(|| format!("--domain {d:?}: expected NAME=PATH"))?;
            domains.entry(name.to_string()).or_insert_with(Vec::new).push(path.to_string());
        }
        if self.inputs.is_empty() && domains.is_empty() {
            bail!("no inputs: give the document table's files (or --domain NAME=PATH)");
        }
        Ok(crate::config::SourceConfig {
            paths: self.inputs.clone(),
            domain_field: self.domain_field.clone(),
            domains,
            text_field: self.source.text_field.clone(),
            id_field: self.source.id_field.clone(),
            on_bad_record: self.source.on_bad_record,
            batch_rows: self.source.batch_rows,
            max_record_bytes: self.source.max_record_bytes,
        })
    }
}

/// `syllabus run PIPELINE.toml`.
pub(super) fn run_pipeline(
    pipeline: &Path,
    out: Option<&Path>,
    cluster: Option<String>,
    threads: usize,
    store: &super::StoreArgs,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let mut cfg = PipelineConfig::load(pipeline)?;
    if cluster.is_some() && !cfg!(feature = "cluster") {
        anyhow::bail!("this syllabus was built without the `cluster` feature");
    }
    if let Some(url) = &cluster {
        // Refused before anything is written (no work directory, no rejects file).
        #[cfg(feature = "cluster")]
        crate::cluster::parse_url(url)?;
        if cfg.dedup.is_some() || cfg.decontaminate.is_some() {
            anyhow::bail!(
                "--cluster {url}: [dedup] and [decontaminate] run on one machine, and {} has them: run the pipeline without --cluster",
                pipeline.display()
            );
        }
        let method = cfg.select.as_ref().map(crate::config::SelectConfig::method);
        // Clusters made by the pipeline are assigned there; a selection by clusters runs here.
        let clusters_there = match cfg.select.as_ref().and_then(crate::config::SelectConfig::cluster_source) {
            Some((tables, own)) => (tables.is_empty() && own.is_some()) || cfg.clusters.is_some(),
            None => cfg.select.is_none() && cfg.clusters.is_some(),
        };
        if !clusters_there && !method.and_then(crate::methods::info).is_some_and(|i| i.cluster) {
            let on_cluster: Vec<&str> = crate::methods::REGISTRY.iter().filter(|i| i.cluster).map(|i| i.name).collect();
            anyhow::bail!(
                "--cluster {url}: runs a pipeline's selection on the cluster for {} (and the assignment of its [clusters]); {} has {} (drop --cluster)",
                on_cluster.join(", "),
                pipeline.display(),
                method.map_or("no [select]".to_string(), |m| format!("a {m} selection"))
            );
        }
    }
    cfg.cluster = cluster;
    if threads > 0 {
        cfg.threads = threads;
    }
    if cfg.store.is_some() {
        crate::store::configure(store.settings(cfg.store.clone())?)?;
    }
    // A store URL as the output directory: written to a local staging directory, uploaded
    // (manifest last) once the run has finished.
    let named = out.map(Path::to_path_buf).unwrap_or_else(|| cfg.out_dir.clone());
    let mut outs = crate::store::output::Outputs::default();
    let local_out = outs.stage(&named)?;
    let summary = pipeline::run(&cfg, Some(&local_out), progress).map_err(|e| super::with_kept(e.into(), &outs))?;
    if let Some(method) = summary.method {
        eprintln!("syllabus run {}: {method} selection", summary.name);
        print_report(&summary.report, start, true);
    }
    if let Some(t) = &summary.curriculum {
        print_totals(&summary.name, t, start);
    }
    let out_dir = named.as_path();
    if let Some(rows) = &summary.eval {
        print!("{}", crate::eval::render_table(rows));
    }
    for o in &summary.outputs {
        eprintln!("  wrote {}", out_dir.join(o).display());
    }
    outs.commit()?;
    let curriculum_rejects = summary.curriculum.as_ref().map_or(0, |t| t.rejected);
    if curriculum_rejects > 0 {
        eprintln!("  {curriculum_rejects} bad records were skipped");
        return Ok(ExitCode::from(3));
    }
    Ok(exit_code(&summary.report))
}

/// `syllabus curriculum`.
pub(super) fn curriculum_command(
    args: &CurriculumArgs,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let spec = args.spec()?;
    let source = args.source()?;
    let read = source.read_options();
    let (files, mut domains) = source.lake()?;
    let mut cluster_table_hash = None;
    if let Some(t) = &args.domain_from_clusters {
        cluster_table_hash = Some(xxhash_rust::xxh3::xxh3_128(&crate::store::read(t)?).to_string());
        domains = crate::kmeans::cluster_domains(t)?;
    }
    let mut label_table_hash = None;
    if let Some(t) = &args.domain_from_label {
        label_table_hash = Some(xxhash_rust::xxh3::xxh3_128(&crate::store::read(t)?).to_string());
        domains = crate::methods::classifier::label_domains(t)?;
    }
    let related = spec.order.method == crate::curriculum::OrderMethod::Related;
    if related != args.kmeans_model.is_some() {
        anyhow::bail!("--order related and --kmeans-model go together");
    }
    let model_hash = match &args.kmeans_model {
        Some(m) => Some(xxhash_rust::xxh3::xxh3_128(&crate::store::read(m)?).to_string()),
        None => None,
    };
    let config = serde_json::json!({
        "source": source,
        "curriculum": spec,
        "kmeans_model": model_hash,
        "domain_from_clusters": cluster_table_hash,
        "domain_from_label": label_table_hash,
    });
    let tok_bytes = crate::store::read(&spec.tokenize.tokenizer)
        .with_context(|| format!("reading {}", spec.tokenize.tokenizer.display()))?;
    let key = crate::shard::manifest::json_hash(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
        "inputs": crate::resume::inputs_fingerprint(&files),
        "tokenizer": xxhash_rust::xxh3::xxh3_128(&tok_bytes).to_string(),
    }));
    let work = crate::resume::begin_work(&args.out, &key)?;
    let rejects = args.source.rejects.clone();
    let mut build = crate::curriculum::Build {
        spec: &spec,
        config,
        files: &files,
        read: &read,
        domains,
        out: &args.out,
        work: &work,
        rejects: rejects.as_deref(),
        progress,
        order_positions: None,
    };
    if let (Some(m), false) = (&args.kmeans_model, build.prepared()) {
        let memory = spec.order.sort_memory_mb as u64 * 1048576;
        let (positions, _) = crate::kmeans::related::positions_for(&files, &read, m, memory, &work, progress)?;
        build.order_positions = Some(positions);
    }
    let manifest = build.run()?;
    print_totals("curriculum", &manifest.totals, start);
    eprintln!("  wrote {}", crate::store::output::shown(&args.out.join(crate::shard::manifest::MANIFEST_FILE)));
    if manifest.totals.rejected > 0 {
        eprintln!("  {} bad records were skipped", manifest.totals.rejected);
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `syllabus verify DIR`.
pub(super) fn verify_command(dir: &Path) -> anyhow::Result<ExitCode> {
    let r = crate::shard::verify::verify(dir)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    if r.problems.is_empty() {
        eprintln!(
            "syllabus verify {}: {} files, {} sequences, {} tokens: all good",
            dir.display(),
            r.files,
            r.sequences,
            r.tokens
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &r.problems {
            eprintln!("  problem: {p}");
        }
        bail!("{} problems in {}", r.problems.len(), dir.display())
    }
}

/// `syllabus tokenizer train`.
pub(super) fn tokenizer_command(cmd: TokenizerCommand, start: Instant) -> anyhow::Result<ExitCode> {
    let TokenizerCommand::Train { vocab_size, min_frequency, out, source, inputs } = cmd;
    let (opts, raw, mut rejects) = open_lake(&source, &inputs)?;
    let opts_train = crate::tokenize::TrainOptions { vocab_size, min_frequency };
    let r = crate::tokenize::train(&raw, &opts, &opts_train, rejects.as_mut(), &out)?;
    if let Some(w) = rejects {
        w.finish()?;
    }
    eprintln!(
        "syllabus tokenizer train: {} documents, vocabulary {}; wrote {} ({:.2} s)",
        r.documents,
        r.vocab_size,
        crate::store::output::shown(&out),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
