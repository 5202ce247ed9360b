//! What an assertion is: its kind and parameters, the relation it checks,
//! severity, thresholds and filter (parsed from dbt's `data_tests:` /
//! `tests:` YAML and singular test files), and in [`sql`] the SQL that
//! finds its failing rows. Running them is the `quality` module.

pub mod monitor;
pub mod sql;

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value as Json};

use crate::diagnostic::Location;

/// How bad a failing assertion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warn,
    Error,
}

impl Severity {
    /// Returns `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// An assertion's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// The assertion's own SQL failed.
    Error,
}

impl Status {
    /// Returns dbt's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// A comparison on the failing-row count or percentage: `">0"`, `">=10"`,
/// `">1%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: Op,
    pub value: f64,
    pub percent: bool,
}

/// Comparison operators of thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Threshold {
    /// The default: any failing row.
    pub const ANY: Threshold = Threshold { op: Op::Gt, value: 0.0, percent: false };

    /// Parses `">10"`, `">= 5"`, `">1%"`, `"!=0"`.
    pub fn parse(text: &str) -> Option<Threshold> {
        let t = text.trim();
        let (op, rest) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("<>", Op::Ne),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(s, op)| t.strip_prefix(s).map(|r| (*op, r.trim())))?;
        let (num, percent) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (rest, false),
        };
        Some(Threshold { op, value: num.parse().ok()?, percent })
    }

    /// Tells whether `failing` rows out of `scanned` trip the threshold.
    pub fn trips(&self, failing: u64, scanned: u64) -> bool {
        let x = if self.percent {
            if scanned == 0 {
                0.0
            } else {
                failing as f64 * 100.0 / scanned as f64
            }
        } else {
            failing as f64
        };
        match self.op {
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Eq => x == self.value,
            Op::Ne => x != self.value,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ne => "!=",
        };
        write!(f, "{op}{}{}", self.value, if self.percent { "%" } else { "" })
    }
}

/// What an assertion checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// A model, by name.
    Model(String),
    /// A source table, by `source.table`.
    Source(String),
}

impl Subject {
    /// Returns the model name or source key.
    pub fn name(&self) -> &str {
        match self {
            Subject::Model(n) | Subject::Source(n) => n,
        }
    }
}

/// A compiled assertion, ready to run.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// `test.<project>.<name>`.
    pub unique_id: String,
    /// Unique name, e.g. `not_null_stg_orders_order_id`.
    pub name: String,
    /// The test's kind: `not_null`, `unique`, ..., a custom test's name, or
    /// `singular`.
    pub kind: String,
    pub subject: Subject,
    pub column: Option<String>,
    /// Parameters as declared, for records.
    pub params: Map<String, Json>,
    pub severity: Severity,
    pub warn_if: Threshold,
    pub error_if: Threshold,
    pub filter: Option<String>,
    /// dbt's `fail_calc`: how the failing rows count (`count(*)` unless
    /// set, e.g. `sum(n_records)`).
    pub fail_calc: Option<String>,
    /// A query selecting the failing rows.
    pub failing_sql: String,
    /// For row-level checks: a predicate true on a failing row, so that all
    /// such checks on one relation share one scan.
    pub row_predicate: Option<String>,
    /// Models (besides the subject) the assertion reads.
    pub depends_on: BTreeSet<String>,
    pub defined_at: Location,
    /// For a metric monitor: what it computes and scores; `failing_sql`
    /// then gives the metric per bucket.
    pub monitor: Option<Box<monitor::Monitor>>,
}

impl Assertion {
    /// Returns the status for `failing` of `scanned` rows.
    pub fn judge(&self, failing: u64, scanned: u64) -> Status {
        if self.severity == Severity::Error && self.error_if.trips(failing, scanned) {
            Status::Fail
        } else if self.warn_if.trips(failing, scanned) {
            Status::Warn
        } else {
            Status::Pass
        }
    }

    /// Returns the threshold that decides a failure, for records.
    pub fn threshold_text(&self) -> String {
        match self.severity {
            Severity::Error => format!("error_if {}; warn_if {}", self.error_if, self.warn_if),
            Severity::Warn => format!("warn_if {}", self.warn_if),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t = Threshold::parse(">10").unwrap();
        assert!(t.trips(11, 100) && !t.trips(10, 100));
        let p = Threshold::parse(">1%").unwrap();
        assert!(p.trips(2, 100) && !p.trips(1, 100) && !p.trips(5, 0));
        assert_eq!(Threshold::parse(">= 5").unwrap().op, Op::Ge);
        assert!(Threshold::parse("five").is_none());
        assert_eq!(Threshold::parse("!=0").unwrap().to_string(), "!=0");
    }
}
