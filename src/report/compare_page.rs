//! comparison.html: the page of `perfsize compare`. A [`Comparison`] is
//! turned into the view model of the `compare.html` template here — figures
//! grouped and formatted (by [`crate::format`]), each one's trend named — and
//! askama lays it out with `base.html` and the figures table of `parts.html`.
//! Every value is HTML-escaped: run labels and notes may come from anyone.

use askama::Template;

use super::compare::{Better, Comparison, Figure};
use crate::format::{money, ms, percent, signed_percent, tps, trim_number};

/// The comparison page.
pub fn render_comparison(c: &Comparison) -> Result<String, askama::Error> {
    ComparePage::new(c).render()
}

#[derive(Template)]
#[template(path = "compare.html", whitespace = "minimize")]
struct ComparePage {
    baseline: String,
    current: String,
    bound: String,
    regressions: usize,
    improvements: usize,
    compared: usize,
    /// The regressed figures alone, first: what a reviewer must look at.
    regressed: Vec<FigureRow>,
    groups: Vec<FigureGroup>,
}

struct FigureGroup {
    name: String,
    rows: Vec<FigureRow>,
}

struct FigureRow {
    group: String,
    name: String,
    better: &'static str,
    baseline: String,
    current: String,
    change: String,
    /// CSS class: regressed, worse (within the bound), better or same.
    trend: &'static str,
    regressed: bool,
    note: Option<String>,
}

impl ComparePage {
    fn new(c: &Comparison) -> ComparePage {
        let mut groups: Vec<FigureGroup> = Vec::new();
        for f in &c.figures {
            let row = figure_row(f);
            match groups.last_mut() {
                Some(group) if group.name == f.group => group.rows.push(row),
                _ => groups.push(FigureGroup { name: f.group.clone(), rows: vec![row] }),
            }
        }
        ComparePage {
            baseline: c.baseline.clone(),
            current: c.current.clone(),
            bound: percent(c.max_regression_percent),
            regressions: c.regressions,
            improvements: c.figures.iter().filter(|f| trend(f) == "better").count(),
            compared: c.figures.len(),
            regressed: c.figures.iter().filter(|f| f.regressed).map(figure_row).collect(),
            groups,
        }
    }
}

/// How a figure moved: past the bound, the worse way within it, the better way, or not at all.
fn trend(f: &Figure) -> &'static str {
    match f.change_percent {
        _ if f.regressed => "regressed",
        Some(change) if change.abs() < 0.05 => "same",
        Some(change) if (change < 0.0) == (f.better == Better::Lower) => "better",
        Some(_) => "worse",
        None => "same",
    }
}

fn figure_row(f: &Figure) -> FigureRow {
    let value = |v: Option<f64>| v.map_or("–".to_string(), |v| figure_value(v, f.unit));
    FigureRow {
        group: f.group.clone(),
        name: f.name.clone(),
        better: match f.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        },
        baseline: value(f.baseline),
        current: value(f.current),
        // A verdict is pass or fail: its "change" is no percentage.
        change: f.change_percent.filter(|_| !f.unit.is_empty()).map_or("–".into(), signed_percent),
        trend: trend(f),
        regressed: f.regressed,
        note: f.note.clone(),
    }
}

/// A compared value with its unit.
fn figure_value(v: f64, unit: &str) -> String {
    match unit {
        "$/h" => format!("{}/h", money(v)),
        "ms" => format!("{} ms", ms(v)),
        "TPS" => format!("{} TPS", tps(v)),
        "%" => percent(v),
        // A verdict: 1 passed, 0 failed.
        "" => (if v >= 1.0 { "pass" } else { "fail" }).to_string(),
        _ => format!("{} {unit}", trim_number(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{ESCAPED, HOSTILE};

    fn comparison() -> Comparison {
        let figure = |group: &str, name: &str, unit: &'static str, better, baseline: f64, current: f64, regressed| Figure {
            group: group.into(),
            name: name.into(),
            unit,
            better,
            baseline: Some(baseline),
            current: Some(current),
            change_percent: Some((current - baseline) / baseline * 100.0),
            regressed,
            note: None,
        };
        let mut figures = vec![
            figure("recommendation", "recommended $/hour", "$/h", Better::Lower, 0.102, 0.102, false),
            figure("search ml.m5.large × 1 at 100 TPS", "p99", "ms", Better::Lower, 100.0, 150.0, true),
            figure("search ml.m5.large × 1 at 100 TPS", "achieved TPS", "TPS", Better::Higher, 100.0, 101.0, false),
        ];
        figures[1].note = Some(HOSTILE.into());
        Comparison {
            baseline: HOSTILE.into(),
            current: "runs/current".into(),
            max_regression_percent: 10.0,
            figures,
            regressions: 1,
        }
    }

    #[test]
    fn the_comparison_page_highlights_regressions() {
        let html = render_comparison(&comparison()).unwrap();
        assert!(html.contains("1 regression"), "the total");
        assert!(html.contains("<tr class=\"regressed\">"), "the regressed row is highlighted");
        assert!(html.contains("150.0 ms"), "values carry their unit");
        assert!(html.contains("+50.0%"));
        assert!(html.contains("10%"), "the bound");
        assert!(!html.contains(HOSTILE) && html.contains(ESCAPED));
        assert!(!html.to_lowercase().contains("href=\"http"));
    }
}
