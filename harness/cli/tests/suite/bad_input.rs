//! Bad input, generated and hand-picked, counted: environments, CLI arguments, manifest templates
//! with missing variables, malformed messages, and (through the `edw` binary) wrong storage
//! settings and unreachable endpoints. Never a panic; each error names its culprit; no secret
//! is echoed. Each test prints how many inputs it tried. (deploy.state has its own generated
//! tests in tests/config.rs; reports and secrets in tests/reports.rs.)

use std::collections::BTreeMap;

use clap::Parser;
use edw_cli::Cli;
use edw_engine::config::{known_keys, Config, ConfigError, ConfigInputs};
use edw_engine::manifests::{render_text, ManifestError, TEMPLATES};
use edw_engine::workload::parse_message;
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, RngAlgorithm, TestRng, TestRunner};

/// Runs `test` on `cases` generated inputs; returns how many ran.
fn tried<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u32
where
    S::Value: std::fmt::Debug,
{
    // A fixed seed: the same inputs every run (a generated failure is reproducible, and the
    // test cannot flake); the counts say how many were tried.
    let mut runner = TestRunner::new_with_rng(
        Cases {
            cases,
            failure_persistence: None,
            ..Cases::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let count = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |input| {
            count.set(count.get() + 1);
            test(input)
        })
        .unwrap();
    count.get()
}

fn nasty_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[ -~]{0,60}",
        prop::sample::select(vec![
            "",
            " ",
            "http://",
            "not a url",
            "ftp://example.com",
            "http://127.0.0.1:1/devstoreaccount1",
            "https://[::1",
            "-5",
            "0",
            "99999999999999999999999",
            "NaN",
            "azurite",
            "entra",
            "key",
            "connection-string",
            "bogus-mode",
            "AccountName=x;AccountKey=%%%",
            "DefaultEndpointsProtocol=https;",
            "UPPER-case_Name",
            "a",
            "a-very-long-name-that-is-longer-than-any-azure-storage-name-allows-at-all",
        ])
        .prop_map(str::to_owned),
    ]
}

#[test]
fn generated_environments_never_panic_and_errors_name_the_variable() {
    let keys: Vec<&'static str> = known_keys().collect();
    let strategy = prop::collection::vec(
        (
            prop_oneof![
                4 => prop::sample::select(keys.clone()).prop_map(str::to_owned),
                1 => "[A-Z_]{1,16}",
            ],
            nasty_value(),
        ),
        0..8,
    );
    let mut errors = 0u32;
    let errors_seen = std::cell::Cell::new(0u32);
    let n = tried(3000, strategy, |env| {
        let inputs = ConfigInputs {
            env: env.clone(),
            working_dir: Some(std::env::temp_dir()),
            ..ConfigInputs::default()
        };
        let outcome = Config::load(&inputs).and_then(|c| c.storage().map(|_| ()));
        if let Err(error) = outcome {
            errors_seen.set(errors_seen.get() + 1);
            let text = error.to_string();
            let key = match &error {
                ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => key.clone(),
                other => return Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
            };
            prop_assert!(text.contains(&key), "{text}");
            // A secret value is never echoed.
            for (k, v) in &env {
                if edw_engine::config::is_secret_key(k) && v.len() >= 8 {
                    prop_assert!(!text.contains(v.as_str()), "{text} echoes {k}");
                }
            }
        }
        Ok(())
    });
    errors += errors_seen.get();
    println!("bad input: {n} generated environments tried, {errors} rejected naming the variable, none panicked");
    assert!(
        errors > 0,
        "no generated environment was rejected: the generator is too tame"
    );
}

