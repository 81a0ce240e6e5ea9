//! `edw gate`: runs a conformance profile's scenarios side by side on one target and writes one
//! verdict (verdict.json, verdict.md): the profile, the suite's version, the target, the
//! cluster's Kubernetes, KEDA and Karpenter versions, the configuration's digests, each check
//! with its reason and reports, the findings. Exit 0 only when every required check passed on
//! a real target; on the twin the verdict says "SIMULATED — not a verdict".

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::args::{GateArgs, GlobalArgs};
use crate::{exit, session, Failure};
use edw_engine::runner::{Execution, RunOptions, Scenario};
use edw_engine::steps::storage_firewall;
use edw_engine::target::TargetKind;
use edw_model::gate::{
    Check, CheckStatus, ClusterVersions, ConfigDigest, Outcome, PredictionPolicy, Profile,
    ProfileScenario, Verdict, VERDICT_SCHEMA_VERSION,
};

/// The profile shipped with the suite.
const DEFAULT_PROFILE: (&str, &str) = (
    "fixtures/profiles/edw-v1.yaml",
    include_str!("../../../../fixtures/profiles/edw-v1.yaml"),
);

/// A profile that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("profile {file}: {reason}")]
pub struct ProfileError {
    pub file: String,
    pub reason: String,
}

/// One scenario of the profile, ready to run.
pub struct PlannedCheck {
    pub scenario: Scenario,
    pub required: bool,
    pub timeout: Duration,
    pub prediction: PredictionPolicy,
}

/// Reads and checks a profile: a name, a version of at least 1, known scenarios (each once),
/// timeouts that parse and are not zero, a parallelism of at least 1, at least one required
/// scenario.
pub fn read_profile(file: &str, text: &str) -> Result<(Profile, Vec<PlannedCheck>), ProfileError> {
    let fail = |reason: String| ProfileError {
        file: file.to_owned(),
        reason,
    };
    let profile: Profile = serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))?;
    if profile.profile.trim().is_empty() {
        return Err(fail(
            "profile: the name is empty; a verdict names its profile (e.g. edw-v1)".into(),
        ));
    }
    if profile.version == 0 {
        return Err(fail(
            "version: 0; versions start at 1 (raise it whenever the checks change)".into(),
        ));
    }
    if profile.parallel == 0 {
        return Err(fail("parallel: 0 runs nothing; use 1 or more".into()));
    }
    if profile.required.is_empty() {
        return Err(fail(
            "required: lists no scenario; a gate needs at least one".into(),
        ));
    }
    let mut planned = Vec::new();
    let entries = profile
        .required
        .iter()
        .map(|s| (s, true))
        .chain(profile.optional.iter().map(|s| (s, false)));
    for (
        ProfileScenario {
            scenario,
            timeout,
            prediction,
        },
        required,
    ) in entries
    {
        let found = edw_scenarios::find(scenario).ok_or_else(|| {
            let known: Vec<String> = edw_scenarios::all().into_iter().map(|s| s.name).collect();
            fail(format!(
                "scenario {scenario:?} is not in the catalogue (known: {})",
                known.join(", ")
            ))
        })?;
        if planned
            .iter()
            .any(|p: &PlannedCheck| p.scenario.name == found.name)
        {
            return Err(fail(format!("scenario {} is listed twice", found.name)));
        }
        let timeout = edw_twin::params::parse_duration(timeout)
            .map_err(|e| fail(format!("{}: timeout {timeout:?}: {e}", found.name)))
            .and_then(|t| {
                if t.is_zero() {
                    Err(fail(format!(
                        "{}: timeout {timeout:?} gives the run no time; e.g. 45m",
                        found.name
                    )))
                } else {
                    Ok(t)
                }
            })?;
        planned.push(PlannedCheck {
            scenario: found,
            required,
            timeout,
            prediction: *prediction,
        });
    }
    Ok((profile, planned))
}

