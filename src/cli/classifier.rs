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
    /// __label__negative) that fastText's load_model reads and `score classifier` applies; or
    /// from fastText-format labelled text (--input).
    Train(Box<TrainArgs>),
}

#[derive(Args)]
pub(super) struct TrainArgs {
    /// Positive documents: files, directories or globs.
    #[arg(long, num_args = 1.., required_unless_present = "input", conflicts_with = "input")]
    positive: Vec<String>,
    /// Negative documents.
    #[arg(long, num_args = 1.., required_unless_present_any = ["negatives_from", "input"], conflicts_with_all = ["negatives_from", "input"])]
    negative: Vec<String>,
    /// Instead: text files in fastText's training format (a line: its labels, words starting
    /// with --label-prefix, and its text), as `fasttext supervised -input` reads them; any
    /// number of labels.
    #[arg(long, num_args = 1.., conflicts_with = "negatives_from")]
    input: Vec<PathBuf>,
    /// The prefix that marks a label in --input (written into the model as it is).
    #[arg(long, default_value = "__label__", requires = "input")]
    label_prefix: String,
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
    let (labels, owned, counts) = if a.input.is_empty() {
        let (positives, negatives) = documents(&a)?;
        let counts = format!("{} positives, {} negatives", positives.len(), negatives.len());
        let mut owned: Vec<(Vec<u32>, String)> = positives.into_iter().map(|t| (vec![0], t)).collect();
        owned.extend(negatives.into_iter().map(|t| (vec![1], t)));
        (vec!["__label__positive".to_string(), "__label__negative".to_string()], owned, counts)
    } else {
        let l = train::read_labelled(&a.input, &a.label_prefix)?;
        if l.labels.len() < 2 {
            anyhow::bail!(
                "--input: {} label(s) found (prefix {:?}); a classifier needs two",
                l.labels.len(),
                a.label_prefix
            );
        }
        let counts = format!(
            "{} labelled lines ({} labels; {} lines without a label skipped)",
            l.lines.len(),
            l.labels.len(),
            l.unlabelled
        );
        (l.labels, l.lines, counts)
    };
    let examples: Vec<Example> = owned.iter().map(|(labels, text)| Example { labels, text }).collect();
    let bar = progress.counted("training", (examples.len() * a.epoch) as u64);
    let saved = train::train_and_save(&examples, &labels, &hyper, &|d| bar.set_position(d), &a.out)?;
    bar.finish_and_clear();
    eprintln!(
        "syllabus classifier train: {counts}, {} words, {} buckets; log loss on the training set {:.4}; wrote {} ({:.2} s)",
        saved.nwords,
        saved.buckets,
        saved.train_log_loss,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The positives and negatives of --positive and --negative or --negatives-from.
fn documents(a: &TrainArgs) -> anyhow::Result<(Vec<String>, Vec<String>)> {
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
    Ok((positives, negatives))
}
