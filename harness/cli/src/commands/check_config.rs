//! `edw check-config`: configuration findings for a ScaledObject, a NodePool and the sample's
//! deploy script (see [`edw_engine::findings`]); exit 1 when one is a Risk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};

use crate::args::{parse_duration, GlobalArgs};
use crate::{exit, session, Failure};
use edw_engine::findings::{
    check, default_objects, has_risk, pick_document, CheckInputs, DefaultObjects, Finding, Severity,
};
use edw_model::TargetTiming;

/// Where the sample keeps its deploy script, relative to the working directory.
pub const DEFAULT_DEPLOY_SCRIPT: &str = "deployment/infra/deploy.sh";

#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The ScaledObject to check (YAML or JSON; the first ScaledObject document); default: the
    /// embedded template rendered with the configuration, as `edw run` applies it.
    #[arg(long, value_name = "FILE")]
    pub scaled_object: Option<PathBuf>,
    /// The NodePool to check (YAML or JSON; the first NodePool document); default: the
    /// embedded default-pool.yaml.
    #[arg(long, value_name = "FILE")]
    pub nodepool: Option<PathBuf>,
    /// The sample's deploy script; default: ./deployment/infra/deploy.sh when it exists.
    #[arg(long, value_name = "FILE")]
    pub deploy_script: Option<PathBuf>,
    /// Messages in a burst to estimate the drain for.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub burst: Option<u64>,
    /// How long draining the burst may take (e.g. 2m); needs --burst.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "burst")]
    pub drain_target: Option<Duration>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// An object to check and where it came from.
struct Sourced {
    value: Value,
    source: String,
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(anyhow!("cannot read {what} {}: {e}", path.display())))
}

fn from_file(path: &Path, kind: &str, what: &str) -> Result<Sourced, Failure> {
    let text = read(path, what)?;
    let source = path.display().to_string();
    let value = pick_document(&source, &text, kind).map_err(Failure::usage)?;
    Ok(Sourced { value, source })
}

