//! `perfsize report` and `perfsize compare`.

use std::path::PathBuf;

use clap::Args;

use super::{Failure, exit};
use crate::record::RunDir;
use crate::report::{self, compare};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (RESULTS_DIR/<run id>), finished or interrupted.
    pub run_dir: PathBuf,
}

pub async fn run(args: ReportArgs) -> Result<u8, Failure> {
    let dir = RunDir::open(&args.run_dir)?;
    let written = report::write_all(&dir)?;
    for path in &written {
        if path.extension().is_none_or(|e| e != "hgrm") {
            println!("wrote {}", path.display());
        }
    }
    println!(
        "wrote {} step percentile distributions (.hgrm)",
        written.iter().filter(|p| p.extension().is_some_and(|e| e == "hgrm")).count()
    );
    Ok(exit::OK)
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!("`{text}` is not a percentage like 10%")),
    }
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a run directory or a StepResult JSON from `perfsize load --json`.
    pub baseline: PathBuf,
    /// The run to judge, of the same kind.
    pub current: PathBuf,
    /// Largest change in the worse direction that is not a regression.
    #[arg(long, value_parser = parse_percent, default_value = "10%", value_name = "PERCENT")]
    pub max_regression: f64,
    /// Where to write the comparison page (default: comparison.html next to CURRENT).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

pub async fn compare(args: CompareArgs) -> Result<u8, Failure> {
    let comparison = compare::compare(&args.baseline, &args.current, args.max_regression)?;
    print!("{}", compare::text(&comparison));
    let html_path = args.html.clone().unwrap_or_else(|| {
        if args.current.is_dir() { args.current.join("comparison.html") } else { args.current.with_extension("comparison.html") }
    });
    let html = report::render_comparison(&comparison).map_err(Failure::infrastructure)?;
    crate::record::write_atomic(&html_path, html.as_bytes())
        .map_err(|e| Failure::infrastructure(format!("cannot write {}: {e}", html_path.display())))?;
    println!("wrote {}", html_path.display());
    Ok(if comparison.regressions > 0 { exit::NOT_MET } else { exit::OK })
}
