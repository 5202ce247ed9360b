//! A result column read as plain values, whatever type the query gave
//! it: text, microseconds since the epoch, or doubles. The monitors, the
//! forecast models and the histories read their queries' results so.

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// Column `i` as text; None when it cannot be cast.
pub fn text(b: &RecordBatch, i: usize) -> Option<StringArray> {
    let c = cast(b.column(i), &DataType::Utf8).ok()?;
    c.as_any().downcast_ref::<StringArray>().cloned()
}

/// Column `i` (a date or timestamp) as microseconds since the epoch.
pub fn micros(b: &RecordBatch, i: usize) -> Option<Int64Array> {
    let c = cast(b.column(i), &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
    let c = cast(&c, &DataType::Int64).ok()?;
    c.as_any().downcast_ref::<Int64Array>().cloned()
}

/// Column `i` as doubles.
pub fn floats(b: &RecordBatch, i: usize) -> Option<Float64Array> {
    let c = cast(b.column(i), &DataType::Float64).ok()?;
    c.as_any().downcast_ref::<Float64Array>().cloned()
}
