//! The tools checks of `edw doctor`: which command-line tools each target needs, whether they
//! are on PATH, and whether the Docker client reaches an engine (kind needs one).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::Finding;
use edw_engine::target::TargetKind;

/// `docker version` (answers at once from a running engine).
const DOCKER_WITHIN: Duration = Duration::from_secs(15);
const DOCKER_ENGINE: &str = "docker engine";

/// A command-line tool and the targets that need it.
#[derive(Debug)]
pub(crate) struct Tool {
    pub name: &'static str,
    /// The targets that need it.
    pub needed_by: &'static [TargetKind],
    /// Who uses it, for the skip reason and the fix.
    pub used_for: &'static str,
    pub fix: &'static str,
}

/// The tools of the walkthrough, deploy.sh and the kind workflow.
pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "kubectl",
        needed_by: &[TargetKind::Kube, TargetKind::Aks],
        used_for: "the walkthrough (its checks against the cluster)",
        fix: "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    },
    Tool {
        name: "az",
        needed_by: &[TargetKind::Aks],
        used_for: "the team's deploy script (deploy.sh)",
        fix: "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
    },
    Tool {
        name: "jq",
        needed_by: &[TargetKind::Aks],
        used_for: "the team's deploy script (deploy.sh)",
        fix: "install jq: https://jqlang.org/download/ (Debian/Ubuntu: `apt-get install jq`)",
    },
    Tool {
        name: "helm",
        needed_by: &[TargetKind::Kube],
        used_for: "ci/kind-up.sh (it installs KEDA)",
        fix: "install Helm: https://helm.sh/docs/intro/install/",
    },
    Tool {
        name: "kind",
        needed_by: &[TargetKind::Kube],
        used_for: "ci/kind-up.sh (it creates the kind cluster)",
        fix: "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    },
    Tool {
        name: "docker",
        needed_by: &[TargetKind::Kube],
        used_for: "ci/kind-up.sh (kind runs its nodes, and Azurite, as Docker containers)",
        fix: "install Docker Engine: https://docs.docker.com/engine/install/ (the client alone is not enough: kind needs a running engine)",
    },
];

/// The first executable file named `program` in the directories of `path` (a `PATH` value).
/// Empty entries (the current directory) are ignored.
pub(crate) fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| candidates(&dir, program))
        .find(|file| is_executable(file))
}

#[cfg(unix)]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    vec![dir.join(program)]
}

#[cfg(not(unix))]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    vec![dir.join(format!("{program}.exe")), dir.join(program)]
}

