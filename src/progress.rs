//! What the user sees while perfsize works: a live display on a terminal
//! (indicatif), plain timestamped lines when stderr is not one (Jenkins).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::load::SecondStats;

/// In plain mode, a running step logs one line this often.
const PLAIN_EVERY_SECONDS: u32 = 10;

pub struct Progress {
    bar: Option<ProgressBar>,
    simulated: bool,
}

impl Progress {
    /// A display on stderr; `quiet` shows nothing but what `line` prints.
    pub fn new(simulated: bool, quiet: bool) -> Progress {
        let live = !quiet && std::io::stderr().is_terminal();
        let bar = live.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {wide_msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { bar, simulated }
    }

    fn tag(&self) -> &'static str {
        if self.simulated { "[SIMULATED] " } else { "" }
    }

    /// A line that stays (above the live display when there is one).
    pub fn line(&self, text: impl AsRef<str>) {
        let text = format!("{}{}", self.tag(), text.as_ref());
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{} {text}", chrono::Utc::now().format("%H:%M:%S")),
        }
    }

    /// The current activity (deploying, waiting for CloudWatch, …).
    pub fn activity(&self, text: impl Into<String>) {
        let text = text.into();
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(text);
                bar.set_message("");
            }
            None => self.line(text),
        }
    }

    /// One second of the running step.
    pub fn second(&self, row: &SecondStats) {
        let p99 = row.p99_ms.map_or("-".to_string(), |p| format!("{p:.1} ms"));
        let text = format!(
            "{:>4}s{} offered {} · done {} · p99 {p99} · errors {}",
            row.second + 1,
            if row.warmup { " (warm-up)" } else { "" },
            row.offered,
            row.completed,
            row.errors
        );
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None if (row.second + 1).is_multiple_of(PLAIN_EVERY_SECONDS) => self.line(format!("  {text}")),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
