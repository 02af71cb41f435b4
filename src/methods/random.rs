//! The random baseline: k documents drawn uniformly without replacement, which every
//! selection method should beat. Gumbel top-k on equal weights is exactly that, so it shares
//! DSIR's numpy-identical noise (a row's draw depends on its position among the rows and the
//! seed). Nothing to fit; the scorer ([`crate::score::random::RandomScorer`]) writes 0.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::error::Result;
use crate::score::random::{RandomScorer, COL_RANDOM};
use crate::score::Scorer;
use crate::source::RejectWriter;

pub struct Random;

/// No settings: the seed is the command's (`--seed`) or the pipeline's.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

impl Method for Random {
    const INFO: Info = Info {
        name: "random",
        score_about: "",
        select_about: "k documents drawn uniformly at random without replacement (Gumbel top-k on equal weights, numpy's draws): the baseline a selection method should beat",
        score_command: false,
        columns: &[COL_RANDOM],
        fit: FitPass::None,
        target_option: "",
        sampling: Sampling::Gumbel { top_k_option: false },
        k_below_eligible: false,
        model_file: None,
        sql: None,
        cluster: false,
    };
    type Settings = Settings;

    fn validate(_: &Settings) -> Result<()> {
        Ok(())
    }

    fn fit(_: &Settings, _: &FitLake, _: Option<&mut RejectWriter>) -> Result<Fitted> {
        Ok(Fitted { scorer: Arc::new(RandomScorer), target_stats: Vec::new() })
    }

    fn decode(name: &str, _: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == "random").then(|| Ok(Arc::new(RandomScorer) as Arc<dyn Scorer>))
    }
}
