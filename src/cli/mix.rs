//! `syllabus mix`: mixture search on eval's engine; `syllabus mix graph`: Skill-It's graph.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::eval::TrainArgs;
use super::SourceArgs;
use crate::eval::Named;
use crate::progress::Progress;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct MixArgs {
    #[command(subcommand)]
    command: Option<MixCommand>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Subcommand)]
enum MixCommand {
    /// Skill-It's graph from data: eval's model trained on each domain alone; A[i][j] the
    /// relative loss reduction on domain j's validation set (one --valid per domain, by its
    /// name), clipped at 0; written as the [feedback] block `serve --feedback skillit` reads.
    Graph(Box<GraphArgs>),
}

#[derive(Args)]
struct SearchArgs {
    /// A domain, NAME=PATH (a file, directory or glob); repeat for each.
    #[arg(long = "domain", value_name = "NAME=PATH", value_parser = Named::parse, required_unless_present_any = ["pipeline", "clusters"])]
    domains: Vec<Named>,
    /// Take the domains (and how to read them) from this pipeline's [source.domains].
    #[arg(long, conflicts_with_all = ["domains", "clusters"])]
    pipeline: Option<PathBuf>,
    /// Clusters as domains: this cluster table (`score cluster`'s) splits the --lake files by
    /// id; the domains are named by the cluster numbers.
    #[arg(long, value_name = "TABLE", requires = "lake", conflicts_with = "domains")]
    clusters: Option<PathBuf>,
    /// The lake the --clusters table was made of (files, directories, globs).
    #[arg(long, requires = "clusters")]
    lake: Vec<String>,
    /// Mixtures searched: the natural and the uniform ones and seeded Dirichlet draws around
    /// the natural token shares.
    #[arg(long, default_value_t = 32)]
    runs: usize,
    /// The validation set whose loss the proposal minimises (default: the first --valid).
    #[arg(long)]
    target: Option<String>,
    /// No domain read more often than this in --budget tokens.
    #[arg(long, default_value_t = 4.0)]
    max_passes: f64,
    /// The tokens of the real run the proposal is for, which --max-passes applies to and the
    /// [schedule] block is written with (default: --tokens).
    #[arg(long)]
    budget: Option<u64>,
    /// Keep the proposal within this KL (nats) of the natural mixture.
    #[arg(long)]
    max_kl: Option<f64>,
    /// Check the proposal, natural and uniform mixtures at this scale, WIDTHxLAYERS
    /// [:context=N][:tokens=N], instead of the search's.
    #[arg(long, value_parser = crate::eval::scales::Scale::parse)]
    check_scale: Option<crate::eval::scales::Scale>,
    /// Output directory: runs.parquet, summary.csv, proposal.toml, mix.json, mix.png.
    #[arg(long, default_value = "out/mix")]
    out: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args)]
struct GraphArgs {
    /// A domain, NAME=PATH; repeat for each. Rows and columns follow this order.
    #[arg(long = "domain", value_name = "NAME=PATH", value_parser = Named::parse, required_unless_present = "pipeline")]
    domains: Vec<Named>,
    /// Take the domains (and how to read them) from this pipeline's [source.domains].
    #[arg(long, conflicts_with = "domains")]
    pipeline: Option<PathBuf>,
    /// Output directory: graph.toml, graph.csv, graph.json.
    #[arg(long, default_value = "out/mix-graph")]
    out: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    source: SourceArgs,
}

/// Domains as (name, paths).
type Domains = Vec<(String, Vec<String>)>;

