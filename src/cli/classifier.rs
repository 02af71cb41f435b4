//! `syllabus classifier train`: a fastText-compatible classifier from positives and negatives.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::{open_lake, SourceArgs};
use crate::classifier::train::{self, Example, Hyper};
use crate::classifier::{Loss, Newlines};
use crate::progress::Progress;

#[derive(Subcommand)]
pub(super) enum ClassifierCommand {
    /// Train a classifier, positives (a target set) against negatives (files, or a seeded sample
    /// of a lake: DCLM's recipe), and write a fastText .bin (labels __label__positive, then
    /// __label__negative) that fastText's load_model reads and `score classifier` applies.
    Train(Box<TrainArgs>),
}

#[derive(Args)]
pub(super) struct TrainArgs {
    /// Positive documents: files, directories or globs.
    #[arg(long, num_args = 1.., required = true)]
    positive: Vec<String>,
    /// Negative documents.
    #[arg(long, num_args = 1.., required_unless_present = "negatives_from", conflicts_with = "negatives_from")]
    negative: Vec<String>,
    /// Draw the negatives from this lake (a seeded sample of --sample documents).
    #[arg(long, num_args = 1..)]
    negatives_from: Vec<String>,
    /// Negatives drawn from --negatives-from (default: as many as there are positives).
    #[arg(long, requires = "negatives_from")]
    sample: Option<u64>,
    /// The model file to write (.bin).
    #[arg(long)]
    out: PathBuf,
    /// Learning rate (fastText's -lr).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Vector dimension.
    #[arg(long, default_value_t = 100)]
    dim: usize,
    #[arg(long, default_value_t = 5)]
    epoch: usize,
    /// Words seen fewer times are left out.
    #[arg(long, default_value_t = 1)]
    min_count: u64,
    /// Word n-grams up to this length.
    #[arg(long, default_value_t = 1)]
    word_ngrams: usize,
    /// Hash buckets of word and character n-grams (none without n-grams, as fastText does).
    #[arg(long, default_value_t = 2_000_000)]
    bucket: usize,
    /// Character n-grams from minn to maxn characters (0: none).
    #[arg(long, default_value_t = 0)]
    minn: usize,
    #[arg(long, default_value_t = 0)]
    maxn: usize,
    #[arg(long, value_enum, default_value = "softmax")]
    loss: Loss,
    /// Negatives sampled per example (--loss ns).
    #[arg(long, default_value_t = 5)]
    neg: usize,
    /// Seed of the initialisation, the example order and the negatives' sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t)]
    newlines: Newlines,
    #[command(flatten)]
    source: SourceArgs,
}

pub(super) fn classifier_command(
    cmd: ClassifierCommand,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let ClassifierCommand::Train(a) = cmd;
    let hyper = Hyper {
        lr: a.lr,
        dim: a.dim,
        epoch: a.epoch,
        min_count: a.min_count,
        word_ngrams: a.word_ngrams,
        bucket: a.bucket,
        minn: a.minn,
        maxn: a.maxn,
        loss: a.loss,
        neg: a.neg,
        seed: a.seed,
        newlines: a.newlines,
    };
    hyper.validate()?;
    let (read, positive, mut rejects) = open_lake(&a.source, &a.positive)?;
    let positives = train::read_texts(&positive, &read, rejects.as_mut())?;
    if positives.is_empty() {
        anyhow::bail!("--positive: no documents");
    }
    let negatives = if a.negatives_from.is_empty() {
        let files = crate::source::expand_inputs(&a.negative)?;
        train::read_texts(&files, &read, rejects.as_mut())?
    } else {
        let files = crate::source::expand_inputs(&a.negatives_from)?;
        let n = a.sample.unwrap_or(positives.len() as u64);
        train::sample_texts(&files, &read, n, a.seed, rejects.as_mut())?
    };
    if negatives.is_empty() {
        anyhow::bail!("no negative documents");
    }
    if let Some(w) = rejects {
        w.finish()?;
    }
    let mut examples: Vec<Example> = positives.iter().map(|t| Example { label: 0, text: t }).collect();
    examples.extend(negatives.iter().map(|t| Example { label: 1, text: t }));
    let labels = vec!["positive".to_string(), "negative".to_string()];
    let bar = progress.counted("training", (examples.len() * a.epoch) as u64);
    let model = train::train(&examples, &labels, &hyper, &|d| bar.set_position(d))?;
    bar.finish_and_clear();
    model.save(&a.out)?;
    let loss = train::log_loss(&model, &examples, a.newlines)?;
    eprintln!(
        "syllabus classifier train: {} positives, {} negatives, {} words, {} buckets; log loss on the training set {loss:.4}; wrote {} ({:.2} s)",
        positives.len(),
        negatives.len(),
        model.dict.nwords,
        model.args.bucket,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
