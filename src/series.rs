//! Time series: the buckets metrics are computed in, and forecasts of a
//! series of buckets with bounds at a chosen level (MSTL with an AutoETS
//! trend and plain AutoETS from `augurs`; a seasonal-naive baseline).
//! Plain numbers in, plain numbers out: what the series means is the
//! callers' (`exec::forecast` builds forecast tables, `quality::monitor`
//! judges buckets against forecasts).

use augurs_core::{Fit, Predict};
use serde::{Deserialize, Serialize};

/// The width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    #[default]
    Day,
    Week,
}

impl Bucket {
    /// Returns the name `date_trunc` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }

    /// Returns the bucket's width in microseconds.
    pub fn micros(self) -> i64 {
        const HOUR: i64 = 3_600_000_000;
        match self {
            Bucket::Hour => HOUR,
            Bucket::Day => 24 * HOUR,
            Bucket::Week => 7 * 24 * HOUR,
        }
    }

    /// Reads `hour`, `day` or `week`.
    pub fn parse(name: &str) -> Result<Bucket, String> {
        match name {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            other => Err(format!("time_bucket `{other}` is not one of hour, day, week")),
        }
    }

    /// Buckets per season: weekdays of days, hours of a day, weeks of a year.
    pub fn default_season(self) -> usize {
        match self {
            Bucket::Hour => 24,
            Bucket::Day => 7,
            Bucket::Week => 52,
        }
    }
}

/// How a series is forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forecaster {
    /// MSTL decomposition (the season) with an AutoETS model of the rest
    /// (level and trend), as statsforecast's `MSTL`.
    #[default]
    Mstl,
    /// AutoETS without a season: level and trend only.
    Ets,
    /// The value one season before, with bounds from the spread of the
    /// seasonal differences: the baseline the others must beat.
    SeasonalNaive,
}

impl Forecaster {
    /// Returns the method's name as declared.
    pub fn as_str(self) -> &'static str {
        match self {
            Forecaster::Mstl => "mstl",
            Forecaster::Ets => "ets",
            Forecaster::SeasonalNaive => "seasonal_naive",
        }
    }

    /// Reads `mstl`, `ets` or `seasonal_naive`.
    pub fn parse(name: &str) -> Result<Forecaster, String> {
        match name {
            "mstl" => Ok(Forecaster::Mstl),
            "ets" => Ok(Forecaster::Ets),
            "seasonal_naive" => Ok(Forecaster::SeasonalNaive),
            other => Err(format!("forecaster `{other}` is not one of mstl, ets, seasonal_naive")),
        }
    }
}

/// Why a series cannot be forecast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("the series holds a value that is not a finite number")]
    NotFinite,
    #[error("{method} needs at least {need} buckets of history, not {got}")]
    TooShort { method: &'static str, need: usize, got: usize },
    #[error("{0}")]
    Model(String),
}

/// A forecast of the buckets after a series: point forecasts and bounds,
/// one per step ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub point: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// The model that made it, e.g. `mstl(7) + ETS(A,A,N)`.
    pub model: String,
}

/// Forecasts `horizon` buckets after `y` with bounds at `level` (between 0
/// and 1). `season` is the buckets per season. Deterministic: the same
/// series gives the same forecast.
pub fn forecast(
    y: &[f64],
    how: Forecaster,
    season: usize,
    horizon: usize,
    level: f64,
) -> Result<Forecast, SeriesError> {
    if y.iter().any(|v| !v.is_finite()) {
        return Err(SeriesError::NotFinite);
    }
    let need = needs(how, season);
    if y.len() < need {
        return Err(SeriesError::TooShort { method: how.as_str(), need, got: y.len() });
    }
    match how {
        Forecaster::Mstl => mstl(y, season, horizon, level),
        Forecaster::Ets => ets(y, horizon, level),
        Forecaster::SeasonalNaive => Ok(seasonal_naive(y, season, horizon, level)),
    }
}

/// The buckets of history a method needs.
pub fn needs(how: Forecaster, season: usize) -> usize {
    match how {
        Forecaster::Mstl => 2 * season.max(1) + 1,
        Forecaster::Ets => 8,
        Forecaster::SeasonalNaive => season.max(1) + 2,
    }
}

/// Forecasts with `how`, or, for a series too short for it, with
/// seasonal naive; None when the series is too short for that too.
pub fn forecast_or_naive(
    y: &[f64],
    how: Forecaster,
    season: usize,
    horizon: usize,
    level: f64,
) -> Option<Result<Forecast, SeriesError>> {
    if y.len() >= needs(how, season) {
        return Some(forecast(y, how, season, horizon, level));
    }
    (y.len() >= needs(Forecaster::SeasonalNaive, season))
        .then(|| forecast(y, Forecaster::SeasonalNaive, season, horizon, level))
}

