//! Runs unit tests: the model's SQL on mocked inputs in a session of its
//! own, its rows compared with the expected rows as a multiset (order does
//! not matter, repeats do), as dbt compares them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast_with_options, concat_batches, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::run::Outcome;
use super::Status;
use crate::compile::unit_tests::{Fixture, Given, Input, UnitTest};
use crate::exec::Engine;

/// How many differing rows a failure's message shows.
const DIFF_ROWS: usize = 50;

/// Runs `tests`; `engine` holds the real inputs, whose column types the
/// mocked rows take.
pub async fn run_all(engine: &Engine, tests: &[UnitTest]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(tests.len());
    for t in tests {
        out.push(run(engine, t).await);
    }
    out
}

/// Runs one unit test.
pub async fn run(engine: &Engine, test: &UnitTest) -> Outcome {
    let clock = Instant::now();
    let (status, scanned, failing, message) = match check(engine, test).await {
        Ok(Compared { rows, differing: 0, .. }) => (Status::Pass, rows, 0, String::new()),
        Ok(c) => (Status::Fail, c.rows, c.differing, c.diff),
        Err(e) => (Status::Error, 0, 0, e),
    };
    Outcome {
        assertion: test.assertion(),
        status,
        scanned,
        failing,
        seconds: clock.elapsed().as_secs_f64(),
        message,
        sample: None,
        findings: None,
    }
}

/// The model's rows against the expected ones.
struct Compared {
    rows: u64,
    differing: u64,
    diff: String,
}

/// Text rows: one value per column, NULL as `NULL`.
type Rows = Vec<Vec<String>>;

async fn check(engine: &Engine, test: &UnitTest) -> Result<Compared, String> {
    let mock = engine.sibling();
    for g in &test.given {
        let rows = given_rows(engine, &mock, g).await.map_err(|e| format!("input `{}`: {e}", g.input.written()))?;
        let (schema, name) = match &g.input {
            Input::Source(s, t) => (Some(s.as_str()), t.as_str()),
            Input::Model(m) | Input::This(m) => (None, m.as_str()),
        };
        mock.register_mock(schema, name, rows).map_err(|e| format!("input `{}`: {e}", g.input.written()))?;
    }
    let (schema, batches) =
        mock.query(&test.sql).await.map_err(|e| format!("the model's SQL failed on the given rows: {e}"))?;
    let (columns, expected) = expected_rows(&mock, &test.expect, &schema).await?;
    let actual = text_rows(&select(&schema, &batches, &columns)?)?;
    Ok(compare(&columns, actual, expected))
}

/// Returns a mocked input's rows, typed as the real relation's columns
/// when `engine` has it (missing columns NULL), else as their values read.
async fn given_rows(engine: &Engine, mock: &Engine, g: &Given) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    match &g.fixture {
        Fixture::Sql(sql) => mock.query(sql).await.map_err(|e| e.to_string()),
        Fixture::Rows { columns, rows } => {
            let real = engine.relation_schema(&g.input.relation()).await.ok();
            let batch = match real {
                Some(schema) => typed_as(&schema, columns, rows)?,
                None => inferred(columns, rows)?,
            };
            Ok((batch.schema(), vec![batch]))
        }
    }
}

/// Builds rows with every column of `schema`, in its order.
fn typed_as(schema: &Schema, columns: &[String], rows: &[Vec<Option<String>>]) -> Result<RecordBatch, String> {
    if let Some(extra) = columns.iter().find(|c| schema.field_with_name(c).is_err()) {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(format!("the relation has no column `{extra}` (its columns: {})", names.join(", ")));
    }
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array = match columns.iter().position(|c| c == field.name()) {
            Some(i) => cast_text(&column_text(rows, i), field.data_type(), field.name())?,
            None => new_null_array(field.data_type(), rows.len()),
        };
        arrays.push(array);
    }
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    batch(Arc::new(Schema::new(fields)), arrays, rows.len())
}

/// Builds rows typed by their values: integers, decimals, booleans, else
/// text (an input whose relation is not built yet).
fn inferred(columns: &[String], rows: &[Vec<Option<String>>]) -> Result<RecordBatch, String> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (i, name) in columns.iter().enumerate() {
        let text = column_text(rows, i);
        let values: Vec<&str> = text.iter().flatten().copied().collect();
        let kind = if values.iter().all(|v| v.parse::<i64>().is_ok()) && !values.is_empty() {
            DataType::Int64
        } else if values.iter().all(|v| v.parse::<f64>().is_ok()) && !values.is_empty() {
            DataType::Float64
        } else if values.iter().all(|v| ["true", "false"].contains(v)) && !values.is_empty() {
            DataType::Boolean
        } else {
            DataType::Utf8
        };
        arrays.push(cast_text(&text, &kind, name)?);
        fields.push(Field::new(name, kind, true));
    }
    batch(Arc::new(Schema::new(fields)), arrays, rows.len())
}

fn batch(schema: SchemaRef, arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, String> {
    let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema, arrays, &options).map_err(|e| e.to_string())
}

fn column_text(rows: &[Vec<Option<String>>], i: usize) -> Vec<Option<&str>> {
    rows.iter().map(|r| r.get(i).and_then(|v| v.as_deref())).collect()
}

/// Casts text values to `to`; a value that does not fit is an error.
fn cast_text(values: &[Option<&str>], to: &DataType, column: &str) -> Result<ArrayRef, String> {
    let text: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(&text, to, &options).map_err(|e| format!("column `{column}` cannot be read as {to}: {e}"))
}