fn is_executable(file: &Path) -> bool {
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

/// The check of one tool on `target`, given where it was found.
pub(crate) fn tool_finding(tool: &Tool, target: TargetKind, found: Option<&Path>) -> Finding {
    let name = format!("tool {}", tool.name);
    if !tool.needed_by.contains(&target) {
        let seen = match found {
            Some(path) => format!("found at {}", path.display()),
            None => "not on PATH".to_owned(),
        };
        let reason = if tool.name == "kubectl" {
            format!(
                "the {} target runs the twin in-process, kubectl is optional there (handy with `edw twin serve`); {seen}",
                target.name()
            )
        } else {
            let targets: Vec<&str> = tool.needed_by.iter().map(|t| t.name()).collect();
            format!(
                "not needed on the {} target ({} uses it, for the {} target); {seen}",
                target.name(),
                tool.used_for,
                targets.join(" and ")
            )
        };
        return Finding::skip(&name, reason);
    }
    match found {
        Some(path) => Finding::ok(&name, path.display().to_string()),
        None => Finding::fail(
            &name,
            format!(
                "{} is not on PATH, and {} uses it",
                tool.name, tool.used_for
            ),
            tool.fix,
        ),
    }
}

/// How a tool's run ended.
#[derive(Debug)]
pub(crate) enum ToolRun {
    Exited {
        success: bool,
        stdout: String,
        stderr: String,
    },
    TimedOut(Duration),
    NotStarted(String),
}

/// Runs `program args` with no input, waiting at most `within` (it is killed after that).
pub(crate) async fn run_tool(program: &Path, args: &[&str], within: Duration) -> ToolRun {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match command.spawn() {
        Err(e) => ToolRun::NotStarted(format!("{}: {e}", program.display())),
        Ok(child) => match tokio::time::timeout(within, child.wait_with_output()).await {
            Err(_) => ToolRun::TimedOut(within),
            Ok(Err(e)) => ToolRun::NotStarted(format!("{}: {e}", program.display())),
            Ok(Ok(output)) => ToolRun::Exited {
                success: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            },
        },
    }
}

/// Whether the Docker client reaches an engine: kind runs its nodes (and `ci/kind-up.sh` runs
/// Azurite) as containers, so a client without an engine is not enough.
pub(crate) async fn docker_engine_check(target: TargetKind, docker: Option<&Path>) -> Finding {
    if target != TargetKind::Kube {
        return Finding::skip(
            DOCKER_ENGINE,
            format!(
                "only kind (the kube target's CI cluster) needs a Docker engine (target {})",
                target.name()
            ),
        );
    }
    let Some(docker) = docker else {
        return Finding::skip(
            DOCKER_ENGINE,
            "docker is not on PATH (see `tool docker`), so no engine can be asked",
        );
    };
    let args = ["version", "--format", "{{.Server.Version}}"];
    docker_engine_finding(run_tool(docker, &args, DOCKER_WITHIN).await)
}

/// The engine check from the run of `docker version --format {{.Server.Version}}`.
pub(crate) fn docker_engine_finding(run: ToolRun) -> Finding {
    let fix =
        "start the Docker engine (`sudo systemctl start docker`, or Docker Desktop), or point \
               DOCKER_HOST at one: kind runs its nodes as containers";
    match run {
        ToolRun::Exited {
            success: true,
            stdout,
            ..
        } if !stdout.trim().is_empty() => {
            Finding::ok(DOCKER_ENGINE, format!("Docker Engine {}", stdout.trim()))
        }
        ToolRun::Exited { stderr, .. } => {
            let said = stderr.lines().map(str::trim).find(|l| !l.is_empty());
            let said = said.map(|l| format!(": {l}")).unwrap_or_default();
            Finding::fail(
                DOCKER_ENGINE,
                format!("the docker client reaches no engine{said}"),
                fix,
            )
        }
        ToolRun::TimedOut(waited) => Finding::fail(
            DOCKER_ENGINE,
            format!("`docker version` did not answer within {waited:?}"),
            fix,
        ),
        ToolRun::NotStarted(reason) => {
            Finding::fail(DOCKER_ENGINE, format!("cannot run docker: {reason}"), fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn tool(name: &str) -> &'static Tool {
        TOOLS.iter().find(|t| t.name == name).unwrap()
    }

    #[cfg(unix)]
    fn write_program(dir: &Path, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join(name);
        std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[cfg(unix)]
    #[test]
    fn find_on_path_takes_the_first_executable_file_only() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        // Not executable in the first directory, a directory of that name, then the real one.
        write_program(first.path(), "kubectl", 0o644);
        std::fs::create_dir(first.path().join("helm")).unwrap();
        let kubectl = write_program(second.path(), "kubectl", 0o755);
        let helm = write_program(second.path(), "helm", 0o700);
        let path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_on_path("kubectl", Some(&path)), Some(kubectl));
        assert_eq!(find_on_path("helm", Some(&path)), Some(helm));
        assert_eq!(find_on_path("jq", Some(&path)), None);
        assert_eq!(find_on_path("kubectl", None), None);
        // An empty entry (the current directory) is not searched.
        assert_eq!(find_on_path("kubectl", Some(OsStr::new(""))), None);
    }

    #[test]
    fn a_tool_is_required_only_by_its_targets() {
        let found = PathBuf::from("/usr/bin/az");
        assert_eq!(
            tool_finding(tool("az"), TargetKind::Aks, Some(&found)).status,
            Status::Ok("/usr/bin/az".into())
        );
        let missing = tool_finding(tool("az"), TargetKind::Aks, None);
        assert!(
            matches!(&missing.status, Status::Fail { problem, fix }
                if problem.contains("az is not on PATH") && fix.contains("install-azure-cli")),
            "{missing:?}"
        );
        // Not needed: skipped even when found, never passed.
        for (name, target) in [
            ("az", TargetKind::Kube),
            ("jq", TargetKind::Local),
            ("helm", TargetKind::Aks),
            ("kind", TargetKind::Local),
            ("kubectl", TargetKind::Local),
        ] {
            let finding = tool_finding(tool(name), target, Some(&found));
            assert!(
                matches!(&finding.status, Status::Skip(reason) if reason.contains(target.name())),
                "{finding:?}"
            );
        }
        assert!(tool_finding(tool("kind"), TargetKind::Kube, None).is_failed());
        assert!(tool_finding(tool("kubectl"), TargetKind::Aks, None).is_failed());
    }
}
