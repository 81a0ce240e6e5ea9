//! Configuration: the deploy.state parser (accepted forms, rejections that name the line,
//! never a panic) and the layering defaults < deploy.state < environment < flags.

use std::path::Path;

use edw_engine::config::{
    parse_bytes, parse_deploy_state, Config, ConfigError, ConfigInputs, DeployStateError, Source,
    StorageChoice,
};
use edw_engine::storage::StorageAuth;
use proptest::prelude::*;
use rstest::rstest;

const FILE: &str = "deployment/deploy.state";

/// What deploy.sh writes, in its order.
const WRITTEN_BY_DEPLOY_SH: &str = "SUFFIX=ab12cd
RESOURCE_GROUP=rg-aksdemo-ab12cd
AZURE_STORAGE_ACCOUNT_NAME=storaksdemoab12cd
AZURE_QUEUE_NAME=aws2azmsgs
AZURE_TABLE_NAME=aws2azpmts
AZURE_CONTAINER_REGISTRY_NAME=acraksdemoab12cd
AKS_MANAGED_IDENTITY_NAME=mi-aksdemo-ab12cd
AKS_CLUSTER_NAME=aks-aksdemo-ab12cd
WORKLOAD_MANAGED_IDENTITY_NAME=mi-aks-workload-identity-ab12cd
SERVICE_ACCOUNT=aqs-app-service-account
FEDERATED_IDENTITY_CREDENTIAL_NAME=federated-credential-ab12cd
KEDA_SERVICE_ACCT_CRED_NAME=fed-cred-aksdemo-kedasvc-ab12cd
";

fn value(text: &str, key: &str) -> Option<String> {
    parse_deploy_state(Path::new(FILE), text)
        .unwrap_or_else(|e| panic!("{e}"))
        .get(key)
        .map(|e| e.value.clone())
}

#[test]
fn reads_what_deploy_sh_writes() {
    let state = parse_deploy_state(Path::new(FILE), WRITTEN_BY_DEPLOY_SH).unwrap();
    assert_eq!(state.entries.len(), 12);
    assert!(state.warnings.is_empty(), "{:?}", state.warnings);
    assert_eq!(
        state.get("AKS_CLUSTER_NAME").unwrap().value,
        "aks-aksdemo-ab12cd"
    );
    assert_eq!(state.get("AKS_CLUSTER_NAME").unwrap().line, 8);
}

#[rstest]
#[case::plain("AZURE_QUEUE_NAME=orders", "orders")]
#[case::export_prefix("export AZURE_QUEUE_NAME=orders", "orders")]
#[case::export_with_tab("export\tAZURE_QUEUE_NAME=orders", "orders")]
#[case::double_quoted("AZURE_QUEUE_NAME=\"orders\"", "orders")]
#[case::single_quoted("AZURE_QUEUE_NAME='orders'", "orders")]
#[case::crlf("SUFFIX=x\r\nAZURE_QUEUE_NAME=orders\r\n", "orders")]
#[case::comments_and_blanks(
    "# state\n\n  # indented comment\nAZURE_QUEUE_NAME=orders\n\n",
    "orders"
)]
#[case::trailing_comment("AZURE_QUEUE_NAME=orders # the queue", "orders")]
#[case::quoted_then_comment("AZURE_QUEUE_NAME=\"orders\"   # the queue", "orders")]
#[case::surrounding_space("   AZURE_QUEUE_NAME=orders   ", "orders")]
#[case::later_line_wins("AZURE_QUEUE_NAME=first\nAZURE_QUEUE_NAME=orders", "orders")]
#[case::utf8_bom("\u{feff}AZURE_QUEUE_NAME=orders", "orders")]
#[case::escaped_quote_in_double_quotes("AZURE_QUEUE_NAME=\"ord\\\"ers\"", "ord\"ers")]
#[case::no_final_newline("AZURE_QUEUE_NAME=orders", "orders")]
fn accepted_forms(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(value(text, "AZURE_QUEUE_NAME").as_deref(), Some(expected));
}