fn mstl(y: &[f64], season: usize, horizon: usize, level: f64) -> Result<Forecast, SeriesError> {
    let fail = |e: augurs_mstl::Error| SeriesError::Model(format!("MSTL: {e}"));
    let trend = augurs_ets::AutoETS::non_seasonal().into_trend_model();
    let fitted = augurs_mstl::MSTLModel::new(vec![season], trend).fit(y).map_err(fail)?;
    let out = fitted.predict(horizon, Some(level)).map_err(fail)?;
    Ok(with_bounds(out, format!("mstl({season}) + AutoETS trend")))
}

fn ets(y: &[f64], horizon: usize, level: f64) -> Result<Forecast, SeriesError> {
    let fail = |e: augurs_ets::Error| SeriesError::Model(format!("ETS: {e}"));
    let fitted = augurs_ets::AutoETS::non_seasonal().fit(y).map_err(fail)?;
    let t = fitted.model().model_type();
    let letter = |c: &dyn std::fmt::Debug| format!("{c:?}").chars().next().unwrap_or('N');
    let name = format!("ETS({},{},{})", letter(&t.error), letter(&t.trend), letter(&t.season));
    let out = fitted.predict(horizon, Some(level)).map_err(fail)?;
    Ok(with_bounds(out, name))
}

fn with_bounds(f: augurs_core::Forecast, model: String) -> Forecast {
    let (lower, upper) = match f.intervals {
        Some(i) => (i.lower, i.upper),
        None => (f.point.clone(), f.point.clone()),
    };
    Forecast { point: f.point, lower, upper, model }
}

/// The last season repeated; the bounds are ± z × the standard deviation
/// of the seasonal differences, widened with the square root of the
/// seasons ahead (as a random walk of seasons).
fn seasonal_naive(y: &[f64], season: usize, horizon: usize, level: f64) -> Forecast {
    let season = season.max(1);
    let diffs: Vec<f64> = y.windows(season + 1).map(|w| w[season] - w[0]).collect();
    let n = diffs.len().max(2) as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let z = z_of(level);
    let last = &y[y.len() - season..];
    let (mut point, mut lower, mut upper) = (Vec::new(), Vec::new(), Vec::new());
    for h in 0..horizon {
        let p = last[h % season];
        let width = z * sd * (((h / season) + 1) as f64).sqrt();
        point.push(p);
        lower.push(p - width);
        upper.push(p + width);
    }
    Forecast { point, lower, upper, model: format!("seasonal_naive({season})") }
}

/// The standard normal quantile whose two-sided interval holds `level`.
pub fn z_of(level: f64) -> f64 {
    distrs::Normal::ppf(0.5 + level.clamp(0.0, 0.999_999) / 2.0, 0.0, 1.0)
}

/// The two-sided level of a band of ± `z` standard deviations.
pub fn level_of(z: f64) -> f64 {
    2.0 * distrs::Normal::cdf(z, 0.0, 1.0) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: [f64; 7] = [100.0, 104.0, 98.0, 101.0, 120.0, 140.0, 60.0];

    /// A weekly pattern growing 10% over 200 days, with small deterministic noise.
    fn series(n: usize) -> Vec<f64> {
        (0..n).map(|i| WEEK[i % 7] * (1.0 + i as f64 / 2000.0) + ((i * 7919) % 11) as f64 / 2.0 - 2.5).collect()
    }

    fn mape(f: &[f64], actual: &[f64]) -> f64 {
        f.iter().zip(actual).map(|(p, a)| ((p - a) / a).abs()).sum::<f64>() / f.len() as f64 * 100.0
    }

    #[test]
    fn mstl_follows_the_season_and_beats_no_season() {
        let y = series(210);
        let (train, test) = y.split_at(196);
        let m = forecast(train, Forecaster::Mstl, 7, 14, 0.9).unwrap();
        let flat = forecast(train, Forecaster::Ets, 7, 14, 0.9).unwrap();
        assert!(mape(&m.point, test) < 5.0, "{:?}", m.point);
        assert!(mape(&m.point, test) < mape(&flat.point, test) / 3.0);
        assert!(m.lower.iter().zip(&m.point).zip(&m.upper).all(|((l, p), u)| l < p && p < u));
        assert_eq!(m, forecast(train, Forecaster::Mstl, 7, 14, 0.9).unwrap(), "deterministic");
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let y = series(28);
        let f = forecast(&y, Forecaster::SeasonalNaive, 7, 9, 0.95).unwrap();
        assert_eq!(f.point[..7], y[21..]);
        assert_eq!(f.point[7], y[21]);
        assert!(f.upper[8] - f.point[8] > f.upper[0] - f.point[0], "the second season is wider");
    }

    #[test]
    fn short_or_broken_series_are_refused_with_the_reason() {
        let e = forecast(&[1.0, 2.0], Forecaster::Mstl, 7, 3, 0.9).unwrap_err();
        assert!(e.to_string().contains("at least 15"), "{e}");
        let e = forecast(&[f64::NAN; 30], Forecaster::Mstl, 7, 3, 0.9).unwrap_err();
        assert_eq!(e, SeriesError::NotFinite);
    }

    #[test]
    fn levels_and_z_agree() {
        assert!((z_of(0.95) - 1.959_964).abs() < 1e-4);
        assert!((level_of(3.0) - 0.9973).abs() < 1e-4);
    }
}