/// The shipped profile (it is part of the build: the unit tests read it).
pub fn shipped_profile() -> Profile {
    read_profile(DEFAULT_PROFILE.0, DEFAULT_PROFILE.1)
        .map(|(profile, _)| profile)
        .unwrap_or_else(|e| unreachable!("the shipped profile reads: {e}"))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The digests of the ScaledObject, NodePool and Deployment templates the runs render (the
/// manifests in `fixtures/manifests/`, as built into this `edw`).
fn config_digest() -> ConfigDigest {
    let template = |name: &str| {
        edw_engine::manifests::TEMPLATES
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, text)| sha256(text.as_bytes()))
            .unwrap_or_else(|| format!("unknown: no template {name}"))
    };
    ConfigDigest {
        scaled_object: template("scaledobject.yaml"),
        nodepool: template("default-pool.yaml"),
        deployment: template("consumer-deployment.yaml"),
    }
}

/// The image tag of the first Deployment named `name` in `namespaces`, with where it was seen.
async fn deployment_version(
    client: &kube::Client,
    namespaces: &[String],
    name: &str,
) -> Option<String> {
    for namespace in namespaces {
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        if let Ok(Some(deployment)) = api.get_opt(name).await {
            let image = deployment
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.image)?;
            return Some(format!(
                "{} (image {image}, {namespace}/{name})",
                image_version(&image)
            ));
        }
    }
    None
}

/// An image reference's tag (`latest` when it has none), or its digest when it pins one
/// without a tag: `mcr.microsoft.com/aks/keda/keda:2.14.1` is 2.14.1, `registry:5000/keda` is
/// latest (the `:` before the last `/` is a port), `keda@sha256:…` is that digest.
fn image_version(image: &str) -> String {
    let (named, digest) = match image.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (image, None),
    };
    match named.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_owned(),
        _ => digest.map_or_else(|| "latest".to_owned(), str::to_owned),
    }
}

/// Kubernetes from `/version`; KEDA and Karpenter from their operators' images, or why not.
async fn cluster_versions(client: &kube::Client) -> ClusterVersions {
    let kubernetes = match client.apiserver_version().await {
        Ok(info) => format!("{} (/version)", info.git_version),
        Err(e) => format!("unknown: /version did not answer ({e})"),
    };
    let mut keda_namespaces = vec!["kube-system".to_owned(), "keda".to_owned()];
    if let Ok(namespace) = std::env::var("EDW_KEDA_NAMESPACE") {
        keda_namespaces.insert(0, namespace);
    }
    let keda = deployment_version(client, &keda_namespaces, "keda-operator")
        .await
        .unwrap_or_else(|| {
            "unknown: no keda-operator Deployment in kube-system or keda".to_owned()
        });
    let karpenter_namespaces = ["kube-system".to_owned(), "karpenter".to_owned()];
    let karpenter = match deployment_version(client, &karpenter_namespaces, "karpenter").await {
        Some(version) => version,
        None => {
            let served = Api::<kube::api::DynamicObject>::all_with(
                client.clone(),
                &edw_engine::steps::dynamic("karpenter.sh", "v1", "NodePool", "nodepools"),
            )
            .list(&ListParams::default().limit(1))
            .await
            .is_ok();
            if served {
                "not visible in the cluster: karpenter.sh/v1 is served but no Karpenter Deployment runs in it (AKS Node Autoprovisioning runs it in the managed control plane)".to_owned()
            } else {
                "none: the cluster serves no karpenter.sh/v1 API".to_owned()
            }
        }
    };
    ClusterVersions {
        kubernetes,
        keda,
        karpenter,
    }
}

