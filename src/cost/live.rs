//! `--prices live`: today's prices from the AWS Price List API (GetProducts
//! on the AmazonSageMaker and AmazonS3 offers, filtered to the region),
//! over the shipped figures: what the API answers replaces the shipped
//! price, what it does not (or an API that cannot be reached) leaves it, and
//! the table says which it is and as of when.
//!
//! Each PriceList entry is a JSON document in a string, as AWS returns it.
//! Prices are recognised by usage type: `<prefix>-Host:<instance type>`
//! (instance-hours), `ServerlessInf:Mem-<N>GB` (on-demand compute per
//! second), `ServerlessInf:PC-Mem-<N>GB` (provisioned concurrency per hour),
//! `ServerlessInf:PCInf-Mem-<N>GB` (compute on provisioned workers per
//! second), `ServerlessInf:Data-Bytes-In` (data processed, per GB), and S3's
//! `Requests-Tier1` (PUT), `Requests-Tier2` (GET) and `TimedStorage-ByteHrs`.

use std::time::Duration;

use aws_config::SdkConfig;

use super::PriceTable;

/// The Price List API answers in these regions only; us-east-1 serves every region's prices.
const PRICING_REGION: &str = "us-east-1";
/// Most pages read per offer: the SageMaker offer of one region is a few thousand products.
const MAX_PAGES: usize = 100;

/// One price the API gave: its usage type and USD per unit.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPrice {
    pub usage_type: String,
    pub usd: f64,
    pub published: Option<String>,
}

/// The prices of `region` from the Price List API over `shipped`; `shipped`
/// itself, saying why, when the API cannot be reached within `wait`.
pub async fn read(config: &SdkConfig, region: &str, shipped: &PriceTable, wait: Duration) -> PriceTable {
    // Prices are worth a few tries, not the control plane's patience: the
    // shipped files are there when the API cannot be reached.
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3).with_max_backoff(Duration::from_secs(2));
    let client = aws_sdk_pricing::Client::from_conf(
        aws_sdk_pricing::config::Builder::from(config)
            .region(aws_config::Region::new(PRICING_REGION))
            .retry_config(retries)
            .build(),
    );
    let fetch = async {
        let mut listed = products(&client, "AmazonSageMaker", region).await?;
        listed.extend(products(&client, "AmazonS3", region).await?);
        Ok::<_, String>(listed)
    };
    match tokio::time::timeout(wait, fetch).await {
        Ok(Ok(listed)) => over(shipped, &listed),
        Ok(Err(why)) => unreachable_api(shipped, &why),
        Err(_) => unreachable_api(shipped, &format!("no answer within {}", humantime::format_duration(wait))),
    }
}

fn unreachable_api(shipped: &PriceTable, why: &str) -> PriceTable {
    tracing::warn!("the AWS Price List API cannot be read ({why}); using {}", shipped.origin);
    let mut table = shipped.clone();
    table.origin = format!("{} (the Price List API could not be read: {why})", shipped.origin);
    table
}

/// Every product of `service` in `region`, page by page.
async fn products(client: &aws_sdk_pricing::Client, service: &str, region: &str) -> Result<Vec<ListedPrice>, String> {
    let filter = aws_sdk_pricing::types::Filter::builder()
        .r#type(aws_sdk_pricing::types::FilterType::TermMatch)
        .field("regionCode")
        .value(region)
        .build()
        .map_err(|e| e.to_string())?;
    let mut listed = Vec::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .get_products()
            .service_code(service)
            .filters(filter.clone())
            .format_version("aws_v1")
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| format!("GetProducts {service}: {}", crate::error_chain(&e)))?;
        listed.extend(page.price_list().iter().filter_map(|entry| parse(entry)));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(listed)
}

/// One PriceList entry: its usage type and on-demand USD price per unit.
pub fn parse(entry: &str) -> Option<ListedPrice> {
    let doc: serde_json::Value = serde_json::from_str(entry).ok()?;
    let usage_type = doc["product"]["attributes"]["usagetype"].as_str()?.to_string();
    let on_demand = doc["terms"]["OnDemand"].as_object()?;
    let usd = on_demand
        .values()
        .filter_map(|term| term["priceDimensions"].as_object())
        .flat_map(|dimensions| dimensions.values())
        .find_map(|d| d["pricePerUnit"]["USD"].as_str()?.parse::<f64>().ok())?;
    let published = doc["publicationDate"].as_str().map(|d| d.chars().take(10).collect());
    Some(ListedPrice { usage_type, usd, published })
}

