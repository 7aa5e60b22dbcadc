//! Settings from a file, and `--resume RUN_DIR` alone.
//!
//! A sizing run reads `perfsize.toml` in the working directory (or
//! `--config FILE`): keys are named like the long flags (`peak-tps = 100`,
//! `type-walk = ["ml.m5.large", "ml.c5.large"]`, `simulate = true`), a flag
//! on the command line overrides its key, and every key goes through its
//! flag's own parser, so a bad value reads as a bad flag and an unknown key
//! is a usage error naming it. The run records its effective arguments in
//! plan.json; `perfsize --resume RUN_DIR` continues with them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::Cli;
use crate::record::RunDir;

/// The file a run reads its settings from when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "perfsize.toml";

/// Flags a resumed run may change: the budget and the durations of what is left.
const RESUMABLE_CHANGES: [&str; 10] = [
    "resume",
    "max_test_cost",
    "duration",
    "endurance_duration",
    "warmup",
    "poll_interval",
    "cloudwatch_wait",
    "teardown_timeout",
    "parallel",
    "results_dir",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: unknown key `{key}`: keys are the long flags of `perfsize --help` (e.g. peak-tps, type-walk)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: key `{key}` must be a string, a number, a boolean or a list of them")]
    BadValue { path: PathBuf, key: String },
    #[error("--resume {dir}: {reason}")]
    Resume { dir: PathBuf, reason: String },
    #[error(
        "--resume: {flag} {given} contradicts the run's plan ({recorded}); a resumed run may only change --max-test-cost, --parallel and the durations"
    )]
    Contradicts { flag: String, given: String, recorded: String },
}

/// Why the command line could not become a [`Cli`].
pub enum ConfigOrClap {
    Clap(clap::Error),
    Config(ConfigError),
}

impl ConfigOrClap {
    /// clap's own code for help and version (0) and for its usage errors (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigOrClap::Clap(e) => e.exit_code() as u8,
            ConfigOrClap::Config(_) => super::exit::USAGE,
        }
    }
}

impl std::fmt::Display for ConfigOrClap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigOrClap::Clap(e) => write!(f, "{e}"),
            ConfigOrClap::Config(e) => write!(f, "{e}"),
        }
    }
}

impl From<clap::Error> for ConfigOrClap {
    fn from(e: clap::Error) -> Self {
        ConfigOrClap::Clap(e)
    }
}

impl From<ConfigError> for ConfigOrClap {
    fn from(e: ConfigError) -> Self {
        ConfigOrClap::Config(e)
    }
}

/// Parses `argv` with the settings of a config file or of the run being resumed.
pub fn parse_with_config<I: IntoIterator<Item = T>, T: Into<OsString>>(argv: I) -> Result<Cli, ConfigOrClap> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&argv)?;
    if matches.subcommand().is_some_and(|(name, _)| name != "plan") {
        return Ok(Cli::from_arg_matches(&matches)?);
    }
    let sizing = matches.subcommand().map_or(&matches, |(_, sub)| sub);
    let extra = match sizing.get_one::<PathBuf>("resume") {
        Some(dir) => resumed_arguments(dir, sizing)?,
        None => match config_file(sizing) {
            Some(path) => file_arguments(&path, sizing)?,
            None => Vec::new(),
        },
    };
    let mut full = argv;
    full.extend(extra.into_iter().map(OsString::from));
    let mut cli = Cli::from_arg_matches(&Cli::command().try_get_matches_from(&full)?)?;
    if cli.command.is_none() {
        cli.sizing.arguments = recordable(&full[1..]);
    }
    Ok(cli)
}

/// The arguments a run records as its settings: all but `--resume` and
/// `--config` (the file's keys are among the arguments already).
fn recordable(args: &[OsString]) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--resume" | "--config" => {
                args.next();
            }
            _ if arg.starts_with("--resume=") || arg.starts_with("--config=") => {}
            _ => out.push(arg),
        }
    }
    out
}

/// `--config FILE`, or perfsize.toml in the working directory if there is one.
fn config_file(matches: &ArgMatches) -> Option<PathBuf> {
    matches.get_one::<PathBuf>("config").cloned().or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()))
}

/// The flags a config file adds: one per key not already on the command line.
fn file_arguments(path: &Path, given: &ArgMatches) -> Result<Vec<String>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| {
                a.get_long().is_some_and(|long| long == key || long.replace('-', "_") == key)
                    || a.get_all_aliases().is_some_and(|aliases| aliases.contains(&key.as_str()))
            })
            .filter(|a| !["config", "resume", "help", "version"].contains(&a.get_id().as_str()))
            .ok_or_else(|| ConfigError::UnknownKey { path: path.to_path_buf(), key: key.clone() })?;
        if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        let flag = format!("--{}", arg.get_long().expect("found by its long name"));
        let bad = || ConfigError::BadValue { path: path.to_path_buf(), key: key.clone() };
        let takes_value = arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(on) if !takes_value => {
                if on {
                    out.push(flag);
                }
            }
            toml::Value::Array(items) => {
                let items = items.iter().map(|v| scalar(v).ok_or_else(bad)).collect::<Result<Vec<_>, _>>()?;
                match arg.get_value_delimiter() {
                    Some(delimiter) => out.extend([flag, items.join(&delimiter.to_string())]),
                    None => items.into_iter().for_each(|item| out.extend([flag.clone(), item])),
                }
            }
            other => out.extend([flag, scalar(&other).ok_or_else(bad)?]),
        }
    }
    Ok(out)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The arguments the run in `dir` was started with. A flag given now may
/// only change what a resumed run can change; any other must agree.
fn resumed_arguments(dir: &Path, given: &ArgMatches) -> Result<Vec<String>, ConfigError> {
    let resume = |reason: String| ConfigError::Resume { dir: dir.to_path_buf(), reason };
    let run = RunDir::open(dir).map_err(|e| resume(e.to_string()))?;
    let plan = run.plan().map_err(|e| resume(e.to_string()))?.ok_or_else(|| resume("it has no plan.json".into()))?;
    if plan.arguments.is_empty() {
        // A run recorded by an older perfsize: its flags must be given again.
        return Ok(Vec::new());
    }
    let recorded_argv = std::iter::once("perfsize".to_string()).chain(plan.arguments.iter().cloned());
    let recorded = Cli::command()
        .try_get_matches_from(recorded_argv)
        .map_err(|e| resume(format!("its recorded arguments do not parse: {e}")))?;
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let now = given.value_source(id) == Some(ValueSource::CommandLine);
        let then = recorded.value_source(id) == Some(ValueSource::CommandLine);
        let raw = |m: &ArgMatches| -> Vec<String> {
            m.get_raw(id).map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect()).unwrap_or_default()
        };
        if now && !RESUMABLE_CHANGES.contains(&id) && (!then || raw(given) != raw(&recorded)) {
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            let recorded_value = if then { format!("{flag} {}", raw(&recorded).join(",")) } else { format!("no {flag}") };
            return Err(ConfigError::Contradicts { flag, given: raw(given).join(","), recorded: recorded_value });
        }
        if then && !now {
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            let values = raw(&recorded);
            if !arg.get_action().takes_values() {
                out.push(flag);
            } else {
                values.into_iter().for_each(|v| out.extend([flag.clone(), v]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_records_its_settings_without_resume_or_config() {
        let args: Vec<OsString> = ["--peak-tps", "5", "--resume", "dir", "--config=x.toml", "--results-dir", "plan"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(recordable(&args), ["--peak-tps", "5", "--results-dir", "plan"]);
    }
}