#[test]
fn the_walkthrough_alias_and_empty_template_values() {
    let text = "SUFFIX=\nAZURE_COSMOSDB_TABLE=mytable\nRESOURCE_GROUP=\n";
    let state = parse_deploy_state(Path::new(FILE), text).unwrap();
    assert_eq!(state.get("AZURE_TABLE_NAME").unwrap().value, "mytable");
    assert!(
        state.get("SUFFIX").is_none(),
        "an empty value leaves the key unset"
    );
    assert!(state
        .warnings
        .iter()
        .any(|w| w.contains("AZURE_COSMOSDB_TABLE is read as AZURE_TABLE_NAME")));
}

#[test]
fn unknown_keys_warn_with_their_line() {
    let state = parse_deploy_state(Path::new(FILE), "SUFFIX=a\nMY_OWN_THING=1\n").unwrap();
    assert!(state.get("MY_OWN_THING").is_none());
    assert_eq!(
        state.warnings,
        [format!("{FILE}:2: unknown key MY_OWN_THING (ignored)")]
    );
}

#[rstest]
#[case::no_equals("SUFFIX=a\njust some words\n", 2, "expected KEY=value")]
#[case::bad_key("1ABC=x", 1, "not a variable name")]
#[case::key_with_dash("MY-KEY=x", 1, "not a variable name")]
#[case::unclosed_quote("\n\nAZURE_QUEUE_NAME=\"orders", 3, "not closed")]
#[case::space_in_bare_value("AZURE_QUEUE_NAME=my queue", 1, "unexpected text after the value")]
#[case::text_after_quote("AZURE_QUEUE_NAME='a'b", 1, "unexpected text after the value")]
#[case::command_substitution("SUFFIX=$(rm -rf /)", 1, "outside quotes")]
#[case::semicolon("SUFFIX=a;b", 1, "outside quotes")]
#[case::control_character("SUFFIX=\"a\u{7}b\"", 1, "control character")]
#[case::the_walkthroughs_broken_loop("while IFS= read -r; line do", 1, "not a variable name")]
fn rejected_forms_name_file_line_and_reason(
    #[case] text: &str,
    #[case] line: usize,
    #[case] reason: &str,
) {
    let error = parse_deploy_state(Path::new(FILE), text).unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with(&format!("{FILE}:{line}: ")), "{shown}");
    assert!(shown.contains(reason), "{shown}");
}

#[test]
fn invalid_utf8_names_its_line() {
    let error = parse_bytes(Path::new(FILE), b"SUFFIX=a\nRESOURCE_GROUP=\xff\xfe\n").unwrap_err();
    assert_eq!(
        error,
        DeployStateError::Syntax {
            path: FILE.into(),
            line: 2,
            reason: "the line is not valid UTF-8".into()
        }
    );
}

