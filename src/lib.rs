//! wh: a declarative data-warehouse build tool. Project files flow one way:
//! project -> compile -> graph -> exec -> artifacts.

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
pub mod freshness;
pub mod graph;
pub mod lineage;
pub mod project;
pub mod quality;
pub mod state;
pub mod storage;
