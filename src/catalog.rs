//! The instance catalog: which SageMaker hosting instance types exist and what
//! hardware each has (`resources/instances.json`, compiled in).
//!
//! The CLI checks instance types against it before anything is deployed, the
//! simulator scales its `[default]` profile entry by vCPU count with it, and the
//! cost model refuses prices for types it does not know.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const CATALOG_JSON: &str = include_str!("../resources/instances.json");

/// Hardware of one instance type.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InstanceSpec {
    pub vcpus: u32,
    pub memory_gib: f64,
    #[serde(default)]
    pub gpus: u32,
    #[serde(default)]
    pub accelerator: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    instance_types: BTreeMap<String, InstanceSpec>,
}

fn catalog() -> &'static BTreeMap<String, InstanceSpec> {
    static CATALOG: OnceLock<BTreeMap<String, InstanceSpec>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str::<CatalogFile>(CATALOG_JSON)
            .expect("resources/instances.json is valid (checked by a unit test)")
            .instance_types
    })
}

/// The hardware of `name`, if the catalog knows the type.
pub fn spec(name: &str) -> Option<&'static InstanceSpec> {
    catalog().get(name)
}

/// Every type the catalog knows, in name order.
pub fn all_types() -> impl Iterator<Item = &'static str> {
    catalog().keys().map(String::as_str)
}

/// A SageMaker hosting instance type that exists in the catalog.
///
/// Holding one proves the name is known, so code past the CLI never meets an
/// unknown type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceType(String);

impl InstanceType {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn spec(&self) -> &'static InstanceSpec {
        spec(&self.0).expect("an InstanceType is in the catalog by construction")
    }
}

/// Why an instance type name was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown instance type `{name}`{}", suggestion(.name))]
pub struct UnknownInstanceType {
    pub name: String,
}

fn suggestion(name: &str) -> String {
    let family = name.rsplit_once('.').map(|(family, _)| family).unwrap_or(name);
    let sizes: Vec<&str> = all_types().filter(|t| t.rsplit_once('.').map(|(f, _)| f) == Some(family)).collect();
    if !sizes.is_empty() {
        format!(" (known sizes of {family}: {})", sizes.join(", "))
    } else if !name.starts_with("ml.") {
        " (SageMaker types start with `ml.`, e.g. ml.m5.large)".to_string()
    } else {
        " (see resources/instances.json for the known types)".to_string()
    }
}

impl FromStr for InstanceType {
    type Err = UnknownInstanceType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        if spec(name).is_some() {
            Ok(InstanceType(name.to_string()))
        } else {
            Err(UnknownInstanceType { name: name.to_string() })
        }
    }
}

impl TryFrom<String> for InstanceType {
    type Error = UnknownInstanceType;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<InstanceType> for String {
    fn from(t: InstanceType) -> String {
        t.0
    }
}

impl fmt::Display for InstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_knows_the_common_types() {
        for name in ["ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.g4dn.xlarge"] {
            let t: InstanceType = name.parse().unwrap();
            assert!(t.spec().vcpus >= 2, "{name}");
        }
        assert_eq!(spec("ml.g4dn.xlarge").unwrap().gpus, 1);
    }

    #[test]
    fn unknown_type_suggests_the_family_sizes() {
        let err = "ml.m5.huge".parse::<InstanceType>().unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("unknown instance type `ml.m5.huge`"), "{text}");
        assert!(text.contains("ml.m5.large"), "{text}");
        let err = "m5.large".parse::<InstanceType>().unwrap_err().to_string();
        assert!(err.contains("start with `ml.`"), "{err}");
    }
}
