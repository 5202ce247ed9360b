//! A monitor's chart as SVG: the metric's recent buckets as a line, the
//! expected band as a shaded area, the buckets a run found anomalous as
//! red dots, and a forecast model's forecast ahead as a dashed line in its
//! own band. Every project or data string in it is escaped; it carries no
//! script, so the report inlines it and the docs site shows it as an image.

use std::fmt::Write;

use crate::compile::assertions::monitor::Monitor;
use crate::quality::monitor::{ChartSeries, Loaded};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Draws a monitor's charts from the metric history: the last `window`
/// buckets of at most `max_series` dimension values.
pub fn monitor_charts(m: &Monitor, loaded: &Loaded, window: usize, max_series: usize) -> Vec<String> {
    let series = crate::quality::monitor::chart_series(m, loaded, window, max_series);
    let label = |b: i64| crate::quality::monitor::bucket_text(m, b);
    series
        .iter()
        .map(|s| {
            let title =
                if s.dimension.is_empty() { m.metric.clone() } else { format!("{} for {}", m.metric, s.dimension) };
            svg(&title, s, &label)
        })
        .collect()
}

/// Draws one series; `label` writes a bucket's start as text.
pub fn svg(title: &str, series: &ChartSeries, label: &dyn Fn(i64) -> String) -> String {
    let points = &series.points;
    let mut out = format!(
        "<svg class=\"monitor-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <text x=\"{LEFT}\" y=\"15\" font-size=\"12\" font-family=\"sans-serif\">{t}</text>",
        t = esc(title)
    );
    let Some(scale) = Scale::of(series) else {
        out.push_str("<text x=\"64\" y=\"90\" font-size=\"12\" font-family=\"sans-serif\">no buckets yet</text></svg>");
        return out;
    };
    band(&mut out, &scale, series);
    ahead(&mut out, &scale, series);
    let line: Vec<String> = points.iter().enumerate().map(|(i, p)| scale.xy(i, p.value)).collect();
    let _ = write!(
        out,
        "<polyline class=\"value\" fill=\"none\" stroke=\"#1f4e79\" stroke-width=\"1.5\" points=\"{}\"/>",
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate().filter(|(_, p)| p.flagged) {
        let (x, y) = (scale.x(i), scale.y(p.value));
        let _ = write!(
            out,
            "<circle class=\"anomaly\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#cf222e\"><title>{}: {:.2}</title></circle>",
            esc(&label(p.bucket)),
            p.value
        );
    }
    axes(&mut out, &scale, series, label);
    out.push_str("</svg>");
    out
}

/// Where values and buckets land on the canvas.
struct Scale {
    n: usize,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn of(series: &ChartSeries) -> Option<Scale> {
        let n = series.points.len() + series.ahead.len();
        if series.points.is_empty() {
            return None;
        }
        let values = series.points.iter().flat_map(|p| {
            let (_, l, u) = p.band.unwrap_or((p.value, p.value, p.value));
            [p.value, l, u]
        });
        let values = values.chain(series.ahead.iter().flat_map(|(_, e, l, u)| [*e, *l, *u]));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
        Some(Scale { n, lo, hi })
    }

    fn x(&self, i: usize) -> f64 {
        let span = WIDTH - LEFT - RIGHT;
        LEFT + if self.n > 1 { span * i as f64 / (self.n - 1) as f64 } else { span / 2.0 }
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v - self.lo) / (self.hi - self.lo))
    }

    fn xy(&self, i: usize, v: f64) -> String {
        format!("{:.1},{:.1}", self.x(i), self.y(v))
    }
}

/// A bucket's index and its band (expected, lower, upper).
type Banded = (usize, (f64, f64, f64));

