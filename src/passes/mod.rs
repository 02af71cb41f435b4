//! The lake passes every scoring method shares, below the commands and `syllabus run`:
//! score a lake in parallel batches and keep the best rows ([`scored`]), fit DSIR over a
//! target and the lake ([`dsir`]), read a ZIP-FIT target set ([`zipfit`]), draw at random
//! ([`random`]), and keep each finished file so an interrupted pass resumes ([`work`]).

pub mod dsir;
pub mod random;
pub mod scored;
pub mod work;
pub mod zipfit;

pub use dsir::{DsirJob, DsirRowScorer, FeatureCache, Fitted};
pub use random::RandomRowScorer;
pub use scored::{Keep, RowScorer, RunReport, ScoredLake};
pub use zipfit::ZipfitRowScorer;
