//! The subset of the AWS Price List API that `--prices live` reads:
//! GetProducts (awsJson 1.1, `X-Amz-Target: AWSPriceListService.GetProducts`)
//! on the AmazonSageMaker and AmazonS3 offers, TERM_MATCH filters on product
//! attributes, pages of at most 100 products, and every PriceList entry a
//! JSON document in a string, as AWS returns it. The products are made from
//! the price file shipped for the filtered region, under AWS's usage types.

use serde_json::{Value, json};

use super::wire::AwsError;
use crate::cost::PriceTable;

/// The service name of `X-Amz-Target`.
pub const SERVICE: &str = "AWSPriceListService";

/// The date the simulated offers say they were published.
const PUBLISHED: &str = "2026-11-29T00:00:00Z";

pub fn call(operation: &str, input: &Value) -> Result<Value, AwsError> {
    match operation {
        "GetProducts" => get_products(input),
        other => Err(AwsError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("The simulator's Price List API serves GetProducts only, not {other}."),
        )),
    }
}

fn get_products(input: &Value) -> Result<Value, AwsError> {
    let service = input["ServiceCode"].as_str().ok_or_else(|| AwsError::validation("ServiceCode is required."))?;
    let filters: Vec<(&str, &str)> = input["Filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["Field"].as_str()?, f["Value"].as_str()?)))
        .collect();
    let region = filters.iter().find(|(field, _)| *field == "regionCode").map(|(_, v)| *v);
    let products: Vec<Value> = region
        .and_then(|r| PriceTable::shipped(r).ok().map(|table| offer(service, r, &table)))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| filters.iter().all(|(field, value)| p["product"]["attributes"][*field].as_str() == Some(*value)))
        .collect();
    let max = input["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let start: usize = input["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = products.iter().skip(start).take(max).map(|p| Value::String(p.to_string())).collect();
    let mut answer = json!({"FormatVersion": "aws_v1", "PriceList": page});
    if start + max < products.len() {
        answer["NextToken"] = Value::String((start + max).to_string());
    }
    Ok(answer)
}

/// The products of `service` in `region`, from its shipped prices.
fn offer(service: &str, region: &str, table: &PriceTable) -> Vec<Value> {
    let prefix = usage_prefix(region);
    let mut listed: Vec<(String, &str, f64)> = Vec::new();
    match service {
        "AmazonSageMaker" => {
            listed.extend(table.prices.iter().map(|(t, usd)| (format!("{prefix}-Host:{t}"), "Hrs", *usd)));
            if let Some(s) = &table.serverless {
                for gb in 1..=6 {
                    let gb_f = f64::from(gb);
                    listed.push((format!("{prefix}-ServerlessInf:Mem-{gb}GB"), "Second", s.compute_per_gb_second * gb_f));
                    listed.push((format!("{prefix}-ServerlessInf:PC-Mem-{gb}GB"), "Hrs", s.provisioned_per_gb_hour * gb_f));
                    let compute = s.provisioned_compute_per_gb_second * gb_f;
                    listed.push((format!("{prefix}-ServerlessInf:PCInf-Mem-{gb}GB"), "Second", compute));
                }
                listed.push((format!("{prefix}-ServerlessInf:Data-Bytes-In"), "GB", s.data_per_gb));
            }
        }
        "AmazonS3" => {
            listed.push((format!("{prefix}-Requests-Tier1"), "Requests", table.s3.put_per_1000 / 1000.0));
            listed.push((format!("{prefix}-Requests-Tier2"), "Requests", table.s3.get_per_1000 / 1000.0));
            listed.push((format!("{prefix}-TimedStorage-ByteHrs"), "GB-Mo", table.s3.storage_per_gb_month));
        }
        _ => {}
    }
    listed.into_iter().map(|(usage, unit, usd)| product(service, region, &usage, unit, usd)).collect()
}

/// One product document, shaped as the Price List API's.
fn product(service: &str, region: &str, usage: &str, unit: &str, usd: f64) -> Value {
    let sku: String = usage.chars().filter(char::is_ascii_alphanumeric).collect();
    let term = format!("{sku}.JRTCKXETXF");
    json!({
        "product": {
            "productFamily": if service == "AmazonS3" { "Storage" } else { "ML Instance" },
            "attributes": {"servicecode": service, "regionCode": region, "usagetype": usage},
            "sku": sku,
        },
        "serviceCode": service,
        "terms": {"OnDemand": {term.clone(): {
            "offerTermCode": "JRTCKXETXF",
            "sku": sku,
            "effectiveDate": PUBLISHED,
            "priceDimensions": {format!("{term}.6YS6EN2CT7"): {
                "unit": unit,
                "pricePerUnit": {"USD": format!("{usd:.10}")},
                "description": format!("{usage} in {region}"),
            }},
        }}},
        "version": "20261129000000",
        "publicationDate": PUBLISHED,
    })
}

/// The usage-type prefix AWS gives a region's products (USE1, USW2, EUC1, …).
fn usage_prefix(region: &str) -> String {
    match region {
        "us-east-1" => "USE1".into(),
        "us-east-2" => "USE2".into(),
        "us-west-2" => "USW2".into(),
        "eu-west-1" => "EU".into(),
        "eu-central-1" => "EUC1".into(),
        "ap-northeast-1" => "APN1".into(),
        "ap-southeast-2" => "APS2".into(),
        other => other.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_json_strings_filtered_and_paged() {
        let input = json!({
            "ServiceCode": "AmazonSageMaker",
            "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"}],
            "MaxResults": 5
        });
        let first = call("GetProducts", &input).unwrap();
        let page = first["PriceList"].as_array().unwrap();
        assert_eq!(page.len(), 5);
        let doc: Value = serde_json::from_str(page[0].as_str().unwrap()).expect("each entry is a JSON document in a string");
        assert!(doc["product"]["attributes"]["usagetype"].as_str().unwrap().starts_with("USW2-"));
        let token = first["NextToken"].as_str().unwrap();
        let second =
            call("GetProducts", &json!({"ServiceCode": "AmazonSageMaker", "Filters": input["Filters"], "NextToken": token}))
                .unwrap();
        assert_ne!(second["PriceList"][0], page[0]);
        let one = json!({"ServiceCode": "AmazonSageMaker", "Filters": [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"},
            {"Type": "TERM_MATCH", "Field": "usagetype", "Value": "USW2-Host:ml.m5.large"}]});
        let listed = call("GetProducts", &one).unwrap();
        let entry = crate::cost::live::parse(listed["PriceList"][0].as_str().unwrap()).unwrap();
        assert_eq!(entry.usd, 0.115);
        assert!(call("GetProducts", &json!({})).is_err(), "ServiceCode is required");
    }
}