fn name(value: &Value) -> &str {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

pub fn run(global: &GlobalArgs, args: &CheckConfigArgs) -> Result<u8, Failure> {
    let mut defaults: Option<DefaultObjects> = None;
    let mut default = |global: &GlobalArgs| -> Result<DefaultObjects, Failure> {
        if let Some(d) = &defaults {
            return Ok(d.clone());
        }
        let config = session::load_config(global)?;
        let d = default_objects(&config).map_err(Failure::usage)?;
        defaults = Some(d.clone());
        Ok(d)
    };
    let scaled_object = match &args.scaled_object {
        Some(path) => from_file(path, "ScaledObject", "the ScaledObject file")?,
        None => Sourced {
            value: default(global)?.scaled_object,
            source: "the embedded scaledobject.yaml, rendered with the configuration".to_owned(),
        },
    };
    let nodepool = match &args.nodepool {
        Some(path) => from_file(path, "NodePool", "the NodePool file")?,
        None => Sourced {
            value: default(global)?.nodepool,
            source: "the embedded default-pool.yaml".to_owned(),
        },
    };
    let mut notes = Vec::new();
    let script_path = match &args.deploy_script {
        Some(path) => Some(path.clone()),
        None => {
            let path = PathBuf::from(".").join(DEFAULT_DEPLOY_SCRIPT);
            if path.is_file() {
                Some(path)
            } else {
                notes.push(format!(
                    "no deploy script: --deploy-script was not given and ./{DEFAULT_DEPLOY_SCRIPT} \
                     does not exist, so the role-assignment check did not run"
                ));
                None
            }
        }
    };
    let deploy_script = match &script_path {
        Some(path) => Some((path.display().to_string(), read(path, "the deploy script")?)),
        None => None,
    };
    let sourced_scripts = match (&script_path, &deploy_script) {
        (Some(path), Some((_, text))) => sourced_scripts(path, text, &mut notes),
        _ => Vec::new(),
    };
    // What the script may take from its environment: the configuration's values (the sample's
    // defaults, deploy.state, the environment), where the configuration can be read.
    let script_variables = session::load_config(global)
        .map(|config| {
            config
                .entries()
                .map(|(key, value, source)| (key.to_owned(), value, source.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let inputs = CheckInputs {
        scaled_object: scaled_object.value.clone(),
        nodepool: Some(nodepool.value.clone()),
        deploy_script,
        sourced_scripts,
        script_variables,
        today: time::OffsetDateTime::now_utc().date(),
        burst: args.burst,
        drain_target: args.drain_target,
        timing: TargetTiming::default(),
    };
    let findings = check(&inputs).map_err(|e| {
        Failure::usage(anyhow!(
            "checking {} and {}: {e}",
            scaled_object.source,
            nodepool.source
        ))
    })?;
    let text = if args.json {
        let report = json!({
            "scaled_object": {"name": name(&scaled_object.value), "source": scaled_object.source},
            "nodepool": {"name": name(&nodepool.value), "source": nodepool.source},
            "deploy_script": script_path.as_ref().map(|p| p.display().to_string()),
            "burst": args.burst,
            "drain_target_seconds": args.drain_target.map(|d| d.as_secs_f64()),
            "notes": notes,
            "findings": findings,
            "counts": counts(&findings),
            "passed": !has_risk(&findings),
        });
        serde_json::to_string_pretty(&report).map_err(Failure::environment)? + "\n"
    } else {
        human(
            &scaled_object,
            &nodepool,
            script_path.as_deref(),
            args,
            &notes,
            &findings,
        )
    };
    print!("{}", edw_engine::secrets::redact(&text));
    Ok(if has_risk(&findings) {
        exit::CHECK_FAILED
    } else {
        exit::OK
    })
}

/// The files `script` sources (`source FILE` or `. FILE`), read from where the sample runs it
/// (the repository root: the working directory), else beside the script; one that cannot be
/// found is noted, not fatal.
fn sourced_scripts(script: &Path, text: &str, notes: &mut Vec<String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        let (Some("source" | "."), Some(file)) = (words.next(), words.next()) else {
            continue;
        };
        let file = file.trim_matches(|c| c == '"' || c == '\'');
        if file.contains('$') {
            continue;
        }
        let beside = script.parent().map(|dir| dir.join(file));
        let path = [Some(PathBuf::from(file)), beside]
            .into_iter()
            .flatten()
            .find(|p| p.is_file());
        match path.map(|p| (std::fs::read_to_string(&p), p)) {
            Some((Ok(content), _)) => found.push((file.to_owned(), content)),
            Some((Err(e), p)) => notes.push(format!(
                "{} sources {file}, which cannot be read ({}: {e})",
                script.display(),
                p.display()
            )),
            None => notes.push(format!(
                "{} sources {file}, which is neither in the working directory nor beside the script: its variables come from the configuration instead",
                script.display()
            )),
        }
    }
    found
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

fn counts(findings: &[Finding]) -> Value {
    json!({
        "risk": count(findings, Severity::Risk),
        "warning": count(findings, Severity::Warning),
        "info": count(findings, Severity::Info),
    })
}

fn human(
    scaled_object: &Sourced,
    nodepool: &Sourced,
    script: Option<&Path>,
    args: &CheckConfigArgs,
    notes: &[String],
    findings: &[Finding],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ScaledObject {} from {}",
        name(&scaled_object.value),
        scaled_object.source
    );
    let _ = writeln!(
        out,
        "NodePool {} from {}",
        name(&nodepool.value),
        nodepool.source
    );
    match script {
        Some(path) => {
            let _ = writeln!(out, "deploy script {}", path.display());
        }
        None => {
            let _ = writeln!(out, "deploy script: none");
        }
    }
    if let Some(burst) = args.burst {
        let _ = write!(out, "burst of {burst} messages");
        if let Some(target) = args.drain_target {
            let _ = write!(out, ", drain target {}", edw_engine::findings::secs(target));
        }
        out.push('\n');
    } else if let Ok(scaling) = edw_engine::findings::scaling_settings(&scaled_object.value) {
        let _ = writeln!(
            out,
            "burst of {} messages (no --burst: the smallest that asks for every replica, maxReplicaCount {} x queueLength {}, above activationQueueLength {})",
            edw_engine::findings::full_burst(&scaling),
            scaling.max_replicas,
            scaling.queue_length,
            scaling.activation
        );
    }
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    for f in findings {
        let _ = writeln!(
            out,
            "\n{} {}\n  subject:     {}\n  message:     {}\n  consequence: {}\n  fix:         {}",
            f.severity.as_str().to_uppercase(),
            f.id,
            f.subject,
            f.message,
            f.consequence,
            f.fix
        );
    }
    let _ = writeln!(
        out,
        "\n{} finding{}: {} risk, {} warning, {} info{}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        count(findings, Severity::Risk),
        count(findings, Severity::Warning),
        count(findings, Severity::Info),
        if has_risk(findings) {
            " (exit 1: a risk)"
        } else {
            ""
        }
    );
    out
}