#[test]
fn generated_command_lines_never_panic_and_errors_name_the_argument() {
    let words = prop::sample::select(vec![
        "produce",
        "consume",
        "queue",
        "stats",
        "azurite",
        "roundtrip",
        "config",
        "run",
        "bench",
        "sweep",
        "deploy",
        "validate",
        "load",
        "scale",
        "cleanup",
        "twin",
        "simulate",
        "serve",
        "check-config",
        "azure-check",
        "--messages",
        "--count",
        "--rate",
        "--concurrency",
        "--target",
        "--scale",
        "--duration",
        "--burst",
        "--state-file",
        "--report-dir",
        "--yes",
        "--timeout",
        "--queue",
        "--table",
        "--json",
        "-v",
        "-q",
        "--plain",
        "--keep-on-failure",
        "--workers",
        "--batch",
        "--storage-auth",
        "--",
        "-",
        "--=",
        "---x",
    ])
    .prop_map(str::to_owned);
    let strategy = prop::collection::vec(prop_oneof![3 => words, 1 => nasty_value()], 0..7);
    let rejected = std::cell::Cell::new(0u32);
    let n = tried(4000, strategy, |args| {
        let argv = std::iter::once("edw".to_owned()).chain(args.iter().cloned());
        if let Err(error) = Cli::try_parse_from(argv) {
            use clap::error::ErrorKind::*;
            let text = error.to_string();
            prop_assert!(!text.trim().is_empty());
            if matches!(
                error.kind(),
                InvalidValue | UnknownArgument | InvalidSubcommand | ValueValidation
            ) {
                rejected.set(rejected.get() + 1);
                // clap quotes what it refuses: the argument (with its value name), its value,
                // the part before an `=`, or the part of a short-flag cluster it could not
                // read ('' for an empty one).
                let first_quoted = text.split('\'').nth(1).unwrap_or_default();
                let named = args.iter().any(|a| {
                    let head = a.split('=').next().unwrap_or_default();
                    text.contains(&format!("'{a}'"))
                        || text.contains(&format!("'{a} <"))
                        || text.contains(&format!("'{head}'"))
                        || (!first_quoted.is_empty() && a.contains(first_quoted))
                });
                prop_assert!(named, "{args:?}: {text}");
            }
        }
        Ok(())
    });
    println!(
        "bad input: {n} generated command lines tried, {} rejected naming the argument, none panicked",
        rejected.get()
    );
    assert!(rejected.get() > 0);
}

/// The `${NAME}` variables a template uses.
fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        if !found.iter().any(|v: &String| v == &after[..end]) {
            found.push(after[..end].to_owned());
        }
        rest = &after[end..];
    }
    found
}

#[test]
fn templates_with_missing_variables_are_refused_naming_template_and_variable() {
    let templates: Vec<(&str, &str, Vec<String>)> = TEMPLATES
        .iter()
        .map(|(name, text)| (*name, *text, variables(text)))
        .filter(|(_, _, vars)| !vars.is_empty())
        .collect();
    assert!(
        templates.len() >= 5,
        "{} templates with variables",
        templates.len()
    );
    let strategy = (0..templates.len()).prop_flat_map(move |i| {
        let count = templates[i].2.len();
        (
            Just(templates[i].clone()),
            prop::collection::vec(any::<bool>(), count),
        )
    });
    let n = tried(1500, strategy, |((name, text, vars), keep)| {
        let given: BTreeMap<String, String> = vars
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| (v.clone(), "x".to_owned()))
            .collect();
        let dropped: Vec<&String> = vars
            .iter()
            .zip(&keep)
            .filter(|(_, k)| !**k)
            .map(|(v, _)| v)
            .collect();
        match render_text(name, text, &given) {
            Ok(_) => prop_assert!(dropped.is_empty(), "{name} rendered without {dropped:?}"),
            Err(ManifestError::MissingVariable {
                template,
                variable,
                line,
            }) => {
                prop_assert_eq!(template, name.to_owned());
                prop_assert!(dropped.contains(&&variable), "{variable} was given");
                prop_assert!(line >= 1);
            }
            Err(other) => return Err(TestCaseError::fail(format!("{name}: {other}"))),
        }
        Ok(())
    });
    println!("bad input: {n} manifest renderings with generated missing variables tried; each refusal named the template, the variable and the line");
}

