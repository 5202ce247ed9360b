//! Data quality assertions: parsed from YAML (dbt's `data_tests:`/`tests:`
//! syntax) and from singular test files, compiled to SQL, run against
//! staged or published data, and recorded in an append-only history.

pub mod history;
pub mod junit;
pub mod run;
pub mod spec;
pub mod sql;

pub use spec::{Assertion, Severity, Status, Subject, Threshold};
