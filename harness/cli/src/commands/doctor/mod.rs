//! `edw doctor`: the walkthrough's prerequisites for a target, one line per check: `ok` with
//! what was found, `FAIL` with what is wrong and the fix, or `skip` with why the check does not
//! apply to the target (never counted as passed). Tools on PATH, the Docker engine (kube), an
//! Azure Resource Manager token, the subscription, the NodeAutoProvisioningPreview feature, the
//! aks-preview extension, what only the team can fix on aks (the storage firewall, the signed-in
//! principal's data roles, the cluster's Kubernetes version), the cluster's API server and the
//! storage endpoints. Exit 3 when a check failed.
//!
//! The decisions are small pure functions (tool, subscription, feature, extension, endpoint) so
//! that they are unit-tested; the command only gathers their inputs.

mod azure;
mod cluster;
mod deployment;
mod storage;
mod tools;

use crate::args::{DoctorArgs, GlobalArgs};
use crate::{exit, Failure};
use edw_engine::secrets::redact;
use edw_engine::target::TargetKind;

use azure::{azure_findings, extension_check};
use cluster::cluster_finding;
use deployment::deployment_findings;
use storage::storage_findings;
use tools::{docker_engine_check, find_on_path, tool_finding, TOOLS};

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// What was found.
    Ok(String),
    /// What is wrong, and how to fix it.
    Fail { problem: String, fix: String },
    /// Why the check does not apply (or cannot be made).
    Skip(String),
}

/// One check and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub name: String,
    pub status: Status,
}

impl Finding {
    fn ok(name: &str, found: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Ok(found.into()),
        }
    }

    fn fail(name: &str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Fail {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    fn skip(name: &str, reason: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Skip(reason.into()),
        }
    }

    fn is_failed(&self) -> bool {
        matches!(self.status, Status::Fail { .. })
    }

    /// The output line, with every known secret removed.
    pub(crate) fn line(&self) -> String {
        let text = match &self.status {
            Status::Ok(found) => format!("ok   {}: {found}", self.name),
            Status::Fail { problem, fix } => {
                format!("FAIL {}: {problem} — fix: {fix}", self.name)
            }
            Status::Skip(reason) => format!("skip {}: {reason}", self.name),
        };
        redact(&text)
    }
}

/// Check names.
mod names {
    pub const TOKEN: &str = "ARM token";
    pub const SUBSCRIPTION: &str = "subscription";
    pub const FEATURE: &str = "NodeAutoProvisioningPreview feature";
    pub const EXTENSION: &str = "aks-preview extension";
    pub const CLUSTER: &str = "cluster";
    pub const STORAGE: &str = "storage";
    pub const STORAGE_QUEUE: &str = "storage queue";
    pub const STORAGE_TABLE: &str = "storage table";
}

/// Runs the checks for `args.target` and prints one line each.
pub async fn run(global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, Failure> {
    let target = TargetKind::parse(&args.target)
        .map_err(|e| Failure::usage(anyhow::anyhow!("--target (or EDW_TARGET): {e}")))?;
    let path = std::env::var_os("PATH");
    let mut findings: Vec<Finding> = TOOLS
        .iter()
        .map(|tool| {
            let found = find_on_path(tool.name, path.as_deref());
            tool_finding(tool, target, found.as_deref())
        })
        .collect();
    let az = find_on_path("az", path.as_deref());
    let docker = find_on_path("docker", path.as_deref());
    let (docker_engine, azure, extension, deployment, cluster, storage) = tokio::join!(
        docker_engine_check(target, docker.as_deref()),
        azure_findings(target, args),
        extension_check(target, az.as_deref()),
        deployment_findings(target, global, args),
        cluster_finding(target),
        storage_findings(target, global, path.as_deref()),
    );
    findings.push(docker_engine);
    findings.extend(azure);
    findings.push(extension);
    findings.extend(deployment);
    findings.push(cluster);
    findings.extend(storage);
    let failed = findings.iter().filter(|f| f.is_failed()).count();
    let skipped = findings
        .iter()
        .filter(|f| matches!(f.status, Status::Skip(_)))
        .count();
    for finding in &findings {
        println!("{}", finding.line());
    }
    println!(
        "target {}: {} checks, {} ok, {failed} failed, {skipped} skipped",
        target.name(),
        findings.len(),
        findings.len() - failed - skipped
    );
    Ok(if failed == 0 {
        exit::OK
    } else {
        exit::ENVIRONMENT
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_formats_name_the_check_and_the_fix() {
        assert_eq!(
            Finding::ok("tool jq", "/bin/jq").line(),
            "ok   tool jq: /bin/jq"
        );
        assert_eq!(
            Finding::fail("cluster", "down", "start it").line(),
            "FAIL cluster: down — fix: start it"
        );
        assert_eq!(
            Finding::skip("cluster", "local").line(),
            "skip cluster: local"
        );
    }
}