/// A scenario's check from its run: failed steps, then (with `prediction: fail`) slower
/// phases, decide; a run that did not happen is skipped with why.
fn check_of(planned: &PlannedCheck, run: Result<&edw_engine::runner::Executed, String>) -> Check {
    let mut check = Check {
        scenario: planned.scenario.name.clone(),
        required: planned.required,
        status: CheckStatus::Skipped,
        reason: String::new(),
        report_dir: None,
        steps: Vec::new(),
    };
    let executed = match run {
        Ok(executed) => executed,
        Err(why) => {
            check.reason = format!("did not run: {why}");
            return check;
        }
    };
    let report = &executed.report;
    check.report_dir = Some(executed.report_dir.display().to_string());
    check.steps = report
        .steps
        .iter()
        .chain(&report.cleanup)
        .map(|s| match &s.outcome {
            edw_model::report::StepStatus::Passed => format!("{}: passed", s.name),
            edw_model::report::StepStatus::Failed { message } => {
                format!("{}: failed: {message}", s.name)
            }
            edw_model::report::StepStatus::Skipped { reason } => {
                format!("{}: skipped: {reason}", s.name)
            }
        })
        .collect();
    let failed: Vec<String> = report
        .steps
        .iter()
        .chain(&report.cleanup)
        .filter(|s| s.outcome.is_failed())
        .map(|s| s.name.clone())
        .collect();
    let slower: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.id.ends_with("-slower-than-predicted"))
        .filter(|f| f.severity == edw_model::finding::Severity::Warning)
        .map(|f| f.id.clone())
        .collect();
    // A step this target could not run (no Karpenter API, …) is an assertion that did not
    // happen: the check is skipped, never passed (cleanup steps do not count).
    let skipped: Vec<String> = report
        .steps
        .iter()
        .filter_map(|s| match &s.outcome {
            edw_model::report::StepStatus::Skipped { reason } => {
                Some(format!("{} ({reason})", s.name))
            }
            _ => None,
        })
        .collect();
    (check.status, check.reason) = if !failed.is_empty() {
        (
            CheckStatus::Failed,
            format!("failed steps: {}", failed.join("; ")),
        )
    } else if !skipped.is_empty() {
        (
            CheckStatus::Skipped,
            format!(
                "not every assertion ran on this target; skipped: {}",
                skipped.join("; ")
            ),
        )
    } else if !slower.is_empty() && planned.prediction == PredictionPolicy::Fail {
        (
            CheckStatus::Failed,
            format!(
                "slower than the twin predicted (the profile's prediction: fail): {}",
                slower.join(", ")
            ),
        )
    } else if !slower.is_empty() {
        (
            CheckStatus::Passed,
            format!(
                "all {} steps passed; slower than predicted (warn): {}",
                report.steps.len(),
                slower.join(", ")
            ),
        )
    } else {
        (
            CheckStatus::Passed,
            format!("all {} steps passed", report.steps.len()),
        )
    };
    check
}

/// The verdict for people.
pub fn verdict_markdown(verdict: &Verdict) -> String {
    let mut md = String::new();
    let title = match verdict.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Simulated => "SIMULATED — not a verdict",
    };
    let _ = writeln!(md, "# edw gate: {title}\n");
    let _ = writeln!(md, "{}\n", verdict.summary);
    let _ = writeln!(md, "| | |\n|---|---|");
    for (key, value) in [
        (
            "profile",
            format!(
                "{} (version {}, sha256 {})",
                verdict.profile, verdict.profile_version, verdict.profile_digest
            ),
        ),
        ("suite", verdict.suite_version.clone()),
        (
            "target",
            format!(
                "{}: {}{}",
                verdict.target,
                verdict.target_description,
                if verdict.simulated {
                    " [SIMULATED]"
                } else {
                    ""
                }
            ),
        ),
        ("Kubernetes", verdict.cluster.kubernetes.clone()),
        ("KEDA", verdict.cluster.keda.clone()),
        ("Karpenter / NAP", verdict.cluster.karpenter.clone()),
        (
            "ScaledObject template",
            verdict.configuration.scaled_object.clone(),
        ),
        ("NodePool template", verdict.configuration.nodepool.clone()),
        (
            "Deployment template",
            verdict.configuration.deployment.clone(),
        ),
        (
            "started",
            format!(
                "{} ({:.0} s real time)",
                verdict.started_at, verdict.duration_seconds
            ),
        ),
    ] {
        let _ = writeln!(md, "| {key} | {} |", value.replace('|', "\\|"));
    }
    let _ = writeln!(
        md,
        "\n## Checks\n\n| scenario | required | status | reason | reports |\n|---|---|---|---|---|"
    );
    for check in &verdict.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            check.scenario,
            if check.required { "yes" } else { "optional" },
            match check.status {
                CheckStatus::Passed => "✅ passed",
                CheckStatus::Failed => "❌ failed",
                CheckStatus::Skipped => "⏭️ skipped",
            },
            check.reason.replace('|', "\\|"),
            check.report_dir.as_deref().unwrap_or("none")
        );
    }
    for check in &verdict.checks {
        let _ = writeln!(md, "\n### {}\n", check.scenario);
        for step in &check.steps {
            let _ = writeln!(md, "- {step}");
        }
    }
    let _ = writeln!(md, "\n## Findings\n");
    if verdict.findings.is_empty() {
        let _ = writeln!(md, "none");
    }
    for finding in &verdict.findings {
        let _ = writeln!(md, "- {finding}");
    }
    edw_engine::secrets::redact(&md)
}

