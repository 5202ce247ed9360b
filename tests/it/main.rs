//! wh's integration tests: one binary (each test binary links DataFusion,
//! so one link instead of ten), a module per area. They run the real `wh`
//! binary on copies of the example project and fixture projects, and read
//! the Parquet it publishes back.

mod common;

mod architecture;
#[cfg(feature = "ballista")]
mod ballista;
mod build;
mod cdp;
mod cli;
mod dbt;
mod docs;
mod errors;
mod faults;
mod fuzz;
mod fuzz_sources;
mod golden;
mod incremental;
mod lineage;
mod monitors;
mod outbound;
mod quality;
mod scale;
mod security;