/// Returns the expected rows with the model's column types, and the
/// columns compared: those the expectation names (all of the model's when
/// it names none, as for `rows: []`).
async fn expected_rows(mock: &Engine, expect: &Fixture, actual: &Schema) -> Result<(Vec<String>, Rows), String> {
    let (columns, batch) = match expect {
        Fixture::Rows { columns, rows } if columns.is_empty() => {
            let all = actual.fields().iter().map(|f| f.name().clone()).collect();
            return Ok((all, vec![Vec::new(); rows.len()]));
        }
        Fixture::Rows { columns, rows } => {
            let mut arrays = Vec::new();
            for (i, name) in columns.iter().enumerate() {
                let field = actual_field(actual, name)?;
                arrays.push(cast_text(&column_text(rows, i), field.data_type(), name)?);
            }
            let fields: Vec<Field> =
                columns.iter().zip(&arrays).map(|(c, a)| Field::new(c, a.data_type().clone(), true)).collect();
            (columns.clone(), batch(Arc::new(Schema::new(fields)), arrays, rows.len())?)
        }
        Fixture::Sql(sql) => {
            let (schema, batches) = mock.query(sql).await.map_err(|e| format!("expect: {e}"))?;
            let whole = concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut arrays = Vec::new();
            for (i, name) in columns.iter().enumerate() {
                let to = actual_field(actual, name)?.data_type().clone();
                arrays
                    .push(cast_with_options(whole.column(i), &to, &CastOptions::default()).map_err(|e| e.to_string())?);
            }
            let fields: Vec<Field> =
                columns.iter().zip(&arrays).map(|(c, a)| Field::new(c, a.data_type().clone(), true)).collect();
            (columns, batch(Arc::new(Schema::new(fields)), arrays, whole.num_rows())?)
        }
    };
    Ok((columns, text_rows(&[batch])?))
}

fn actual_field<'a>(actual: &'a Schema, name: &str) -> Result<&'a Field, String> {
    actual.field_with_name(name).map_err(|_| {
        let names: Vec<&str> = actual.fields().iter().map(|f| f.name().as_str()).collect();
        format!("expected column `{name}` is not in the model's output (its columns: {})", names.join(", "))
    })
}

/// Keeps `columns` of the model's rows, in that order.
fn select(schema: &SchemaRef, batches: &[RecordBatch], columns: &[String]) -> Result<Vec<RecordBatch>, String> {
    let indices: Vec<usize> =
        columns.iter().map(|c| schema.index_of(c).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    batches.iter().map(|b| b.project(&indices).map_err(|e| e.to_string())).collect()
}

fn text_rows(batches: &[RecordBatch]) -> Result<Rows, String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    Ok(out)
}

/// Compares as multisets; the diff lists the rows only one side has, `-`
/// expected and `+` actual, sorted so that near rows sit together.
fn compare(columns: &[String], actual: Rows, expected: Rows) -> Compared {
    let rows = actual.len() as u64;
    let mut counts: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for r in actual {
        *counts.entry(r).or_default() += 1;
    }
    for r in expected {
        *counts.entry(r).or_default() -= 1;
    }
    let mut lines: Vec<(String, &Vec<String>)> = Vec::new();
    for (row, n) in counts.iter().filter(|(_, n)| **n != 0) {
        let sign = if *n > 0 { "+" } else { "-" };
        for _ in 0..n.unsigned_abs() {
            lines.push((sign.to_string(), row));
        }
    }
    let differing = lines.len() as u64;
    if differing == 0 {
        return Compared { rows, differing, diff: String::new() };
    }
    let (plus, minus) = (lines.iter().filter(|l| l.0 == "+").count(), lines.iter().filter(|l| l.0 == "-").count());
    let mut diff = format!(
        "actual differs from expected: {plus} row(s) only in actual (+), {minus} only in expected (-)\n{}",
        table(columns, &lines)
    );
    if lines.len() > DIFF_ROWS {
        diff.push_str(&format!("\n  ... and {} more", lines.len() - DIFF_ROWS));
    }
    Compared { rows, differing, diff }
}

/// Renders the differing rows as an aligned table.
fn table(columns: &[String], lines: &[(String, &Vec<String>)]) -> String {
    let shown = &lines[..lines.len().min(DIFF_ROWS)];
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| shown.iter().map(|(_, r)| r[i].chars().count()).chain([c.chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |sign: &str, cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("  {sign} | {}", padded.join(" | ")).trim_end().to_string()
    };
    let mut out = vec![line(" ", columns)];
    out.extend(shown.iter().map(|(sign, row)| line(sign, row)));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[&str]]) -> Rows {
        v.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect()
    }

    #[test]
    fn multiset_ignores_order_and_counts_repeats() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let same = compare(&cols, rows(&[&["1", "a"], &["2", "b"]]), rows(&[&["2", "b"], &["1", "a"]]));
        assert_eq!(same.differing, 0);
        let repeated = compare(&cols, rows(&[&["1", "a"], &["1", "a"]]), rows(&[&["1", "a"]]));
        assert_eq!(repeated.differing, 1);
        assert!(repeated.diff.contains("1 row(s) only in actual (+), 0 only in expected (-)"), "{}", repeated.diff);
        let changed = compare(&cols, rows(&[&["1", "x"]]), rows(&[&["1", "a"]]));
        let lines: Vec<&str> = changed.diff.lines().collect();
        assert_eq!(lines[1..], ["    | id | v", "  - | 1  | a", "  + | 1  | x"]);
    }
}
