//! Scorers: each adds columns to a batch of documents and does no IO.
//!
//! [`Scorer`] is the one trait every surface calls: the lake passes (`passes::scored`), the
//! SQL functions (`sql::udf::scorer_udf`), the cluster's function and codec
//! (`cluster::udf::ScorerUdf`). A method fits one ([`crate::methods`]) and hands it on.

pub mod contamination;
pub(crate) mod deflate_len;
pub mod dsir;
pub mod random;
pub mod sha256;
pub mod zipfit;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;

use crate::batch::RecordBatch;
use crate::error::Result;
use crate::source::{KeptLake, SourceBatch};

/// A fitted scoring method: a pure function of a batch of documents (id, text, ...).
pub trait Scorer: Send + Sync {
    /// The scorer's name, by which its method's `decode` ([`crate::methods::Method`]) rebuilds
    /// it from its state.
    fn name(&self) -> &'static str;
    /// The columns `score` returns, in order; the first one is the ranking score (float64).
    fn output_fields(&self) -> Vec<Field>;
    /// Score every row of a batch, one array per output field.
    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>>;
    /// Score the rows of a lake pass (`b.first_row` says where they are in the lake): by
    /// default [`Scorer::score`]; a scorer that kept what its fit saw of the lake uses it.
    fn score_rows(&self, b: &SourceBatch) -> Result<Vec<ArrayRef>> {
        self.score(&b.batch)
    }
    /// The whole lake as the scorer's fit read it, when the fit kept every row's features
    /// and rejected none: a scoring pass from the lake's start hands these batches to
    /// [`Scorer::score_rows`] instead of reading the lake again. None: read the lake.
    fn kept_lake(&self) -> Option<&KeptLake> {
        None
    }
    /// The lake pass that scores rows is over: a scorer may drop what it kept for it (the
    /// pass that follows, writing the selection, can then reuse that memory). Scoring again
    /// afterwards still works, only without what was dropped.
    fn scoring_done(&self) {}
    /// Whether row `i` (with these scores) may be selected.
    fn eligible(&self, _columns: &[ArrayRef], _i: usize) -> bool {
        true
    }
    /// Which rows are eligible, in words, for the error when k is too large.
    fn eligibility(&self) -> String {
        "rows".into()
    }
    /// [`Scorer::eligible`] in SQL, over `s`, the struct of the output fields (None: every
    /// row), and a cheaper scorer whose output that condition can read instead (None: this
    /// one): the cluster counts eligible rows with them before it selects.
    fn eligible_sql(&self) -> Option<(String, Option<std::sync::Arc<dyn Scorer>>)> {
        None
    }
    /// The fitted state, which its method's decoder turns back into this scorer (the cluster
    /// ships it with the plan).
    fn state(&self) -> Result<Vec<u8>>;
    /// What `--save-model` and a pipeline's model file keep: by default the state; a scorer
    /// whose model has a format of its own (a fastText classifier's `.bin`) writes that.
    fn saved(&self) -> Result<Vec<u8>> {
        self.state()
    }
}
