//! Chart geometry for report.html: scales (linear, logarithmic, and the
//! "nines" axis of a percentile distribution), ticks (labelled through
//! [`crate::format`]), and SVG path data. The
//! numbers are computed here so that the `chart` macro of
//! `templates/parts.html` only places what it is given; every chart of the
//! report is one [`Chart`], drawn by that one macro.

use crate::format::{compact, percent};

/// The SVG user space of every chart. CSS scales it to the column width, so
/// these sizes only set proportions and the text size relative to the plot.
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 22.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 42.0;

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Linear,
    Log,
    /// Percentile distributions: the value is log10(1 / (1 − q)), so 90 %,
    /// 99 %, 99.9 % are evenly spaced and the tail gets the room it needs.
    Nines,
}

/// One axis: its domain, how values map onto it, and how ticks read.
#[derive(Debug, Clone)]
pub struct Axis {
    kind: Kind,
    lo: f64,
    hi: f64,
    label: String,
    format: fn(f64) -> String,
}

impl Axis {
    /// A linear axis over [lo, hi], widened to round tick values.
    pub fn linear(lo: f64, hi: f64, label: impl Into<String>, format: fn(f64) -> String) -> Axis {
        let hi = if hi > lo { hi } else { lo + lo.abs().max(1.0) };
        let step = nice_step(hi - lo);
        Axis { kind: Kind::Linear, lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, label: label.into(), format }
    }

    /// A linear axis over exactly [lo, hi] (time: a step's seconds), ticks inside.
    pub fn exact(lo: f64, hi: f64, label: impl Into<String>, format: fn(f64) -> String) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Axis { kind: Kind::Linear, lo, hi, label: label.into(), format }
    }

    /// A logarithmic axis over [lo, hi] (both > 0), widened to 1-2-5 values.
    pub fn log(lo: f64, hi: f64, label: impl Into<String>, format: fn(f64) -> String) -> Axis {
        let lo = lo.max(f64::MIN_POSITIVE);
        let hi = hi.max(lo * 2.0);
        Axis { kind: Kind::Log, lo: round_125(lo, false), hi: round_125(hi, true), label: label.into(), format }
    }

    /// Latency in milliseconds: from zero while the spread is modest; on a
    /// log scale when the slowest value is more than 10× the fastest, because
    /// a linear scale would flatten everything but the tail.
    pub fn latency(values: impl IntoIterator<Item = f64>, label: impl Into<String>) -> Axis {
        let (lo, hi) = bounds(values).unwrap_or((1.0, 10.0));
        if lo > 0.0 && hi / lo > 10.0 { Axis::log(lo, hi, label, compact) } else { Axis::linear(0.0, hi, label, compact) }
    }

    /// The percentile axis of a distribution of `count` values: from 0 % to
    /// the last "nine" the sample can resolve (at least 99 %).
    pub fn nines(count: u64) -> Axis {
        let resolvable = (count.max(1) as f64).log10().ceil().max(2.0);
        Axis { kind: Kind::Nines, lo: 0.0, hi: resolvable, label: "percentile".into(), format: nines_tick }
    }

    /// The right end of the domain, once rounded.
    pub fn hi(&self) -> f64 {
        self.hi
    }

    fn contains(&self, v: f64) -> bool {
        v >= self.lo && v <= self.hi
    }

    /// Where `v` falls, from 0 (lo) to 1 (hi); values outside are clamped.
    fn fraction(&self, v: f64) -> f64 {
        let f = match self.kind {
            Kind::Linear | Kind::Nines => (v - self.lo) / (self.hi - self.lo),
            Kind::Log => (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()),
        };
        f.clamp(0.0, 1.0)
    }

    fn tick_values(&self) -> Vec<f64> {
        match self.kind {
            Kind::Nines => (0..=self.hi as u32).map(f64::from).collect(),
            Kind::Linear => {
                let step = nice_step(self.hi - self.lo);
                // The tolerance keeps the ends of a rounded domain despite float error.
                let first = (self.lo / step - 1e-9).ceil() as i64;
                let last = (self.hi / step + 1e-9).floor() as i64;
                (first..=last).map(|k| k as f64 * step).collect()
            }
            Kind::Log => {
                // Over more than two decades 2s and 5s would crowd the axis.
                let decades = (self.hi / self.lo).log10();
                let mantissas: &[f64] = if decades > 2.0 { &[1.0] } else { &[1.0, 2.0, 5.0] };
                let (first, last) = (self.lo.log10().floor() as i32, self.hi.log10().ceil() as i32);
                (first..=last)
                    .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                    .filter(|v| *v >= self.lo * 0.999 && *v <= self.hi * 1.001)
                    .collect()
            }
        }
    }
}

