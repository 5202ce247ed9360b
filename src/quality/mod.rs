//! Data quality assertions at run time: run against staged or published
//! data, and recorded in an append-only history. What an assertion is and
//! the SQL that checks it are `crate::compile::assertions`.

pub mod forecasts;
pub mod history;
pub mod monitor;
pub mod run;
pub mod unit;

pub use crate::compile::assertions::{Assertion, Severity, Status, Subject, Threshold};
