#!/usr/bin/env bash
# make demo-aws: the AWS path end to end on local emulators (kinesis-mock for
# Kinesis, moto for S3 and Glue), no cloud account needed:
#   create a 4-shard stream, a bucket and nothing else;
#   lakehose gen taxi | lakehose put   (PutRecords, partial failures retried)
#   lakehose run --exit-when-caught-up (Parquet on S3, Glue table + partitions)
#   print the S3 objects and the Glue partitions.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/lakehose-target}/release/lakehose}
COUNT=${COUNT:-20000}
STATE=$(mktemp -d -t lakehose-demo.XXXXXX)
trap 'scripts/emulators.sh stop "$STATE"; rm -rf "$STATE"' EXIT

scripts/emulators.sh install
scripts/emulators.sh start "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
PY=emulators/.venv/bin/python

echo "== creating stream 'demo' (4 shards) and bucket 'demo-lake'"
$PY - <<'PY'
import os, time, boto3
k = boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
k.create_stream(StreamName="demo", ShardCount=4)
while k.describe_stream_summary(StreamName="demo")["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.2)
s3.create_bucket(Bucket="demo-lake")
PY

cat > "$STATE/lakehose.toml" <<TOML
prefix = "lake/"
[kinesis]
stream = "demo"
idle_poll_ms = 200
[s3]
bucket = "demo-lake"
force_path_style = true
[catalog]
kind = "glue"
database = "demo"
TOML

echo "== producing $COUNT generated events (3% broken) with lakehose put"
"$BIN" gen taxi --count "$COUNT" --bad 0.03 --seed 3 | "$BIN" put --stream demo --partition-key-field event_id
echo "== lakehose run until caught up"
"$BIN" run --config "$STATE/lakehose.toml" --exit-when-caught-up --insecure-dev-key -q

echo "== S3 objects (s3://demo-lake/lake/), first 20"
$PY - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="demo-lake", Prefix="lake/"):
    keys += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
for k, n in keys[:20]:
    print(f"  {n:>9}  {k}")
print(f"  ... {len(keys)} objects in all")
glue = boto3.client("glue", endpoint_url=os.environ["AWS_ENDPOINT_URL_GLUE"])
t = glue.get_table(DatabaseName="demo", Name="taxi_trips")["Table"]
print("== Glue table demo.taxi_trips:", t["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"])
parts = glue.get_partitions(DatabaseName="demo", TableName="taxi_trips")["Partitions"]
print(f"== Glue partitions ({len(parts)}), first 10")
for p in sorted(parts, key=lambda p: p["Values"])[:10]:
    print("  ", p["Values"], p["StorageDescriptor"]["Location"])
PY
