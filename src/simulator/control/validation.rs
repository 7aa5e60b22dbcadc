//! Request members: reading them, checking them as SageMaker does, and the
//! ValidationException messages it gives for each misuse.

use serde_json::Value;

use crate::sagemaker::valid_name;
use crate::simulator::wire::AwsError;

pub(in crate::simulator) fn constraint(value: &str, member: &str, rule: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

pub(in crate::simulator) fn not_null(member: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

pub(in crate::simulator) fn str_member<'v>(input: &'v Value, key: &str) -> Option<&'v str> {
    input.get(key).and_then(Value::as_str)
}

pub(in crate::simulator) fn required_str<'v>(input: &'v Value, key: &str, member: &str) -> Result<&'v str, AwsError> {
    str_member(input, key).ok_or_else(|| not_null(member))
}

/// An optional whole-number member; anything else there is a constraint error.
pub(in crate::simulator) fn int_member(input: &Value, key: &str, member: &str) -> Result<Option<i64>, AwsError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| constraint(&value.to_string(), member, "Member must be a whole number")),
    }
}

/// An optional whole-number member from `min` to `max`, with the message
/// SageMaker gives for each bound.
pub(in crate::simulator) fn bounded_int_member(
    input: &Value,
    key: &str,
    member: &str,
    min: i64,
    max: i64,
) -> Result<Option<u32>, AwsError> {
    match int_member(input, key, member)? {
        Some(n) if n < min => {
            Err(constraint(&n.to_string(), member, &format!("Member must have value greater than or equal to {min}")))
        }
        Some(n) if n > max => {
            Err(constraint(&n.to_string(), member, &format!("Member must have value less than or equal to {max}")))
        }
        n => Ok(n.map(|n| n as u32)),
    }
}

/// An optional list-of-strings member (absent: empty).
pub(in crate::simulator) fn strings_member(input: &Value, key: &str) -> Vec<String> {
    input
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A resource name from `key`, checked against SageMaker's naming rule.
pub(in crate::simulator) fn name_member<'v>(input: &'v Value, key: &str, member: &str) -> Result<&'v str, AwsError> {
    let name = required_str(input, key, member)?;
    if name.len() > 63 {
        return Err(constraint(name, member, "Member must have length less than or equal to 63"));
    }
    if !valid_name(name) {
        return Err(constraint(
            name,
            member,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ));
    }
    Ok(name)
}

/// An instance count member: a whole number from `min` to 100,000 (a bound
/// far above any account limit that keeps arithmetic on counts safe).
pub(in crate::simulator) fn instance_count(value: Option<&Value>, member: &str, min: u32) -> Result<u32, AwsError> {
    let value = value.ok_or_else(|| not_null(member))?;
    match value.as_i64() {
        Some(n) if n < i64::from(min) => {
            Err(constraint(&n.to_string(), member, &format!("Member must have value greater than or equal to {min}")))
        }
        Some(n) if n <= 100_000 => Ok(n as u32),
        _ => Err(constraint(&value.to_string(), member, "Member must have value less than or equal to 100000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sagemaker_rules() {
        assert!(valid_name("perfsize-abc-ml-m5-large-2"));
        assert!(valid_name("a"));
        assert!(valid_name("a--b"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a-"));
        assert!(!valid_name("a_b"));
        assert!(!valid_name("ml.m5"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_name(&"a".repeat(63)));
    }
}
