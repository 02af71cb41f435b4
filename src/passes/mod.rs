//! The lake passes every scoring method shares, below the methods and the commands: score a
//! lake in parallel batches and keep the best rows ([`scored`]), fit DSIR over a target and
//! the lake ([`dsir`]), read a ZIP-FIT target set ([`zipfit`]), and keep each finished file
//! so that an interrupted pass resumes ([`work`]).

pub mod contamination;
pub mod dsir;
pub mod scored;
pub mod work;
pub mod zipfit;

pub use scored::{Keep, RunReport, ScoredLake};
