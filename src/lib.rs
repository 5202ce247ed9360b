//! wh: a declarative data-warehouse build tool. Each module imports only
//! from the layers below it (docs/src/architecture.md draws them; the
//! `architecture` integration test keeps the drawing true):
//!
//! project -> compile -> graph -> storage -> exec -> quality -> results ->
//! lineage -> policy, state -> pipeline -> artifacts and reports ->
//! commands.

pub mod alerts;
pub mod artifacts;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod compile;
pub mod datagen;
pub mod diagnostic;
pub mod docs;
pub mod error;
pub mod exec;
pub mod failpoint;
pub mod freshness;
pub mod graph;
pub mod lineage;
pub mod pipeline;
pub mod policy;
pub mod project;
pub mod quality;
pub mod results;
pub mod series;
pub mod state;
pub mod storage;