pub async fn run(
    global: &GlobalArgs,
    args: &GateArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let (file, text) = match &args.profile {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(anyhow::anyhow!("profile {}: {e}", path.display())))?,
        ),
        None => (DEFAULT_PROFILE.0.to_owned(), DEFAULT_PROFILE.1.to_owned()),
    };
    let (profile, planned) = read_profile(&file, &text).map_err(Failure::usage)?;
    let kind = TargetKind::parse(&args.target).map_err(Failure::usage)?;
    let config = session::load_config(global)?;
    eprintln!(
        "gate: profile {} (version {}, {}): {} required, {} optional scenario(s), {} at a time, on the {} target",
        profile.profile,
        profile.version,
        file,
        profile.required.len(),
        profile.optional.len(),
        profile.parallel,
        kind.name()
    );
    let started_at = time::OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let target = Arc::new(session::open_target(kind, &config).await?);
    let info = target.info();
    eprintln!("target: {}", info.description);
    let cluster = cluster_versions(&target.client()).await;
    let mut executions = Vec::new();
    for check in &planned {
        let mut scenario = check.scenario.clone();
        if kind == TargetKind::Aks {
            scenario.steps.insert(0, storage_firewall::preflight_step());
        }
        let slug = scenario.name.replace("::", "-");
        let ledger = args.report_dir.join(format!("edw-run-{slug}.state"));
        let prefix = scenario.name.clone();
        let mut execution = Execution::on_shared(
            scenario,
            target.clone(),
            config.clone(),
            &args.report_dir,
            ledger,
        );
        execution.options = RunOptions {
            keep_on_failure: false,
            deadline: Some(check.timeout),
        };
        execution
            .context
            .set_progress(Arc::new(move |line: &str| eprintln!("[{prefix}] {line}")));
        executions.push(execution);
    }
    drop(target);
    use futures::StreamExt;
    let results: Vec<(String, Result<edw_engine::runner::Executed, String>)> =
        futures::stream::iter(executions)
            .map(|execution| async move {
                let name = execution.scenario.name.clone();
                let result = execution
                    .run(cancel)
                    .await
                    .map_err(|e| edw_engine::error_chain::text(&e));
                (name, result)
            })
            .buffer_unordered(usize::from(profile.parallel))
            .collect()
            .await;
    let mut checks = Vec::new();
    let mut findings = Vec::new();
    for planned_check in &planned {
        let run = results
            .iter()
            .find(|(name, _)| name == &planned_check.scenario.name)
            .map(|(_, r)| r.as_ref().map_err(Clone::clone))
            .unwrap_or_else(|| Err("it was not started".to_owned()));
        if let Ok(executed) = run {
            for f in &executed.report.findings {
                findings.push(format!(
                    "{}: {:?} {}: {}",
                    planned_check.scenario.name, f.severity, f.id, f.message
                ));
            }
        }
        checks.push(check_of(planned_check, run));
    }
    let (outcome, summary) = Verdict::decide(&checks, info.simulated);
    let verdict = Verdict {
        schema_version: VERDICT_SCHEMA_VERSION,
        profile: profile.profile.clone(),
        profile_version: profile.version,
        profile_digest: sha256(text.as_bytes()),
        suite_version: format!("edw {}", env!("CARGO_PKG_VERSION")),
        target: info.name.clone(),
        target_description: info.description.clone(),
        simulated: info.simulated,
        cluster,
        configuration: config_digest(),
        started_at: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        duration_seconds: started.elapsed().as_secs_f64(),
        checks,
        findings,
        outcome,
        summary,
    };
    write_verdict(&args.report_dir, &verdict).map_err(Failure::environment)?;
    println!(
        "{}",
        verdict_markdown(&verdict)
            .lines()
            .next()
            .unwrap_or_default()
    );
    println!("{}", verdict.summary);
    for check in &verdict.checks {
        println!(
            "  {:<8} {:<24} {}{}",
            format!("{:?}", check.status).to_lowercase(),
            check.scenario,
            if check.required { "" } else { "(optional) " },
            check.reason
        );
    }
    println!(
        "verdict: {} and {}",
        args.report_dir.join("verdict.json").display(),
        args.report_dir.join("verdict.md").display()
    );
    let all_required_passed = verdict
        .checks
        .iter()
        .filter(|c| c.required)
        .all(|c| c.status == CheckStatus::Passed);
    Ok(match verdict.outcome {
        Outcome::Pass => exit::OK,
        Outcome::Fail => exit::CHECK_FAILED,
        // Not a verdict: the checks' own code (a release never gates on it).
        Outcome::Simulated if all_required_passed => exit::OK,
        Outcome::Simulated => exit::CHECK_FAILED,
    })
}

