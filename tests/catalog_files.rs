//! `glue/` and `athena/` are the tool's own output for `schemas/`, and the
//! local catalog lists exactly the partitions the lake holds.

mod helpers;

use std::collections::BTreeSet;
use std::fs;

use helpers::*;
use lakehose::gen::EventKind;

fn lakehose_out(args: &[&str]) -> String {
    let mut c = lakehose_cmd();
    c.current_dir(repo_root()).args(args);
    let (status, out, err) = run_command(c, None);
    assert!(status.success(), "lakehose {args:?}: {err}");
    out
}

fn names_in(dir: &str, ext: &str) -> BTreeSet<String> {
    fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(ext).map(str::to_owned))
        .collect()
}

#[test]
fn glue_and_athena_files_match_the_schemas() {
    let schemas = repo_schemas();
    let schemas = schemas.to_str().unwrap();
    let listed: BTreeSet<String> = lakehose_out(&["schema", "list", "--schemas", schemas])
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    // One table per schema file, and one glue/athena file per table, no strays.
    assert_eq!(listed, names_in("schemas", ".json"));
    assert_eq!(names_in("glue", ".json"), listed, "glue/ vs schemas/");
    // athena/examples.sql holds hand-written example queries, not a table.
    let mut athena = names_in("athena", ".sql");
    assert!(athena.remove("examples"), "athena/examples.sql is missing");
    assert_eq!(athena, listed, "athena/ vs schemas/");
    for t in &listed {
        let hint = "run `make sync-catalog-files`";
        let glue = lakehose_out(&["schema", "glue", t, "--schemas", schemas]);
        let file = fs::read_to_string(repo_root().join(format!("glue/{t}.json"))).unwrap();
        assert_eq!(file, glue, "glue/{t}.json is stale: {hint}");
        let ddl = lakehose_out(&["schema", "ddl", t, "--schemas", schemas]);
        let file = fs::read_to_string(repo_root().join(format!("athena/{t}.sql"))).unwrap();
        assert_eq!(file, ddl, "athena/{t}.sql is stale: {hint}");
    }
}

#[test]
fn local_catalog_lists_exactly_the_partitions_in_the_lake() {
    let lake = Lake::new();
    let (input, _) = lake.gen_input("in.ndjson", &gen_opts(EventKind::Taxi, 2000, 0.05, 0.0, 41));
    lake.run(&input, &[]);
    let doc = lake.catalog("taxi_trips");
    assert_eq!(doc["DatabaseName"], "lakehose");
    let root = lake.root().canonicalize().unwrap();
    let table_location = format!("file://{}/taxi_trips/", root.display());
    assert_eq!(
        doc["Table"]["StorageDescriptor"]["Location"],
        table_location.as_str()
    );
    let partitions = doc["Partitions"].as_object().expect("Partitions");
    let listed: BTreeSet<String> = partitions.keys().cloned().collect();
    let in_lake: BTreeSet<String> = lake.objects("taxi_trips").into_keys().collect();
    assert!(!in_lake.is_empty());
    assert_eq!(
        listed, in_lake,
        "catalog partitions vs partition directories with objects"
    );
    for (path, p) in partitions {
        let sd = &p["StorageDescriptor"];
        let loc = sd["Location"].as_str().unwrap();
        assert_eq!(loc, format!("{table_location}{path}/"));
        assert!(loc.ends_with(&format!("taxi_trips/{path}/")));
        assert_eq!(
            sd["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        );
        let values: Vec<&str> = path
            .split('/')
            .map(|kv| kv.split_once('=').unwrap().1)
            .collect();
        assert_eq!(p["Values"], serde_json::json!(values), "{path}");
    }
    // Every table of schemas/ is registered, even one with no data yet.
    let clicks = lake.catalog("app_clicks");
    assert_eq!(clicks["Table"]["Name"], "app_clicks");
    assert!(clicks["Partitions"].as_object().unwrap().is_empty());
    // A second run adds no partitions of its own (nothing new to read).
    lake.run(&input, &[]);
    assert_eq!(lake.catalog("taxi_trips")["Partitions"], doc["Partitions"]);
}