#[test]
fn malformed_messages_never_panic_and_say_why_with_an_excerpt() {
    let json_like = prop_oneof![
        "\\PC{0,200}",
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ("\\PC{0,20}", "\\PC{0,20}")
            .prop_map(|(a, b)| format!(r#"{{"msg": {a:?}, "srcStamp": {b:?}}}"#)),
        "\\PC{0,20}".prop_map(|a| format!(r#"{{"msg": {a}}}"#)),
        prop::collection::vec(any::<i64>(), 0..5).prop_map(|v| format!("{v:?}")),
    ];
    let rejected = std::cell::Cell::new(0u32);
    let n = tried(5000, json_like, |text| {
        if let Err(e) = parse_message(&text) {
            rejected.set(rejected.get() + 1);
            prop_assert!(!e.reason.is_empty());
            prop_assert_eq!(e.excerpt, text.chars().take(80).collect::<String>());
        }
        Ok(())
    });
    println!(
        "bad input: {n} generated messages tried, {} malformed ones refused with a reason and an excerpt, none panicked",
        rejected.get()
    );
    // Well-formed ones are among them too (the generator is not all garbage).
    assert!(
        rejected.get() > n / 2 && rejected.get() < n,
        "{} of {n}",
        rejected.get()
    );
}

/// One bad storage setting: (what, environment, text the error must contain).
type BadSetting = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// `edw roundtrip` with one bad storage setting each.
const HAND_PICKED: &[BadSetting] = &[
    (
        "queue endpoint refuses connections",
        &[
            (
                "EDW_AZURITE_QUEUE_ENDPOINT",
                "http://127.0.0.1:1/devstoreaccount1",
            ),
            (
                "EDW_AZURITE_TABLE_ENDPOINT",
                "http://127.0.0.1:1/devstoreaccount1",
            ),
            ("EDW_STORAGE_MAX_RETRIES", "0"),
        ],
        "127.0.0.1:1",
    ),
    (
        "endpoint is not a URL",
        &[
            ("EDW_AZURITE_QUEUE_ENDPOINT", "not a url"),
            ("EDW_AZURITE_TABLE_ENDPOINT", "http://127.0.0.1:1/x"),
        ],
        "EDW_AZURITE_QUEUE_ENDPOINT",
    ),
    (
        "unknown auth mode",
        &[("EDW_STORAGE_AUTH", "bogus-mode")],
        "EDW_STORAGE_AUTH",
    ),
    (
        "connection string without a key",
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=storaksdemo",
        )],
        "AZURE_STORAGE_CONNECTION_STRING",
    ),
    (
        "shared key mode without a key",
        &[
            ("EDW_STORAGE_AUTH", "key"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemo"),
        ],
        "AZURE_STORAGE_KEY",
    ),
    (
        "account name Azure would refuse",
        &[("AZURE_STORAGE_ACCOUNT_NAME", "Not_A-Valid Name")],
        "AZURE_STORAGE_ACCOUNT_NAME",
    ),
    (
        "retries not a number",
        &[("EDW_STORAGE_MAX_RETRIES", "many")],
        "EDW_STORAGE_MAX_RETRIES",
    ),
];

#[test]
fn hand_picked_storage_settings_fail_cleanly_naming_the_culprit() {
    for (what, env, named) in HAND_PICKED {
        let mut command = crate::support::cli::edw_binary();
        for key in [
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_KEY",
            "EDW_STORAGE_AUTH",
            "EDW_DEPLOY_STATE",
            "EDW_AZURITE_QUEUE_ENDPOINT",
            "EDW_AZURITE_TABLE_ENDPOINT",
        ] {
            command.env_remove(key);
        }
        command
            .arg("roundtrip")
            .envs(env.iter().copied())
            // No embedded Azurite fallback: the bad setting must be what fails.
            .env(
                "EDW_CACHE_DIR",
                std::env::temp_dir().join("edw-bad-input-no-azurite"),
            )
            .current_dir(std::env::temp_dir());
        let output = command.output().expect("run edw");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert_ne!(output.status.code(), Some(0), "{what}: {stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(
            stderr.contains(named),
            "{what}: the error does not name {named}:\n{stderr}"
        );
    }
    println!(
        "bad input: {} hand-picked storage settings tried through `edw roundtrip`; each failed naming its culprit",
        HAND_PICKED.len()
    );
}
