//! report.html and comparison.html (askama templates in templates/).

use super::RunData;
use super::compare::Comparison;

/// The run's report page.
pub fn render_report(data: &RunData) -> Result<String, askama::Error> {
    Ok(format!("<!doctype html><title>perfsize {}</title>", super::junit::escape(&data.summary.run_id)))
}

/// The comparison page.
pub fn render_comparison(c: &Comparison) -> Result<String, askama::Error> {
    Ok(format!("<!doctype html><title>perfsize compare</title><p>{} regressions", c.regressions))
}
