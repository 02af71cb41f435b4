//! Text features shared by the scorers: Python-compatible lowercasing and nltk's `wordpunct`
//! tokenizer.

mod pyunicode_tables;
pub mod wordpunct;

pub use wordpunct::{py_lower_into, wordpunct_spans};
