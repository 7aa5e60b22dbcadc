//! The request bodies a load step sends: files read once, byte for byte, and a
//! weighted mix that decides which body each request slot carries.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sagemaker::MAX_PAYLOAD_BYTES;

impl crate::error::HasKind for PayloadError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// What is wrong with a payload argument or file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("bad weight `{weight}` in payload `{arg}`: expected a positive number (FILE or FILE:WEIGHT)")]
    BadWeight { arg: String, weight: String },
    #[error("cannot read payload {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("payload {path} is {size} bytes; SageMaker real-time endpoints accept at most {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("--scenario-requests is not valid JSON of the form '[{{\"path\": \"req.json\", \"weight\": 1}}]': {0}")]
    BadScenario(String),
    #[error("no payload given: pass --payload FILE (repeatable) or --scenario-requests")]
    None,
}

/// One `--payload FILE[:WEIGHT]` argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadSpec {
    pub path: PathBuf,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

fn check_weight(arg: &str, weight: f64, text: &str) -> Result<f64, PayloadError> {
    if weight.is_finite() && weight > 0.0 {
        Ok(weight)
    } else {
        Err(PayloadError::BadWeight { arg: arg.to_string(), weight: text.to_string() })
    }
}

impl FromStr for PayloadSpec {
    type Err = PayloadError;

    /// `FILE` or `FILE:WEIGHT`. A colon followed by something that is not a
    /// number is part of the file name only if that file exists.
    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let whole = || PayloadSpec { path: PathBuf::from(arg), weight: 1.0 };
        let Some((path, suffix)) = arg.rsplit_once(':') else {
            return Ok(whole());
        };
        match suffix.trim().parse::<f64>() {
            Ok(weight) => Ok(PayloadSpec { path: PathBuf::from(path), weight: check_weight(arg, weight, suffix)? }),
            Err(_) if Path::new(arg).exists() => Ok(whole()),
            Err(_) => Err(PayloadError::BadWeight { arg: arg.to_string(), weight: suffix.to_string() }),
        }
    }
}

/// perfsizesagemaker's `--scenario_requests '[{"path": …, "weight": …}]'`.
pub fn parse_scenario_requests(json: &str) -> Result<Vec<PayloadSpec>, PayloadError> {
    let specs: Vec<PayloadSpec> = serde_json::from_str(json).map_err(|e| PayloadError::BadScenario(e.to_string()))?;
    for spec in &specs {
        check_weight(&spec.path.display().to_string(), spec.weight, &spec.weight.to_string())?;
    }
    Ok(specs)
}

/// A request body, read once.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The file it came from, for messages and reports.
    pub name: String,
    pub body: Bytes,
    /// Lowercase hex SHA-256 of the body, precomputed for SigV4.
    pub sha256: String,
    pub weight: f64,
}

impl Payload {
    pub fn new(name: impl Into<String>, body: impl Into<Bytes>, weight: f64) -> Payload {
        let body = body.into();
        let sha256 = hex::encode(Sha256::digest(&body));
        Payload { name: name.into(), body, sha256, weight }
    }

    fn read(spec: &PayloadSpec) -> Result<Payload, PayloadError> {
        let unreadable = |reason: String| PayloadError::Unreadable { path: spec.path.clone(), reason };
        let meta = std::fs::metadata(&spec.path).map_err(|e| unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        if meta.len() > MAX_PAYLOAD_BYTES as u64 {
            return Err(PayloadError::TooLarge { path: spec.path.clone(), size: meta.len() });
        }
        let body = std::fs::read(&spec.path).map_err(|e| unreadable(e.to_string()))?;
        Ok(Payload::new(spec.path.display().to_string(), body, spec.weight))
    }
}

/// A non-empty set of payloads with positive weights.
#[derive(Debug, Clone)]
pub struct PayloadMix {
    payloads: Vec<Payload>,
    /// Cumulative weights normalised to end at 1.
    cumulative: Vec<f64>,
}

/// 1/φ: successive multiples modulo 1 spread as evenly as any sequence can,
/// so every window of requests carries close to the weighted share of each body.
const GOLDEN: f64 = 0.618_033_988_749_894_9;

impl PayloadMix {
    /// Reads every file named in `specs`.
    pub fn read(specs: &[PayloadSpec]) -> Result<PayloadMix, PayloadError> {
        let payloads = specs.iter().map(Payload::read).collect::<Result<Vec<_>, _>>()?;
        PayloadMix::new(payloads)
    }