/// verdict.json and verdict.md in `dir` (secrets redacted).
fn write_verdict(dir: &Path, verdict: &Verdict) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(verdict).map_err(std::io::Error::other)?;
    let path = dir.join("verdict.json");
    std::fs::write(&path, edw_engine::secrets::redact(&json))?;
    std::fs::write(dir.join("verdict.md"), verdict_markdown(verdict))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_names_known_scenarios() {
        let (profile, planned) = read_profile(DEFAULT_PROFILE.0, DEFAULT_PROFILE.1).unwrap();
        assert_eq!(profile.profile, "edw-v1");
        assert!(planned
            .iter()
            .any(|p| p.required && p.scenario.name == "flow::burst"));
        assert!(planned.iter().all(|p| p.timeout >= Duration::from_secs(60)));
    }

    #[test]
    fn an_images_version_is_its_tag_never_a_port_or_a_digest_fragment() {
        assert_eq!(
            image_version("mcr.microsoft.com/aks/keda/keda:2.14.1"),
            "2.14.1"
        );
        assert_eq!(image_version("registry:5000/keda"), "latest");
        assert_eq!(image_version("registry:5000/keda:2.16"), "2.16");
        assert_eq!(image_version("keda@sha256:abc123"), "sha256:abc123");
        assert_eq!(image_version("keda:2.16@sha256:abc123"), "2.16");
        assert_eq!(image_version("keda"), "latest");
    }

    #[test]
    fn a_bad_profile_names_the_file_and_the_culprit() {
        let bad = |text: &str| read_profile("p.yaml", text).err().unwrap().to_string();
        let unknown =
            bad("profile: x\nversion: 1\nrequired:\n  - scenario: flow::nope\n    timeout: 1m\n");
        assert!(
            unknown.starts_with("profile p.yaml: scenario \"flow::nope\""),
            "{unknown}"
        );
        let timeout = bad(
            "profile: x\nversion: 1\nrequired:\n  - scenario: flow::burst\n    timeout: soon\n",
        );
        assert!(
            timeout.contains("flow::burst: timeout \"soon\""),
            "{timeout}"
        );
        let none = bad("profile: x\nversion: 1\nrequired: []\n");
        assert!(none.contains("lists no scenario"), "{none}");
        let twice = bad("profile: x\nversion: 1\nrequired:\n  - {scenario: burst, timeout: 1m}\n  - {scenario: flow::burst, timeout: 1m}\n");
        assert!(twice.contains("listed twice"), "{twice}");
        let field = bad("profile: x\nversion: 1\nrequired: []\nextra: 1\n");
        assert!(field.contains("extra"), "{field}");
        let parallel = bad(
            "profile: x\nversion: 1\nparallel: 0\nrequired:\n  - {scenario: burst, timeout: 1m}\n",
        );
        assert!(parallel.contains("parallel: 0"), "{parallel}");
        let nameless =
            bad("profile: ' '\nversion: 1\nrequired:\n  - {scenario: burst, timeout: 1m}\n");
        assert!(
            nameless.contains("profile: the name is empty"),
            "{nameless}"
        );
        let version =
            bad("profile: x\nversion: 0\nrequired:\n  - {scenario: burst, timeout: 1m}\n");
        assert!(version.contains("version: 0"), "{version}");
        let no_time =
            bad("profile: x\nversion: 1\nrequired:\n  - {scenario: burst, timeout: 0s}\n");
        assert!(
            no_time.contains("flow::burst: timeout \"0s\" gives the run no time"),
            "{no_time}"
        );
    }
}