/// `shipped` with every price the API listed in its place.
pub fn over(shipped: &PriceTable, listed: &[ListedPrice]) -> PriceTable {
    let mut table = shipped.clone();
    let mut replaced = 0usize;
    let mut set = |slot: &mut f64, value: f64| {
        *slot = value;
        replaced += 1;
    };
    for price in listed {
        let usage = price.usage_type.as_str();
        if let Some(instance_type) = usage.split_once("-Host:").map(|(_, t)| t) {
            if let Some(slot) = table.prices.get_mut(instance_type) {
                set(slot, price.usd);
            }
        } else if let Some(serverless) = table.serverless.as_mut() {
            if let Some(gb) = gigabytes(usage, "ServerlessInf:Mem-") {
                set(&mut serverless.compute_per_gb_second, price.usd / gb);
            } else if let Some(gb) = gigabytes(usage, "ServerlessInf:PC-Mem-") {
                set(&mut serverless.provisioned_per_gb_hour, price.usd / gb);
            } else if let Some(gb) = gigabytes(usage, "ServerlessInf:PCInf-Mem-") {
                set(&mut serverless.provisioned_compute_per_gb_second, price.usd / gb);
            } else if usage.ends_with("ServerlessInf:Data-Bytes-In") {
                set(&mut serverless.data_per_gb, price.usd);
            }
        }
        if usage.ends_with("-Requests-Tier1") {
            set(&mut table.s3.put_per_1000, price.usd * 1000.0);
        } else if usage.ends_with("-Requests-Tier2") {
            set(&mut table.s3.get_per_1000, price.usd * 1000.0);
        } else if usage.ends_with("-TimedStorage-ByteHrs") {
            set(&mut table.s3.storage_per_gb_month, price.usd);
        }
    }
    let published = listed.iter().filter_map(|p| p.published.clone()).max();
    table.origin = format!("AWS Price List API ({replaced} prices; the rest from {})", shipped.origin);
    table.as_of = published.clone().or(table.as_of);
    if let Some(serverless) = table.serverless.as_mut() {
        serverless.as_of = published.or(serverless.as_of.take());
    }
    table
}

/// N of a usage type `…<prefix>NGB`.
fn gigabytes(usage: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = usage.split_once(prefix)?;
    rest.strip_suffix("GB")?.parse::<f64>().ok().filter(|gb| *gb > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(usage: &str, unit: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": "ML Instance", "attributes": {"usagetype": usage, "regionCode": "us-west-2"}, "sku": "S"},
            "serviceCode": "AmazonSageMaker",
            "terms": {"OnDemand": {"S.T": {"priceDimensions": {"S.T.R": {"unit": unit, "pricePerUnit": {"USD": usd}}}}}},
            "publicationDate": "2026-11-28T12:00:00Z"
        })
        .to_string()
    }

    #[test]
    fn listed_prices_replace_the_shipped_ones_and_the_rest_stay() {
        let shipped = PriceTable::shipped("us-west-2").unwrap();
        let listed: Vec<ListedPrice> = [
            entry("USW2-Host:ml.m5.large", "Hrs", "0.2300000000"),
            entry("USW2-ServerlessInf:Mem-2GB", "Second", "0.0000600000"),
            entry("USW2-ServerlessInf:PC-Mem-4GB", "Hrs", "0.0800000000"),
            entry("USW2-Requests-Tier1", "Requests", "0.0000060000"),
            entry("USW2-Host:ml.unknown.large", "Hrs", "9.0"),
        ]
        .iter()
        .map(|e| parse(e).unwrap())
        .collect();
        let live = over(&shipped, &listed);
        assert_eq!(live.prices["ml.m5.large"], 0.23);
        assert_eq!(live.prices["ml.c5.large"], shipped.prices["ml.c5.large"], "not listed: shipped");
        assert!(!live.prices.contains_key("ml.unknown.large"), "only types perfsize knows");
        let serverless = live.serverless.as_ref().unwrap();
        assert!((serverless.compute_per_gb_second - 0.00003).abs() < 1e-12);
        assert!((serverless.provisioned_per_gb_hour - 0.02).abs() < 1e-12);
        assert_eq!(serverless.data_per_gb, shipped.serverless.as_ref().unwrap().data_per_gb);
        assert!((live.s3.put_per_1000 - 0.006).abs() < 1e-12);
        assert_eq!(live.as_of.as_deref(), Some("2026-11-28"));
        assert!(
            live.describe().starts_with("AWS Price List API (4 prices; the rest from resources/cost/us-west-2.json"),
            "{}",
            live.describe()
        );
        assert!(parse("not json").is_none());
    }
}