/// The position of quantile `q` (0–1) on a [`Axis::nines`] axis; q = 1 (the
/// maximum) sits at the axis' right end.
pub fn nines(q: f64, axis: &Axis) -> f64 {
    if q >= 1.0 { axis.hi } else { (-(1.0 - q).log10()).min(axis.hi) }
}

/// Smallest and largest finite value.
fn bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A tick spacing of 1, 2, 2.5 or 5 × 10^k giving about five ticks over `span`.
fn nice_step(span: f64) -> f64 {
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|m| raw / magnitude <= *m).unwrap_or(10.0);
    nice * magnitude
}

/// `v` rounded down (or `up`) to the 1-2-5 sequence.
fn round_125(v: f64, up: bool) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    let candidates = [1.0, 2.0, 5.0, 10.0].map(|m| m * magnitude);
    let pick = if up {
        candidates.into_iter().find(|c| *c >= v * 0.999_999)
    } else {
        candidates.into_iter().rev().find(|c| *c <= v * 1.000_001)
    };
    pick.unwrap_or(v)
}

/// 0 → "0%", 2 → "99%", 3 → "99.9%".
fn nines_tick(n: f64) -> String {
    percent(100.0 - 100.0 / 10f64.powf(n))
}

/// A tick's position (pixels along its axis) and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

/// A straight reference line (a limit, a capacity). A horizontal line is
/// labelled on the plot; a vertical one in the legend, because a label along
/// it would sit where the data bends.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub class: &'static str,
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub label: Option<String>,
    pub label_x: f64,
    pub label_y: f64,
}

/// A shaded stretch of the x axis (the warm-up).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub x: f64,
    pub width: f64,
    pub label: String,
    pub label_x: f64,
    pub label_y: f64,
}

/// A data series drawn as a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub class: &'static str,
    pub d: String,
}

/// A single measurement: a dot with a tooltip, optionally a link and a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub class: &'static str,
    pub x: f64,
    pub y: f64,
    pub title: String,
    pub href: Option<String>,
    pub label: Option<String>,
    pub label_x: f64,
    pub label_anchor: &'static str,
}

/// A measurement to draw, in data values.
pub struct Dot {
    pub class: &'static str,
    /// Its legend entry ("passed", "failed").
    pub key: &'static str,
    pub at: (f64, f64),
    /// The tooltip.
    pub title: String,
    pub href: Option<String>,
    /// Text beside the dot, for the one that matters.
    pub label: Option<String>,
}

/// A legend entry; `shape` is "line", "dash" or "dot" (a CSS class).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub class: &'static str,
    pub shape: &'static str,
    pub label: String,
}

/// The plot area inside the chart and where the axes' text goes, in SVG
/// user units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
    pub height: f64,
    pub center_x: f64,
    pub center_y: f64,
    /// Baseline of the x tick labels.
    pub x_tick_y: f64,
    /// Right edge of the y tick labels.
    pub y_tick_x: f64,
    pub x_title_y: f64,
    pub y_title_x: f64,
}

impl Frame {
    const fn standard() -> Frame {
        let (left, top, right, bottom) = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM);
        Frame {
            left,
            top,
            right,
            bottom,
            height: bottom - top,
            center_x: (left + right) / 2.0,
            center_y: (top + bottom) / 2.0,
            x_tick_y: bottom + 16.0,
            y_tick_x: left - 6.0,
            x_title_y: HEIGHT - 8.0,
            y_title_x: 14.0,
        }
    }
}

