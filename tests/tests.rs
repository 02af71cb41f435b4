//! One integration-test binary (see tests/*.rs for the groups).

mod util;

mod determinism;
mod dsir_parity;
mod pipeline;
mod sources;
mod zipfit;
