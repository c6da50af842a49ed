//! Throttling and transient failures on the AWS path, injected by a proxy
//! between lakehose and the emulators: Kinesis throttles GetRecords, S3
//! answers PUTs with 503 SlowDown or drops the connection, Glue fails
//! BatchCreatePartition. lakehose retries; nothing is lost or duplicated and
//! every partition ends up registered.

mod helpers;

use helpers::aws::Aws;
use helpers::faults::{FaultProxy, Reply, Rule};
use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";

fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} unset: run through `make test`"))
}

#[test]
fn throttling_and_transient_errors_are_retried_without_loss() {
    let aws = Aws::new("faults", 2);
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        // No producer duplicates: at a 1 MiB cap the duplicate window is
        // shrunk below this input's size (tests/duplicates.rs covers it).
        &gen_opts(EventKind::Taxi, 6_000, 0.05, 0.0, 51),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    aws.put(&input, &[]);

    let kinesis = FaultProxy::start(
        &endpoint("AWS_ENDPOINT_URL_KINESIS"),
        vec![Rule {
            matches: "Kinesis_20131202.GetRecords".into(),
            every: 2,
            max: 8,
            reply: Reply::Json {
                status: 400,
                code: "ProvisionedThroughputExceededException".into(),
            },
        }],
    );
    let s3 = FaultProxy::start(
        &endpoint("AWS_ENDPOINT_URL_S3"),
        vec![
            Rule {
                matches: format!("PUT /{}/lake/{TABLE}/", aws.bucket),
                every: 3,
                max: 6,
                reply: Reply::Xml {
                    status: 503,
                    code: "SlowDown".into(),
                },
            },
            Rule {
                matches: format!("PUT /{}/lake/errors/", aws.bucket),
                every: 2,
                max: 3,
                reply: Reply::Drop,
            },
        ],
    );
    let glue = FaultProxy::start(
        &endpoint("AWS_ENDPOINT_URL_GLUE"),
        vec![Rule {
            matches: "AWSGlue.BatchCreatePartition".into(),
            every: 2,
            max: 4,
            reply: Reply::Json {
                status: 500,
                code: "InternalServiceException".into(),
            },
        }],
    );
    // Small buffers: many objects, many partition registrations.
    let cfg = aws.config(&lake, "[buffer]\nsize_mib = 1\nmemory_cap_mib = 1\n");
    let mut cmd = aws.run_command(&lake, &cfg, &[]);
    cmd.env("AWS_ENDPOINT_URL_KINESIS", kinesis.url())
        .env("AWS_ENDPOINT_URL_S3", s3.url())
        .env("AWS_ENDPOINT_URL_GLUE", glue.url());
    let out = lake.run_cmd(cmd, None);
    out.assert_ok();

    assert!(kinesis.injected()[0] > 0, "no GetRecords throttled");
    assert!(s3.injected()[0] > 0, "no S3 PUT failed");
    assert!(s3.injected()[1] > 0, "no S3 connection dropped");
    assert!(glue.injected()[0] > 0, "no Glue call failed");

    aws.mirror(&lake);
    exp.assert_delivered_once(&lake, TABLE);
    let registered: std::collections::BTreeSet<String> =
        aws.glue_partitions(TABLE).into_keys().collect();
    assert_eq!(registered, aws.partitions_on_s3(TABLE));
    assert_eq!(out.count("partitions_owed"), 0);
}

#[test]
fn a_flush_that_fails_for_good_leaves_the_checkpoint_behind_it() {
    let aws = Aws::new("failflush", 2);
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        // No producer duplicates: at a 1 MiB cap the duplicate window is
        // shrunk below this input's size (tests/duplicates.rs covers it).
        &gen_opts(EventKind::Taxi, 4_000, 0.05, 0.0, 52),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    aws.put(&input, &[]);
    // One attempt per call: the first three data PUTs fail for good, the
    // rest of the run's flushes succeed.
    let s3 = FaultProxy::start(
        &endpoint("AWS_ENDPOINT_URL_S3"),
        vec![Rule {
            matches: format!("PUT /{}/lake/{TABLE}/", aws.bucket),
            every: 1,
            max: 3,
            reply: Reply::Xml {
                status: 500,
                code: "InternalError".into(),
            },
        }],
    );
    let cfg = aws.config(
        &lake,
        "[aws]\nmax_attempts = 1\n[buffer]\nsize_mib = 1\nmemory_cap_mib = 1\n",
    );
    let mut cmd = aws.run_command(&lake, &cfg, &[]);
    cmd.env("AWS_ENDPOINT_URL_S3", s3.url());
    let out = lake.run_cmd(cmd, None);
    assert!(!out.status.success(), "the run must report the lost flush");
    assert_eq!(s3.injected()[0], 3);
    // A clean run delivers what the failed flush held, and nothing twice.
    aws.run(&lake, &cfg, &[]);
    aws.mirror(&lake);
    exp.assert_delivered_once(&lake, TABLE);
}