/// The expected band as one shaded area per run of buckets that have one,
/// and the expected value as a dashed line.
fn band(out: &mut String, scale: &Scale, series: &ChartSeries) {
    let mut runs: Vec<Vec<Banded>> = Vec::new();
    let mut current = Vec::new();
    for (i, p) in series.points.iter().enumerate() {
        match p.band {
            Some(b) => current.push((i, b)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    for run in runs {
        let upper = run.iter().map(|(i, (_, _, u))| scale.xy(*i, *u));
        let lower = run.iter().rev().map(|(i, (_, l, _))| scale.xy(*i, *l));
        let area: Vec<String> = upper.chain(lower).collect();
        let expected: Vec<String> = run.iter().map(|(i, (e, _, _))| scale.xy(*i, *e)).collect();
        let _ = write!(
            out,
            "<polygon class=\"band\" fill=\"#9ecae1\" fill-opacity=\"0.45\" points=\"{}\"/>\
             <polyline class=\"expected\" fill=\"none\" stroke=\"#6baed6\" stroke-dasharray=\"4 3\" points=\"{}\"/>",
            area.join(" "),
            expected.join(" ")
        );
    }
}

/// The forecast ahead of the last bucket: its band and its point forecast.
fn ahead(out: &mut String, scale: &Scale, series: &ChartSeries) {
    if series.ahead.is_empty() {
        return;
    }
    let at = |k: usize| series.points.len() + k;
    let upper = series.ahead.iter().enumerate().map(|(k, (_, _, _, u))| scale.xy(at(k), *u));
    let lower = series.ahead.iter().enumerate().rev().map(|(k, (_, _, l, _))| scale.xy(at(k), *l));
    let area: Vec<String> = upper.chain(lower).collect();
    let point: Vec<String> = series.ahead.iter().enumerate().map(|(k, (_, e, _, _))| scale.xy(at(k), *e)).collect();
    let _ = write!(
        out,
        "<polygon class=\"forecast-band\" fill=\"#fdd0a2\" fill-opacity=\"0.6\" points=\"{}\"/>\
         <polyline class=\"forecast\" fill=\"none\" stroke=\"#e6550d\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" points=\"{}\"/>",
        area.join(" "),
        point.join(" ")
    );
}

fn axes(out: &mut String, scale: &Scale, series: &ChartSeries, label: &dyn Fn(i64) -> String) {
    let text = |x: f64, y: f64, anchor: &str, t: &str| {
        format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"{anchor}\">{}</text>",
            esc(t)
        )
    };
    let (first, last) = (series.points.first(), series.points.last());
    let bottom = HEIGHT - 10.0;
    let mut parts = vec![
        text(LEFT - 4.0, scale.y(scale.hi) + 4.0, "end", &format!("{:.0}", scale.hi)),
        text(LEFT - 4.0, scale.y(scale.lo) + 4.0, "end", &format!("{:.0}", scale.lo)),
    ];
    let end = series.ahead.last().map(|(b, ..)| *b).or(last.map(|l| l.bucket));
    if let (Some(f), Some(end)) = (first, end) {
        parts.push(text(LEFT, bottom, "start", &label(f.bucket)));
        parts.push(text(WIDTH - RIGHT, bottom, "end", &label(end)));
    }
    out.push_str(&parts.concat());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::monitor::ChartPoint;

    #[test]
    fn a_chart_marks_each_flagged_bucket_and_escapes_its_labels() {
        let points = (0..5)
            .map(|i| ChartPoint {
                bucket: i,
                value: 10.0 + i as f64,
                band: (i > 1).then_some((11.0, 9.0, 13.0)),
                flagged: i == 4,
            })
            .collect();
        let ahead = vec![(5, 15.0, 12.0, 18.0), (6, 16.0, 12.0, 20.0)];
        let s = ChartSeries { dimension: "<b>".into(), points, ahead };
        let svg = svg("sum(x) for category=<script>", &s, &|b| format!("day {b} <i>"));
        assert_eq!(svg.matches("class=\"anomaly\"").count(), 1);
        assert_eq!(svg.matches("class=\"band\"").count(), 1);
        assert_eq!(svg.matches("class=\"forecast\"").count(), 1);
        assert!(svg.contains("day 6 &lt;i&gt;"), "the axis ends with the forecast");
        assert!(!svg.contains("<script>") && !svg.contains("<i>") && svg.contains("&lt;script&gt;"));
    }
}
