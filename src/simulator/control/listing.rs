//! What every SageMaker List* call shares: filters by name and time, sorting,
//! and paging with NextToken.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::validation::{constraint, str_member};
use crate::simulator::wire::{AwsError, page};

/// One resource in a listing, with what filters and sorting look at.
pub(super) struct Row<'a> {
    pub(super) name: &'a str,
    pub(super) created: SystemTime,
    pub(super) modified: Option<SystemTime>,
    pub(super) status: Option<&'static str>,
    pub(super) summary: Value,
}

fn time_member(input: &Value, key: &str) -> Option<SystemTime> {
    let secs = input.get(key)?.as_f64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
}

/// Filters, sorts and pages a listing the way every SageMaker List* call does.
pub(super) fn list_page(input: &Value, mut rows: Vec<Row<'_>>, key: &str) -> Result<Value, AwsError> {
    let contains = str_member(input, "NameContains");
    let before = time_member(input, "CreationTimeBefore");
    let after = time_member(input, "CreationTimeAfter");
    let modified_before = time_member(input, "LastModifiedTimeBefore");
    let modified_after = time_member(input, "LastModifiedTimeAfter");
    rows.retain(|r| {
        contains.is_none_or(|c| r.name.contains(c))
            && before.is_none_or(|t| r.created < t)
            && after.is_none_or(|t| r.created > t)
            && modified_before.is_none_or(|t| r.modified.is_some_and(|m| m < t))
            && modified_after.is_none_or(|t| r.modified.is_some_and(|m| m > t))
    });
    match str_member(input, "SortBy").unwrap_or("CreationTime") {
        "Name" => rows.sort_by(|a, b| a.name.cmp(b.name)),
        "Status" => rows.sort_by(|a, b| a.status.cmp(&b.status).then(a.name.cmp(b.name))),
        "CreationTime" => rows.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(b.name))),
        other => {
            return Err(constraint(other, "sortBy", "Member must satisfy enum value set: [Name, CreationTime, Status]"));
        }
    }
    match str_member(input, "SortOrder").unwrap_or("Descending") {
        "Descending" => rows.reverse(),
        "Ascending" => {}
        other => {
            return Err(constraint(other, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]"));
        }
    }
    let max = input.get("MaxResults").and_then(Value::as_i64).unwrap_or(10);
    if !(1..=100).contains(&max) {
        return Err(constraint(&max.to_string(), "maxResults", "Member must have value between 1 and 100"));
    }
    let token = str_member(input, "NextToken");
    let (page, next) = page(rows.into_iter().map(|r| r.summary).collect(), token, max as usize)
        .map_err(|()| AwsError::validation(format!("Invalid pagination token \"{}\".", token.unwrap_or_default())))?;
    let mut out = json!({ key: page });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}