/// The domains and how to read them: the flags, or a pipeline's `[source.domains]` and its
/// `[source]` reading options.
fn domains_and_read(
    named: &[Named],
    pipeline: Option<&std::path::Path>,
    source: &SourceArgs,
) -> anyhow::Result<(Domains, crate::source::ReadOptions)> {
    match pipeline {
        Some(p) => {
            let cfg = crate::config::PipelineConfig::load(p)?;
            if cfg.source.domains.is_empty() {
                bail!("{}: no [source.domains] to mix", p.display());
            }
            let domains = cfg.source.domains.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            Ok((domains, cfg.source.read_options()))
        }
        // A name given twice is refused by the engine; its paths are not merged here.
        None => Ok((named.iter().map(|n| (n.name.clone(), vec![n.path.clone()])).collect(), source.read_options()?)),
    }
}

impl MixArgs {
    pub(super) fn stage_outputs(&mut self, o: &mut crate::store::output::Outputs) -> crate::error::Result<()> {
        match &mut self.command {
            Some(MixCommand::Graph(g)) => {
                o.stage_in_place(&mut g.out)?;
                g.source.stage_outputs(o)
            }
            None => {
                o.stage_in_place(&mut self.search.out)?;
                self.search.source.stage_outputs(o)
            }
        }
    }
}

pub(super) fn mix_command(args: MixArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(MixCommand::Graph(g)) => graph_command(*g, progress, start),
        None => search_command(args.search, progress, start),
    }
}

fn search_command(args: SearchArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    if args.source.rejects.is_some() {
        bail!("mix writes no rejects file: leave out --rejects");
    }
    let (domains, read) = domains_and_read(&args.domains, args.pipeline.as_deref(), &args.source)?;
    let spec = crate::mix::MixSpec {
        tokenizer: args.train.tokenizer(),
        domains,
        clusters: args.clusters.map(|table| crate::mix::ClusterDomains { table, lake: args.lake }),
        valid: args.train.valid(),
        target: args.target,
        runs: args.runs,
        budget: args.budget,
        max_passes: args.max_passes,
        max_kl: args.max_kl,
        params: args.train.params(None, false),
        check_scale: args.check_scale,
        seed: args.train.seed(),
    };
    let report = crate::mix::run(&spec, &read, &args.out, progress)?;
    print!("{}", crate::mix::render(&report));
    let resumed = if report.resumed_runs > 0 {
        format!(" ({} kept from an interrupted run)", report.resumed_runs)
    } else {
        String::new()
    };
    eprintln!(
        "syllabus mix: {} domains, {} search runs + 3 mixtures x {} seeds checked{resumed}; wrote {}/{{{}, {}, {}, {}, {}}}; {:.2} s",
        report.domains.len(),
        spec.runs,
        report.summary.first().map_or(0, |r| r.seeds),
        crate::store::output::shown(&args.out),
        crate::mix::RUNS_FILE,
        crate::mix::SUMMARY_FILE,
        crate::mix::PROPOSAL_FILE,
        crate::mix::MIX_FILE,
        crate::mix::PLOT_FILE,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn graph_command(args: GraphArgs, progress: &Progress, start: Instant) -> anyhow::Result<ExitCode> {
    if args.source.rejects.is_some() {
        bail!("mix graph writes no rejects file: leave out --rejects");
    }
    let (domains, read) = domains_and_read(&args.domains, args.pipeline.as_deref(), &args.source)?;
    let spec = crate::mix::graph::GraphSpec {
        tokenizer: args.train.tokenizer(),
        domains,
        valid: args.train.valid(),
        params: args.train.params(None, false),
        seed: args.train.seed(),
    };
    let report = crate::mix::graph::run(&spec, &read, &args.out, progress)?;
    print!("{}", crate::mix::graph::graph_csv(&report));
    eprintln!(
        "syllabus mix graph: {} domains x {} seeds{}; wrote {}/{{{}, {}, {}}}; {:.2} s",
        report.domains.len(),
        report.seeds,
        if report.resumed_runs > 0 { format!(" ({} runs kept)", report.resumed_runs) } else { String::new() },
        crate::store::output::shown(&args.out),
        crate::mix::graph::GRAPH_TOML,
        crate::mix::graph::GRAPH_CSV,
        crate::mix::graph::GRAPH_JSON,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
