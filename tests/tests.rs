//! One integration-test binary (see tests/*.rs for the groups).

mod util;

mod classifier;
#[cfg(feature = "cluster")]
mod cluster;
mod contamination;
mod curriculum;
mod dedup;
mod determinism;
mod dsir_parity;
mod eval;
mod hardening;
mod kmeans;
mod layers;
mod methods;
mod mix;
mod pipeline;
mod proxy;
mod resume;
#[cfg(feature = "cluster")]
mod security;
mod serve;
mod sources;
mod sql;
mod store;
mod zipfit;
