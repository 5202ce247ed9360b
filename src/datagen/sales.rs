//! The shape of the generated order history, for the sales monitors: how
//! many days it spans, a weekly season and a trend, and known anomalies to
//! find (a drop of some percent of the lines on chosen days and
//! categories, a level shift from a day on). The default shape is the
//! plain one: three years from 2022-01-01, every day alike, and the same
//! random stream as before shapes existed, so the same seed still gives
//! the same files.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Relative order volume Monday to Sunday, with `weekly`.
const WEEKDAYS: [f64; 7] = [1.0, 0.95, 1.0, 1.05, 1.2, 1.35, 0.6];

/// How the orders spread over time, and the anomalies injected.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub start: NaiveDate,
    pub days: u32,
    /// Weekday volumes follow [`WEEKDAYS`].
    pub weekly: bool,
    /// Volume grows by this percentage from the first day to the last.
    pub trend_pct: f64,
    pub drops: Vec<Drop>,
    pub shift: Option<Shift>,
}

/// Lines removed on one day: `pct` percent of them, of one category or of
/// every category (then whole orders go).
#[derive(Debug, Clone, PartialEq)]
pub struct Drop {
    pub day: NaiveDate,
    pub category: Option<String>,
    pub pct: f64,
}

/// From `from` on, the order volume changes by `pct` percent.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub from: NaiveDate,
    pub pct: f64,
}

impl Default for Shape {
    fn default() -> Shape {
        let start = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap_or_default();
        Shape { start, days: 1096, weekly: false, trend_pct: 0.0, drops: Vec::new(), shift: None }
    }
}

impl Shape {
    /// Returns the day offsets' cumulative weights, or None for the plain
    /// shape (every day alike: drawn as before shapes existed).
    pub fn day_cdf(&self) -> Option<Vec<f64>> {
        if !self.weekly && self.trend_pct == 0.0 && self.shift.is_none() {
            return None;
        }
        let mut acc = 0.0;
        let span = f64::from(self.days.max(2) - 1);
        let weights = (0..self.days).map(|i| {
            let day = self.start + chrono::Duration::days(i64::from(i));
            let mut w = 1.0 + self.trend_pct / 100.0 * f64::from(i) / span;
            if self.weekly {
                w *= WEEKDAYS[day.weekday().num_days_from_monday() as usize];
            }
            if let Some(s) = self.shift.as_ref().filter(|s| day >= s.from) {
                w *= (1.0 + s.pct / 100.0).max(0.0);
            }
            w
        });
        Some(
            weights
                .map(|w| {
                    acc += w;
                    acc
                })
                .collect(),
        )
    }

    /// Draws an order's day offset from the start.
    pub fn draw_day(&self, cdf: Option<&[f64]>, rng: &mut ChaCha8Rng) -> i32 {
        match cdf {
            None => rng.random_range(0..self.days as i32),
            Some(cdf) => {
                let x = rng.random_range(0.0..cdf.last().copied().unwrap_or(1.0));
                cdf.partition_point(|c| *c <= x).min(cdf.len() - 1) as i32
            }
        }
    }

    /// Tells whether an order of day offset `day` is dropped whole.
    pub fn drops_order(&self, day: i32, rng: &mut ChaCha8Rng) -> bool {
        self.drop_pct(day, None).is_some_and(|pct| rng.random_bool(pct / 100.0))
    }

    /// Tells whether a line of `category` on day offset `day` is dropped.
    pub fn drops_line(&self, day: i32, category: &str, rng: &mut ChaCha8Rng) -> bool {
        self.drop_pct(day, Some(category.trim())).is_some_and(|pct| rng.random_bool(pct / 100.0))
    }

    /// The drop on day offset `day` for `category` (None: the drops of
    /// every category).
    fn drop_pct(&self, day: i32, category: Option<&str>) -> Option<f64> {
        let date = self.start + chrono::Duration::days(i64::from(day));
        self.drops.iter().find(|d| d.day == date && d.category.as_deref() == category).map(|d| d.pct.clamp(0.0, 100.0))
    }
}

impl std::str::FromStr for Drop {
    type Err = String;

    /// Parses `2024-03-04:40` (every category) or `2024-03-04:Libros:40`.
    fn from_str(text: &str) -> Result<Drop, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (day, category, pct) = match parts.as_slice() {
            [day, pct] => (day, None, pct),
            [day, category, pct] => (day, Some(category.to_string()), pct),
            _ => return Err(format!("`{text}` is not DAY:PERCENT or DAY:CATEGORY:PERCENT")),
        };
        Ok(Drop { day: date(day)?, category, pct: percent(pct)? })
    }
}

impl std::str::FromStr for Shift {
    type Err = String;

    /// Parses `2024-06-01:-30`.
    fn from_str(text: &str) -> Result<Shift, String> {
        let (day, pct) = text.split_once(':').ok_or(format!("`{text}` is not DAY:PERCENT"))?;
        Ok(Shift { from: date(day)?, pct: pct.trim().parse().map_err(|_| format!("`{pct}` is not a percentage"))? })
    }
}

fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| format!("`{text}` is not a YYYY-MM-DD day"))
}

fn percent(text: &str) -> Result<f64, String> {
    text.trim().parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p)).ok_or(format!("`{text}` is not 0 to 100"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drops_and_shifts_parse() {
        let d: Drop = "2024-03-04:Libros:40".parse().unwrap();
        assert_eq!((d.category.as_deref(), d.pct), (Some("Libros"), 40.0));
        assert_eq!("2024-03-04:25".parse::<Drop>().unwrap().category, None);
        assert!("2024-03-04:Libros:140".parse::<Drop>().is_err());
        assert_eq!("2024-06-01:-30".parse::<Shift>().unwrap().pct, -30.0);
    }

    #[test]
    fn a_weekly_shape_sells_more_on_saturdays_than_on_sundays() {
        let shape = Shape { weekly: true, days: 70, ..Shape::default() };
        let cdf = shape.day_cdf().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut by_weekday = [0u32; 7];
        for _ in 0..70_000 {
            let day = shape.start + chrono::Duration::days(i64::from(shape.draw_day(Some(&cdf), &mut rng)));
            by_weekday[day.weekday().num_days_from_monday() as usize] += 1;
        }
        assert!(by_weekday[5] > by_weekday[6] * 2, "{by_weekday:?}");
    }
}
