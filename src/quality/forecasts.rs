//! The forecast history: every forecast a forecast model made, under
//! `warehouse/_wh/forecasts/` (one Parquet file per model and run, staged
//! with the model's table so that both are published together; `wh query
//! "select * from wh_forecast_history"`). A `method: forecast` monitor with
//! `forecast_model` judges each bucket against the latest forecast made
//! for it before it began; the charts draw the latest forecast ahead.

use std::collections::BTreeMap;

use crate::compile::assertions::monitor::{dimension_sql, Forecasted};
use crate::exec::{columns, Engine};
use crate::project::config::ForecastSpec;
use crate::storage::Warehouse;

/// The forecast history folder inside a warehouse.
pub const DIR: &str = "_wh/forecasts";
/// The forecast history's table name in queries.
pub const TABLE: &str = "wh_forecast_history";

/// One forecast bucket of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub dimension: String,
    /// Microseconds since the epoch.
    pub bucket: i64,
    /// The last bucket its training held.
    pub trained_through: i64,
    pub forecast: Forecasted,
}

/// Every forecast in the history, by model; empty when there is none.
pub async fn load(engine: &Engine, warehouse: &Warehouse) -> BTreeMap<String, Vec<Made>> {
    let dir = format!("{DIR}/");
    if !warehouse.exists(&dir).await.unwrap_or(false)
        || engine.register_published(TABLE, &warehouse.location(&dir)).await.is_err()
    {
        return BTreeMap::new();
    }
    let sql = format!(
        "select model, dimension, bucket_start, trained_through, forecast, lower, upper, level from {TABLE} \
         order by model, dimension, bucket_start, trained_through, run_started_at"
    );
    let Ok((_, batches)) = engine.query(&sql).await else { return BTreeMap::new() };
    let mut out: BTreeMap<String, Vec<Made>> = BTreeMap::new();
    for b in &batches {
        let texts = [0, 1].map(|i| columns::text(b, i));
        let times = [2, 3].map(|i| columns::micros(b, i));
        let numbers = [4, 5, 6, 7].map(|i| columns::floats(b, i));
        let ([Some(model), Some(dimension)], [Some(bucket), Some(through)], [Some(p), Some(l), Some(u), Some(lv)]) =
            (texts, times, numbers)
        else {
            continue;
        };
        for i in 0..b.num_rows() {
            let forecast = Forecasted { point: p.value(i), lower: l.value(i), upper: u.value(i), level: lv.value(i) };
            let made = Made {
                dimension: dimension.value(i).to_string(),
                bucket: bucket.value(i),
                trained_through: through.value(i),
                forecast,
            };
            out.entry(model.value(i).to_string()).or_default().push(made);
        }
    }
    out
}

/// For each (dimension, bucket): the forecast made last before the bucket
/// began (the largest `trained_through` before it).
pub fn made_before(rows: &[Made]) -> BTreeMap<(String, i64), Forecasted> {
    let mut best: BTreeMap<(String, i64), (i64, Forecasted)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.trained_through < r.bucket) {
        let at = (r.dimension.clone(), r.bucket);
        if best.get(&at).is_none_or(|(through, _)| r.trained_through >= *through) {
            best.insert(at, (r.trained_through, r.forecast));
        }
    }
    best.into_iter().map(|(k, (_, f))| (k, f)).collect()
}

/// Each dimension value's latest forecast: the buckets of its newest
/// training.
pub fn latest(rows: &[Made]) -> BTreeMap<String, Vec<(i64, Forecasted)>> {
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for r in rows {
        let t = newest.entry(&r.dimension).or_insert(r.trained_through);
        *t = (*t).max(r.trained_through);
    }
    let mut out: BTreeMap<String, Vec<(i64, Forecasted)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| newest.get(r.dimension.as_str()) == Some(&r.trained_through)) {
        out.entry(r.dimension.clone()).or_default().push((r.bucket, r.forecast));
    }
    out
}

/// The SQL giving a forecast model's staged table (registered as `name`)
/// as rows of the forecast history.
pub fn history_sql(name: &str, spec: &ForecastSpec, run_id: &str, started_micros: i64) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "select {model} as model, {run} as run_id, to_timestamp_micros({started_micros}) as run_started_at, \
         {dimension} as dimension, cast({ts} as timestamp) as bucket_start, \
         cast(trained_through as timestamp) as trained_through, step, forecast, lower, upper, level, method \
         from {table} as t order by dimension, bucket_start",
        model = literal(name),
        run = literal(run_id),
        dimension = dimension_sql(&spec.dimensions.0),
        ts = quote(&spec.timestamp_column),
        table = quote(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(bucket: i64, through: i64, point: f64) -> Made {
        let forecast = Forecasted { point, lower: point - 1.0, upper: point + 1.0, level: 0.9 };
        Made { dimension: "c=A".into(), bucket, trained_through: through, forecast }
    }

    #[test]
    fn a_bucket_is_judged_by_the_last_forecast_made_before_it() {
        let rows = [made(5, 3, 10.0), made(5, 4, 11.0), made(5, 5, 99.0), made(6, 4, 12.0)];
        let before = made_before(&rows);
        assert_eq!(before[&("c=A".to_string(), 5)].point, 11.0, "trained through 5 is not before 5");
        assert_eq!(before[&("c=A".to_string(), 6)].point, 12.0);
        let ahead = latest(&rows);
        assert_eq!(ahead["c=A"], vec![(5, rows[2].forecast)]);
    }
}
