//! Operator mistakes end in one clear line, never a panic; and the masking
//! key comes from the environment when set.

mod helpers;

use std::fs;
use std::process::Command;

use helpers::*;
use lakehose::config::INSECURE_DEV_KEY;
use lakehose::gen::EventKind;

struct Case {
    name: &'static str,
    /// Builds the command in the case's own lake; returns it and the text
    /// the error line must contain (the offending path or key).
    setup: fn(&Lake) -> (Command, String),
}

fn small_input(lake: &Lake) -> String {
    let (p, _) = lake.gen_input("in.ndjson", &gen_opts(EventKind::Taxi, 20, 0.0, 0.0, 1));
    p.to_str().unwrap().to_owned()
}

/// With a key from the environment: no warning line on stderr.
fn keyed(lake: &Lake, input: &str, extra: &[&str]) -> Command {
    let mut c = lake.bare_command(input, extra);
    c.env("LAKEHOSE_MASK_KEY", "cli-test-key");
    c
}

fn bad_schemas(lake: &Lake, file: &str, text: &str) -> String {
    let dir = lake.path("schemas");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo_schemas().join("taxi_trips.json"),
        dir.join("taxi_trips.json"),
    )
    .unwrap();
    let p = dir.join(file);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

const CASES: &[Case] = &[
    Case {
        name: "config path does not exist",
        setup: |l| {
            let p = l.path("nope/lakehose.toml");
            let input = small_input(l);
            let c = keyed(l, &input, &["--config", p.to_str().unwrap()]);
            (c, p.to_str().unwrap().to_owned())
        },
    },
    Case {
        name: "config path is a directory",
        setup: |l| {
            let p = l.path("confdir");
            fs::create_dir_all(&p).unwrap();
            let input = small_input(l);
            (
                keyed(l, &input, &["--config", p.to_str().unwrap()]),
                p.to_str().unwrap().to_owned(),
            )
        },
    },
    Case {
        name: "config with an unknown key",
        setup: |l| {
            let p = l.path("lakehose.toml");
            // size_mb: a typo of size_mib must not fall back to the default
            fs::write(&p, "[buffer]\nsize_mb = 5\n").unwrap();
            let input = small_input(l);
            (
                keyed(l, &input, &["--config", p.to_str().unwrap()]),
                "size_mb".into(),
            )
        },
    },
    Case {
        name: "unknown table",
        setup: |l| {
            let input = small_input(l);
            (keyed(l, &input, &["--table", "nope"]), "\"nope\"".into())
        },
    },
    Case {
        name: "schema file is not JSON",
        setup: |l| {
            let bad = bad_schemas(l, "broken.json", "{\"type\": \"object\", ");
            let input = small_input(l);
            let mut c = keyed(l, &input, &[]);
            replace_schemas(&mut c, l);
            (c, bad)
        },
    },
    Case {
        name: "schema with an invalid type name",
        setup: |l| {
            let schema = r#"{"type": "object", "properties": {"a": {"type": "strnig"}},
                "x-lakehose": {"table": "typo"}}"#;
            let bad = bad_schemas(l, "typo.json", schema);
            let input = small_input(l);
            let mut c = keyed(l, &input, &[]);
            replace_schemas(&mut c, l);
            (c, bad)
        },
    },
    Case {
        name: "lake under a regular file",
        setup: |l| {
            let file = l.path("plain-file");
            fs::write(&file, "x").unwrap();
            let input = small_input(l);
            let lake = file.join("lake");
            let mut c = lakehose_cmd();
            c.env("LAKEHOSE_MASK_KEY", "cli-test-key")
                .args(["run", "-q", "--input", &input, "--schemas"])
                .arg(repo_schemas())
                .arg("--lake")
                .arg(&lake);
            (c, lake.to_str().unwrap().to_owned())
        },
    },
    Case {
        name: "missing input file",
        setup: |l| {
            let p = l.path("missing.ndjson");
            (
                keyed(l, p.to_str().unwrap(), &[]),
                p.to_str().unwrap().to_owned(),
            )
        },
    },
    Case {
        name: "no masking key",
        setup: |l| {
            let input = small_input(l);
            (l.bare_command(&input, &[]), "LAKEHOSE_MASK_KEY".into())
        },
    },
];

/// Point the command's `--schemas` at the case's own schemas directory:
/// rebuild it, as clap rejects a repeated option.
fn replace_schemas(c: &mut Command, l: &Lake) {
    let args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut n = lakehose_cmd();
    n.env("LAKEHOSE_MASK_KEY", "cli-test-key");
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        n.arg(&a);
        if a == "--schemas" {
            it.next();
            n.arg(l.path("schemas"));
        }
    }
    *c = n;
}

#[test]
fn operator_errors_are_one_line_naming_the_culprit() {
    let mut failures = Vec::new();
    for case in CASES {
        let lake = Lake::new();
        let (cmd, needle) = (case.setup)(&lake);
        let (status, stdout, stderr) = run_command(cmd, None);
        let lines: Vec<&str> = stderr.lines().collect();
        let ok = !status.success()
            && status.code().is_some()
            && lines.len() == 1
            && lines[0].starts_with("lakehose: error:")
            && lines[0].contains(&needle)
            && !stderr.contains("panicked")
            && !stdout.contains("panicked");
        if !ok {
            failures.push(format!(
                "{}: status {status:?}, want one error line naming {needle:?}, stderr:\n{stderr}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn mask_key_from_environment_replaces_the_dev_key() {
    let dev = Lake::new();
    let (input, stats) = dev.gen_input("in.ndjson", &gen_opts(EventKind::Taxi, 300, 0.0, 0.0, 3));
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let dev_out = dev.run(&input, &[]);
    assert!(dev_out.stderr.contains("insecure development masking key"));

    let env = Lake::new();
    let mut cmd = env.bare_command(input.to_str().unwrap(), &[]);
    cmd.env("LAKEHOSE_MASK_KEY", "a-real-secret");
    let env_out = env.run_cmd(cmd, None);
    env_out.assert_ok();
    assert!(!env_out.stderr.contains("insecure"), "{}", env_out.stderr);

    let emails = |lake: &Lake| -> std::collections::BTreeMap<String, String> {
        lake.rows("taxi_trips")
            .iter()
            .map(|r| {
                (
                    r.str_at("event_id"),
                    r.value["rider"]["email"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (a, b) = (emails(&dev), emails(&env));
    assert_eq!(a.len(), 300);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let inputs = exp.valid_by_id();
    for (id, hashed) in &b {
        let raw = inputs[id]["rider"]["email"].as_str().unwrap();
        assert_ne!(hashed, &a[id], "same hash under both keys for {id}");
        assert_eq!(hashed, &hmac_hex(b"a-real-secret", raw));
        assert_eq!(a[id], hmac_hex(INSECURE_DEV_KEY, raw));
    }
}