    pub fn new(payloads: Vec<Payload>) -> Result<PayloadMix, PayloadError> {
        if payloads.is_empty() {
            return Err(PayloadError::None);
        }
        for p in &payloads {
            check_weight(&p.name, p.weight, &p.weight.to_string())?;
        }
        let total: f64 = payloads.iter().map(|p| p.weight).sum();
        let mut running = 0.0;
        let cumulative = payloads
            .iter()
            .map(|p| {
                running += p.weight / total;
                running
            })
            .collect();
        Ok(PayloadMix { payloads, cumulative })
    }

    /// The payload request slot `slot` carries.
    pub fn pick(&self, slot: u64) -> &Payload {
        self.pick_indexed(slot).1
    }

    /// The payload request slot `slot` carries, and its index in the mix
    /// (what a per-payload cache is keyed by).
    pub fn pick_indexed(&self, slot: u64) -> (usize, &Payload) {
        let u = (slot as f64 * GOLDEN).fract();
        let index = self.cumulative.iter().position(|&c| u < c).unwrap_or(self.payloads.len() - 1);
        (index, &self.payloads[index])
    }

    pub fn payloads(&self) -> &[Payload] {
        &self.payloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_arguments_parse_file_and_weight() {
        assert_eq!("a.json".parse::<PayloadSpec>().unwrap(), PayloadSpec { path: "a.json".into(), weight: 1.0 });
        assert_eq!("a.json:3".parse::<PayloadSpec>().unwrap().weight, 3.0);
        assert_eq!("dir/a.json:0.25".parse::<PayloadSpec>().unwrap().weight, 0.25);
        for bad in ["a.json:0", "a.json:-1", "a.json:x", "a.json:inf"] {
            let err = bad.parse::<PayloadSpec>().unwrap_err();
            assert!(matches!(err, PayloadError::BadWeight { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn scenario_requests_read_perfsizesagemaker_json() {
        let specs = parse_scenario_requests(r#"[{"path": "a.json", "weight": 70}, {"path": "b.json", "weight": 30}]"#).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].weight, 30.0);
        assert!(parse_scenario_requests(r#"[{"path": "a.json", "weight": -1}]"#).is_err());
        assert!(parse_scenario_requests("not json").is_err());
    }

    #[test]
    fn the_mix_follows_the_weights_in_every_window() {
        let mix = PayloadMix::new(vec![
            Payload::new("a", &b"a"[..], 1.0),
            Payload::new("b", &b"b"[..], 2.0),
            Payload::new("c", &b"c"[..], 7.0),
        ])
        .unwrap();
        for window in [0..100u64, 5_000..5_100] {
            let mut counts = [0; 3];
            for slot in window {
                counts[(mix.pick(slot).body[0] - b'a') as usize] += 1;
            }
            assert!(
                (8..=12).contains(&counts[0]) && (17..=23).contains(&counts[1]) && (66..=74).contains(&counts[2]),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn missing_or_oversized_files_are_refused() {
        let err = PayloadMix::read(&[PayloadSpec { path: "/definitely/not/here.json".into(), weight: 1.0 }]).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here.json"), "{err}");
        assert_eq!(PayloadMix::new(vec![]).unwrap_err(), PayloadError::None);
    }

    #[test]
    fn the_body_hash_is_precomputed_for_signing() {
        let p = Payload::new("empty", &b""[..], 1.0);
        assert_eq!(p.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