/// Everything a chart template needs, already in SVG coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub frame: Frame,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub bands: Vec<Band>,
    pub rules: Vec<Rule>,
    pub lines: Vec<Line>,
    pub marks: Vec<Mark>,
    pub legend: Vec<Key>,
    /// Remarks under the chart (e.g. a limit that lies above it).
    pub notes: Vec<String>,
    /// Why there is nothing to draw; the template shows this instead.
    pub empty: Option<String>,
}

impl Chart {
    /// A chart with nothing to draw, saying why.
    pub fn empty(title: impl Into<String>, why: impl Into<String>) -> Chart {
        Chart { empty: Some(why.into()), ..Chart::blank(title.into()) }
    }

    fn blank(title: String) -> Chart {
        Chart {
            title,
            width: WIDTH,
            height: HEIGHT,
            frame: Frame::standard(),
            x_label: String::new(),
            y_label: String::new(),
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
            bands: Vec::new(),
            rules: Vec::new(),
            lines: Vec::new(),
            marks: Vec::new(),
            legend: Vec::new(),
            notes: Vec::new(),
            empty: None,
        }
    }
}

/// Builds a [`Chart`]: data goes in as values, comes out as SVG coordinates.
pub struct Canvas {
    x: Axis,
    y: Axis,
    chart: Chart,
}

impl Canvas {
    pub fn new(title: impl Into<String>, x: Axis, y: Axis) -> Canvas {
        let mut chart = Chart::blank(title.into());
        chart.x_label = x.label.clone();
        chart.y_label = y.label.clone();
        let mut canvas = Canvas { x, y, chart };
        canvas.chart.x_ticks =
            canvas.x.tick_values().into_iter().map(|v| Tick { at: canvas.px(v), label: (canvas.x.format)(v) }).collect();
        canvas.chart.y_ticks =
            canvas.y.tick_values().into_iter().map(|v| Tick { at: canvas.py(v), label: (canvas.y.format)(v) }).collect();
        canvas
    }

    fn px(&self, x: f64) -> f64 {
        let f = &self.chart.frame;
        round1(f.left + self.x.fraction(x) * (f.right - f.left))
    }

    fn py(&self, y: f64) -> f64 {
        let f = &self.chart.frame;
        round1(f.bottom - self.y.fraction(y) * (f.bottom - f.top))
    }

    /// Shades [x0, x1] across the plot's height.
    pub fn band(&mut self, x0: f64, x1: f64, label: impl Into<String>) {
        let (left, right) = (self.px(x0), self.px(x1));
        if right > left {
            let label_y = self.chart.frame.top + 11.0;
            self.chart.bands.push(Band {
                x: left,
                width: round1(right - left),
                label: label.into(),
                label_x: left + 3.0,
                label_y,
            });
        }
    }

    /// A horizontal reference line at `y`; when it lies outside the y domain
    /// it becomes a note, so that the data keeps the whole plot.
    pub fn hrule(&mut self, y: f64, class: &'static str, label: impl Into<String>) {
        let label = label.into();
        if !self.y.contains(y) {
            let side = if y > self.y.hi { "above" } else { "below" };
            self.chart.notes.push(format!("{label} is {side} this chart"));
            return;
        }
        let f = self.chart.frame;
        let at = self.py(y);
        // Labelled at the left, where latency curves are usually low.
        self.chart.rules.push(Rule {
            class,
            x1: f.left,
            y1: at,
            x2: f.right,
            y2: at,
            label: Some(label),
            label_x: f.left + 4.0,
            label_y: at - 4.0,
        });
    }

    /// A vertical reference line at `x`, named in the legend.
    pub fn vrule(&mut self, x: f64, class: &'static str, label: impl Into<String>) {
        if !self.x.contains(x) {
            return;
        }
        let f = self.chart.frame;
        let at = self.px(x);
        self.chart.rules.push(Rule { class, x1: at, y1: f.top, x2: at, y2: f.bottom, label: None, label_x: at, label_y: f.top });
        self.key(class, "dash", label);
    }

