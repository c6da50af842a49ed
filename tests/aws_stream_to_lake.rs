//! Kinesis in, S3 and Glue out, against the emulators: a 4-shard stream of
//! generated events with broken and duplicated records (plain and KPL
//! aggregated) must land exactly once, with the Glue table and exactly the
//! partitions that exist on S3.

mod helpers;

use helpers::aws::Aws;
use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";

/// Put, run until caught up, check the lake and the catalog.
fn stream_to_lake(test: &str, count: u64, put_flags: &[&str]) {
    let aws = Aws::new(test, 4);
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, count, 0.05, 0.02, 11),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    aws.put(&input, put_flags);
    let cfg = aws.config(&lake, "");
    let out = aws.run(&lake, &cfg, &[]);

    assert_eq!(out.count("records_in"), count, "{}", out.stdout);
    // Duplicates (2%, across shards when aggregated) are dropped by event_id.
    assert_eq!(out.count("written"), stats.valid);
    assert_eq!(out.count("duplicates_dropped"), stats.duplicates);
    assert_eq!(
        out.errored().values().sum::<u64>(),
        count - stats.valid - stats.duplicates
    );
    aws.mirror(&lake);
    exp.assert_delivered_once(&lake, TABLE);

    // The Glue table is the schema's, as Athena needs it.
    let t = aws.glue_table(TABLE);
    let sd = t.storage_descriptor().expect("storage descriptor");
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    assert_eq!(
        sd.location(),
        Some(format!("s3://{}/lake/{TABLE}/", aws.bucket).as_str())
    );
    let cols: Vec<&str> = sd.columns().iter().map(|c| c.name()).collect();
    let want_cols: Vec<String> = lake_schema_columns(TABLE);
    assert_eq!(cols, want_cols);

    // Exactly the partitions that hold objects are registered, each at its
    // own S3 location.
    let registered = aws.glue_partitions(TABLE);
    let on_s3 = aws.partitions_on_s3(TABLE);
    assert_eq!(
        registered
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        on_s3
    );
    for (p, loc) in &registered {
        assert_eq!(loc, &format!("s3://{}/lake/{TABLE}/{p}/", aws.bucket));
    }

    // Caught up and nothing new: a second run delivers nothing twice.
    let again = aws.run(&lake, &cfg, &[]);
    assert_eq!(again.count("written"), 0);
    aws.mirror(&lake);
    exp.assert_delivered_once(&lake, TABLE);
}

/// Column names of a table as the schema maps them (the local catalog's
/// view, which the Glue table must equal).
fn lake_schema_columns(table: &str) -> Vec<String> {
    let registry = lakehose::schema::Registry::load_dir(&repo_schemas()).expect("schemas");
    let t = registry.get(table).expect("table");
    t.columns.iter().map(|c| c.name.clone()).collect()
}

/// 50,000 events, KPL-aggregated 25 to a Kinesis record as producers using
/// the KPL send them (kinesis-mock takes well under 1 MB/s of PutRecords, so
/// 50,000 plain records would take minutes). An aggregate's partition key is
/// its first record's, so duplicates cross shards.
#[test]
fn four_shards_kpl_aggregated_exactly_once_with_glue_partitions() {
    stream_to_lake("e2e", 50_000, &["--aggregate", "25"]);
}

/// Plain (not aggregated) records, keyed by event id.
#[test]
fn four_shards_plain_records_exactly_once() {
    stream_to_lake("plain", 5_000, &["--partition-key-field", "event_id"]);
}
