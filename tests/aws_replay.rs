//! `lakehose replay` against S3 and Glue (moto): the now-valid records land
//! on S3, once, and a partition that did not exist before is registered in
//! Glue before its object appears; a second replay adds nothing.

mod helpers;

use std::collections::BTreeSet;
use std::io::Write;

use helpers::aws::Aws;
use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";

#[test]
fn replay_from_s3_registers_a_new_partition_in_glue() {
    let aws = Aws::new("replay", 1);
    let lake = Lake::new();
    let (input, _) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 2_000, 0.15, 0.0, 81),
    );
    // One extra record, broken by a rule the fix relaxes, in an hour no
    // other record has: replaying it creates a new partition.
    let lonely = r#"{"event_id":"0b7e7f4e-5b8f-4c4f-9a57-6d0f3f1c2a11","VendorID":2,"tpep_pickup_datetime":"2019-01-01T00:30:00Z","tpep_dropoff_datetime":"2019-01-01T00:45:00Z","passenger_count":-3,"trip_distance":1.5,"RatecodeID":1,"store_and_fwd_flag":"N","PULocationID":1,"DOLocationID":2,"payment_type":1,"fare_amount":7.5,"extra":0.5,"mta_tax":0.5,"tip_amount":1.0,"tolls_amount":0.0,"improvement_surcharge":0.3,"total_amount":9.8,"congestion_surcharge":0.0,"Airport_fee":0.0,"rider":{"email":"x@example.com","phone":"+1 555 0100"},"card_number":"4111111111111111","tags":[]}"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(format!("{lonely}\n").as_bytes())
        .unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let exp = Expected::from_text(EventKind::Taxi, &text);
    assert!(
        exp.now_valid().iter().any(|l| l.text == lonely),
        "the extra record must be one the fix makes valid"
    );
    aws.put(&input, &[]);
    let cfg = aws.config(&lake, "");
    aws.run(&lake, &cfg, &[]);
    let before: BTreeSet<String> = aws.glue_partitions(TABLE).into_keys().collect();
    let new_partition = "year=2019/month=01/day=01/hour=00/vendor_id=2";
    assert!(!before.contains(new_partition));

    let fixed = relaxed_schemas(&lake.path("fixed-schemas"));
    let replay = || {
        let mut c = lakehose_cmd();
        c.arg("replay")
            .arg("--config")
            .arg(&cfg)
            .arg("--schemas")
            .arg(&fixed)
            .arg("--insecure-dev-key");
        let (st, out, err) = run_command(c, None);
        assert!(st.success(), "replay failed:\n{out}\n{err}");
        out
    };
    let out = replay();
    assert!(out.contains("passed"), "{out}");

    aws.mirror(&lake);
    let got = multiset(lake.rows(TABLE).iter().map(|r| r.str_at("event_id")));
    let diff = multiset_diff(&exp.ids_after_replay(), &got);
    assert!(diff.is_empty(), "lake rows differ: {diff}");
    let after = aws.glue_partitions(TABLE);
    assert!(after.contains_key(new_partition), "{after:?}");
    assert_eq!(
        after[new_partition],
        format!("s3://{}/lake/{TABLE}/{new_partition}/", aws.bucket)
    );
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        aws.partitions_on_s3(TABLE)
    );

    // Again: nothing new in the lake.
    let keys_before = aws.keys();
    replay();
    aws.mirror(&lake);
    let got = multiset(lake.rows(TABLE).iter().map(|r| r.str_at("event_id")));
    assert!(multiset_diff(&exp.ids_after_replay(), &got).is_empty());
    let added: Vec<String> = aws
        .keys()
        .into_iter()
        .filter(|k| {
            !keys_before.contains(k) && !k.contains("/errors/") && !k.contains("_lakehose/")
        })
        .collect();
    assert!(
        added.is_empty(),
        "second replay added data objects: {added:?}"
    );
}