    /// A series through `points`; a `None` breaks the line (a second with no data).
    pub fn line(&mut self, class: &'static str, label: impl Into<String>, points: impl IntoIterator<Item = Option<(f64, f64)>>) {
        let mut d = String::new();
        let mut pen_down = false;
        for point in points {
            match point {
                Some((x, y)) => {
                    d.push_str(&format!("{}{} {}", if pen_down { "L" } else { "M" }, self.px(x), self.py(y)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            self.chart.lines.push(Line { class, d });
            self.key(class, if class.contains("dash") { "dash" } else { "line" }, label);
        }
    }

    /// One measurement as a dot, named in the legend by its `key`.
    pub fn dot(&mut self, dot: Dot) {
        let (x, y) = (self.px(dot.at.0), self.py(dot.at.1));
        let f = &self.chart.frame;
        // Labels point inwards so that they never leave the plot.
        let (label_x, label_anchor) = if x > f.center_x { (x - 9.0, "end") } else { (x + 9.0, "start") };
        self.key(dot.class, "dot", dot.key);
        self.chart.marks.push(Mark {
            class: dot.class,
            x,
            y,
            title: dot.title,
            href: dot.href,
            label: dot.label,
            label_x,
            label_anchor,
        });
    }

    /// A legend entry, once per label.
    pub fn key(&mut self, class: &'static str, shape: &'static str, label: impl Into<String>) {
        let label = label.into();
        if !label.is_empty() && !self.chart.legend.iter().any(|k| k.label == label) {
            self.chart.legend.push(Key { class, shape, label });
        }
    }

    pub fn finish(self) -> Chart {
        self.chart
    }
}

/// SVG coordinates to a tenth of a unit: finer is invisible and bloats the page.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axes_round_out_to_nice_ticks() {
        let axis = Axis::linear(0.0, 97.0, "", compact);
        assert_eq!(axis.hi, 100.0);
        assert_eq!(axis.tick_values(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let flat = Axis::linear(0.0, 0.0, "", compact);
        assert!(flat.hi > 0.0, "a flat series still gets a domain");
    }

    #[test]
    fn log_axes_tick_on_one_two_five() {
        let axis = Axis::log(17.0, 430.0, "", compact);
        assert_eq!((axis.lo, axis.hi), (10.0, 500.0));
        assert_eq!(axis.tick_values(), [10.0, 20.0, 50.0, 100.0, 200.0, 500.0]);
        let wide = Axis::log(0.5, 60_000.0, "", compact);
        assert_eq!(wide.tick_values().len(), 6, "only powers of ten over many decades");
    }

    #[test]
    fn latency_goes_logarithmic_only_for_a_long_tail() {
        assert_eq!(Axis::latency([20.0, 60.0], "").kind, Kind::Linear);
        assert_eq!(Axis::latency([20.0, 500.0], "").kind, Kind::Log);
    }

    #[test]
    fn the_nines_axis_reads_in_percentiles() {
        let axis = Axis::nines(475);
        assert_eq!(axis.hi, 3.0);
        let labels: Vec<String> = axis.tick_values().into_iter().map(nines_tick).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%"]);
        assert!((nines(0.99, &axis) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0, &axis), 3.0, "the maximum sits at the right end");
        assert_eq!(Axis::nines(10).hi, 2.0, "at least up to 99%");
    }

    #[test]
    fn lines_break_at_missing_values_and_rules_outside_become_notes() {
        let mut canvas = Canvas::new("t", Axis::linear(0.0, 10.0, "x", compact), Axis::linear(0.0, 10.0, "y", compact));
        canvas.line("c", "series", [Some((0.0, 0.0)), None, Some((5.0, 5.0)), Some((10.0, 10.0))]);
        canvas.hrule(50.0, "limit", "limit 50 ms");
        let chart = canvas.finish();
        assert_eq!(chart.lines[0].d.matches('M').count(), 2, "{}", chart.lines[0].d);
        assert!(chart.rules.is_empty());
        assert_eq!(chart.notes, ["limit 50 ms is above this chart"]);
        assert_eq!(chart.legend.len(), 1);
    }
}
