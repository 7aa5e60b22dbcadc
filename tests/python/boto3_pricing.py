"""boto3 against perfsize's simulator: the Price List API subset `--prices live` reads.

GetProducts on AmazonSageMaker and AmazonS3 with TERM_MATCH filters, PriceList entries as JSON
documents in strings (as AWS returns them), and pagination with NextToken.

Usage: python3 boto3_pricing.py SIMULATOR_URL
"""
import json
import sys

import boto3

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-east-1")
pricing = session.client("pricing", endpoint_url=url)

region = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"}]
one = pricing.get_products(ServiceCode="AmazonSageMaker", FormatVersion="aws_v1", Filters=region + [
    {"Type": "TERM_MATCH", "Field": "usagetype", "Value": "USW2-Host:ml.m5.large"}])
assert len(one["PriceList"]) == 1, one
doc = json.loads(one["PriceList"][0])
term = next(iter(doc["terms"]["OnDemand"].values()))
price = next(iter(term["priceDimensions"].values()))
assert price["unit"] == "Hrs" and float(price["pricePerUnit"]["USD"]) == 0.115, price

seen, token = [], None
while True:
    kwargs = {"NextToken": token} if token else {}
    page = pricing.get_products(ServiceCode="AmazonSageMaker", Filters=region, MaxResults=20, **kwargs)
    seen.extend(json.loads(p)["product"]["attributes"]["usagetype"] for p in page["PriceList"])
    token = page.get("NextToken")
    if not token:
        break
assert len(seen) == len(set(seen)) and len(seen) > 20, len(seen)
assert "USW2-ServerlessInf:Mem-2GB" in seen, seen

s3 = pricing.get_products(ServiceCode="AmazonS3", Filters=region)
usages = {json.loads(p)["product"]["attributes"]["usagetype"] for p in s3["PriceList"]}
assert usages == {"USW2-Requests-Tier1", "USW2-Requests-Tier2", "USW2-TimedStorage-ByteHrs"}, usages
print("ok")