#[test]
fn a_secret_value_is_never_quoted_in_an_error() {
    let text = "AZURE_STORAGE_KEY=abc$secretvalue123";
    let error = parse_deploy_state(Path::new(FILE), text)
        .unwrap_err()
        .to_string();
    assert!(!error.contains("secretvalue123"), "{error}");
    assert!(error.contains("not shown"), "{error}");
    let text = "AZURE_STORAGE_CONNECTION_STRING=AccountName=a;AccountKey=topsecretkey==";
    let error = parse_deploy_state(Path::new(FILE), text)
        .unwrap_err()
        .to_string();
    assert!(!error.contains("topsecretkey"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes: a result, never a panic; a rejection names the file and a line that exists.
    #[test]
    fn arbitrary_input_never_panics_and_rejections_name_a_line(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        match parse_bytes(Path::new(FILE), &bytes) {
            Ok(state) => for entry in &state.entries {
                prop_assert!(entry.line >= 1 && entry.line <= lines);
            },
            Err(DeployStateError::Syntax { line, path, reason }) => {
                prop_assert_eq!(path, Path::new(FILE));
                prop_assert!(line >= 1 && line <= lines, "line {} of {}", line, lines);
                prop_assert!(!reason.is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    /// Text made of deploy.state-like pieces, to reach deeper than random bytes do.
    #[test]
    fn state_like_text_never_panics(lines in proptest::collection::vec(
        "(export )?[A-Za-z_0-9-]{0,12}(=)?(\"|')?[ -~]{0,20}(\"|')?( #.*)?(\r)?", 0..12)) {
        let text = lines.join("\n");
        match parse_deploy_state(Path::new(FILE), &text) {
            Ok(state) => for entry in &state.entries {
                prop_assert!(!entry.value.is_empty());
                prop_assert!(!entry.value.chars().any(char::is_control));
            },
            Err(DeployStateError::Syntax { line, .. }) => prop_assert!(line >= 1 && line <= lines.len().max(1)),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

fn config_inputs(
    state: Option<&str>,
    env: &[(&str, &str)],
) -> (ConfigInputs, Option<tempfile::TempDir>) {
    let dir = state.map(|text| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("deployment")).unwrap();
        std::fs::write(dir.path().join(FILE), text).unwrap();
        dir
    });
    let inputs = ConfigInputs {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        working_dir: Some(dir.as_ref().map_or_else(
            || std::env::temp_dir().join("edw-no-state-here"),
            |d| d.path().to_owned(),
        )),
        ..ConfigInputs::default()
    };
    (inputs, dir)
}

#[test]
fn layers_apply_in_order_and_remember_their_source() {
    let (inputs, _dir) = config_inputs(
        Some("AZURE_QUEUE_NAME=fromstate\nAZURE_TABLE_NAME=fromstate\nRESOURCE_GROUP=rg-state\n"),
        &[
            ("AZURE_TABLE_NAME", "fromenv"),
            ("RESOURCE_GROUP", "rg-env"),
            ("PATH", "/bin"),
        ],
    );
    let inputs = inputs.flag("RESOURCE_GROUP", "rg-flag", "--resource-group");
    let config = Config::load(&inputs).unwrap();
    assert_eq!(config.get("AQS_TARGET_NAMESPACE"), Some("aqs-demo"));
    assert_eq!(
        config.source("AQS_TARGET_NAMESPACE"),
        Some(&Source::Default)
    );
    assert_eq!(config.queue_name(), "fromstate");
    assert!(matches!(
        config.source("AZURE_QUEUE_NAME"),
        Some(Source::DeployState { line: 1, .. })
    ));
    assert_eq!(config.table_name(), "fromenv");
    assert_eq!(config.get("RESOURCE_GROUP"), Some("rg-flag"));
    assert_eq!(
        config.get("PATH"),
        None,
        "only the sample's keys are read from the environment"
    );
}

#[test]
fn an_invalid_value_is_reported_with_its_origin() {
    let (inputs, _dir) = config_inputs(Some("SUFFIX=x\nAZURE_QUEUE_NAME=Bad_Queue\n"), &[]);
    let error = Config::load(&inputs).unwrap_err().to_string();
    assert!(error.contains("AZURE_QUEUE_NAME"), "{error}");
    assert!(error.contains("deploy.state:2"), "{error}");
    assert!(error.contains("lowercase"), "{error}");

    let (inputs, _dir) = config_inputs(None, &[("AZURE_TABLE_NAME", "no-dashes-allowed")]);
    let error = Config::load(&inputs).unwrap_err().to_string();
    assert!(
        error.contains("environment variable AZURE_TABLE_NAME"),
        "{error}"
    );
}

#[test]
fn the_twin_clock_scale_is_read_and_a_bad_one_is_named() {
    let (inputs, _dir) = config_inputs(None, &[]);
    assert_eq!(Config::load(&inputs).unwrap().twin_scale(), None);
    let (inputs, _dir) = config_inputs(None, &[("EDW_TWIN_SCALE", "40")]);
    assert_eq!(Config::load(&inputs).unwrap().twin_scale(), Some(40.0));
    for bad in ["fast", "0", "0.5", "-20", "NaN", "5000"] {
        let (inputs, _dir) = config_inputs(None, &[("EDW_TWIN_SCALE", bad)]);
        let error = Config::load(&inputs).unwrap_err().to_string();
        assert!(
            error.contains("environment variable EDW_TWIN_SCALE") && error.contains("1000"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn an_explicit_state_file_that_is_missing_is_an_error() {
    let (mut inputs, _dir) = config_inputs(None, &[]);
    inputs.state_file = Some("/nonexistent/deploy.state".into());
    match Config::load(&inputs) {
        Err(ConfigError::DeployState(DeployStateError::Read { path, .. })) => {
            assert_eq!(path, Path::new("/nonexistent/deploy.state"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn storage_is_chosen_from_what_is_configured() {
    let choose = |env: &[(&str, &str)]| {
        let (inputs, _dir) = config_inputs(None, env);
        Config::load(&inputs).and_then(|c| c.storage())
    };
    assert!(matches!(
        choose(&[]).unwrap(),
        StorageChoice::EmbeddedAzurite
    ));
    let kind = |env: &[(&str, &str)]| match choose(env).unwrap() {
        StorageChoice::Target(t) => t.auth.kind(),
        StorageChoice::EmbeddedAzurite => "embedded",
    };
    assert_eq!(
        kind(&[("AZURE_STORAGE_ACCOUNT_NAME", "acct123")]),
        "Entra ID"
    );
    assert_eq!(
        kind(&[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct123"),
            ("AZURE_STORAGE_KEY", "a2V5a2V5a2V5")
        ]),
        "account key"
    );
    assert_eq!(
        kind(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=a;AccountKey=a2V5"
        )]),
        "connection string"
    );
    assert_eq!(
        kind(&[
            (
                "EDW_AZURITE_QUEUE_ENDPOINT",
                "http://127.0.0.1:1/devstoreaccount1"
            ),
            (
                "EDW_AZURITE_TABLE_ENDPOINT",
                "http://127.0.0.1:2/devstoreaccount1"
            ),
        ]),
        "azurite development account"
    );
    let error = choose(&[
        ("EDW_STORAGE_AUTH", "key"),
        ("AZURE_STORAGE_ACCOUNT_NAME", "acct123"),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("AZURE_STORAGE_KEY"), "{error}");
    let error = choose(&[("EDW_STORAGE_AUTH", "magic")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("EDW_STORAGE_AUTH") && error.contains("magic"),
        "{error}"
    );
    // The key is kept as a secret.
    if let StorageChoice::Target(t) = choose(&[
        ("AZURE_STORAGE_ACCOUNT_NAME", "acct123"),
        ("AZURE_STORAGE_KEY", "c2VjcmV0LWtleS12YWx1ZQ=="),
    ])
    .unwrap()
    {
        assert!(matches!(t.auth, StorageAuth::AccountKey(_)));
        assert!(!format!("{t:?}").contains("c2VjcmV0LWtleS12YWx1ZQ=="));
    }
}

/// The sample's `environmentVariables.sh` exports AZURE_STORAGE_ACCOUNT_NAME; a person who then
/// exports `edw azurite`'s two lines means Azurite: the explicit endpoints win, and the mode
/// says why and what it ignored.
#[test]
fn explicit_azurite_endpoints_win_over_the_samples_account_name() {
    let azurite = [
        (
            "EDW_AZURITE_QUEUE_ENDPOINT",
            "http://127.0.0.1:1/devstoreaccount1",
        ),
        (
            "EDW_AZURITE_TABLE_ENDPOINT",
            "http://127.0.0.1:2/devstoreaccount1",
        ),
        ("AZURE_STORAGE_ACCOUNT_NAME", "acct123"),
        ("AZURE_QUEUE_NAME", "aws2azmsgs"),
    ];
    let (inputs, _dir) = config_inputs(None, &azurite);
    let config = Config::load(&inputs).unwrap();
    match config.storage().unwrap() {
        StorageChoice::Target(t) => assert_eq!(t.auth.kind(), "azurite development account"),
        StorageChoice::EmbeddedAzurite => panic!("the exported endpoints were ignored"),
    }
    let (mode, why) = config.storage_mode().unwrap();
    assert_eq!(mode, "azurite");
    assert!(
        why.contains("EDW_AZURITE_QUEUE_ENDPOINT (environment)")
            && why.contains("AZURE_STORAGE_ACCOUNT_NAME (environment) ignored for storage")
            && why.contains("EDW_STORAGE_AUTH"),
        "{why}"
    );
    // EDW_STORAGE_AUTH still decides when set.
    let mut entra = azurite.to_vec();
    entra.push(("EDW_STORAGE_AUTH", "entra"));
    let (inputs, _dir) = config_inputs(None, &entra);
    let config = Config::load(&inputs).unwrap();
    assert_eq!(config.storage_mode().unwrap().0, "entra");
    // Half an Azurite is refused, naming the missing line.
    let (inputs, _dir) = config_inputs(None, &azurite[..1]);
    let error = Config::load(&inputs)
        .and_then(|c| c.storage())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("EDW_AZURITE_TABLE_ENDPOINT is not set")
            && error.contains("EDW_AZURITE_QUEUE_ENDPOINT (environment) is set"),
        "{error}"
    );
}
