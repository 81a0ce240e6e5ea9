//! The state a run shares between phase commands (`edw deploy`, `edw load`, …), in a
//! `KEY=value` file like the sample's deploy.state: the run's resource names, what it applied,
//! what it sent, and the node count before the load.

use std::path::Path;

use super::context::{Context, Footprint};
use crate::manifests::Applied;
use crate::workload::ProduceReport;

/// Why the run state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunStateError {
    #[error("cannot read the run state {path}: {reason} (run `edw deploy` first)")]
    Read { path: String, reason: String },
    #[error("{path}:{line}: {reason}")]
    Invalid {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot write the run state {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Writes what later phases need.
pub fn save(context: &Context, path: &Path) -> Result<(), RunStateError> {
    let n = &context.names;
    let applied = objects_value(&context.applied);
    let sent = context
        .produced
        .as_ref()
        .map(|p| format!("{}", p.sent_count()))
        .unwrap_or_default();
    let deployed = context
        .deployed_group
        .as_ref()
        .map(|g| {
            format!(
                "EDW_RUN_DEPLOYED_GROUP={}|{}|{}\n",
                g.subscription, g.resource_group, g.arm_url
            )
        })
        .unwrap_or_default();
    let opening = firewall_line(context.storage_firewall_opening.as_ref());
    // What the run deleted itself (an in-cluster load's Job), so a later `edw cleanup` names it.
    let deleted = if context.deleted_during_run.is_empty() {
        String::new()
    } else {
        format!(
            "EDW_RUN_DELETED={}\n",
            objects_value(&context.deleted_during_run)
        )
    };
    // The autoscalers' events at the load (`uid=count,…`), when they were read.
    let events = context
        .events_before_load
        .as_ref()
        .map(|events| format!("EDW_RUN_EVENTS_BEFORE_LOAD={}\n", events_value(events)))
        .unwrap_or_default();
    let text = format!(
        "# edw run state: written by `edw deploy|load|scale`, read by the next phase\nEDW_RUN_TARGET={}\nEDW_RUN_ID={}\nEDW_RUN_FOOTPRINT={}\nEDW_RUN_NAMESPACE={}\nEDW_RUN_DEPLOYMENT={}\nEDW_RUN_SCALED_OBJECT={}\nEDW_RUN_NODEPOOL={}\nEDW_RUN_QUEUE={}\nEDW_RUN_POISON={}\nEDW_RUN_TABLE={}\nEDW_RUN_CREATED_STORAGE={}\nEDW_RUN_SENT={}\nEDW_RUN_NODES_BEFORE_LOAD={}\nEDW_RUN_APPLIED={}\n{events}{deleted}{deployed}{opening}",
        context.target_info.name,
        n.run_id,
        footprint_word(context.footprint),
        n.namespace,
        n.deployment,
        n.scaled_object,
        n.nodepool,
        n.queue,
        n.poison,
        n.table,
        context.created_storage,
        sent,
        context.nodes_before_load,
        applied
    );
    write(path, &text)
}

/// The ledger of a run whose deploy command is still running: its target and the resource
/// group the command is creating, so that `edw cleanup --run-state` deletes the group if this
/// process dies before the run's own ledger replaces this one.
/// Removes a finished run's ledger when its cleanup left nothing to clean: every cleanup step
/// ran and none failed. A run whose resources were kept (`--keep-on-failure`) or whose cleanup
/// failed keeps its ledger for `edw cleanup --run-state`. Returns whether it was removed.
pub fn remove_when_cleaned(
    path: &Path,
    report: &edw_model::report::ScenarioReport,
    options: &super::RunOptions,
) -> bool {
    let kept = options.keep_on_failure && !report.passed();
    let cleaned = report.cleanup.iter().all(|s| !s.outcome.is_failed());
    if kept || !cleaned {
        return false;
    }
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

pub fn save_deploying(
    path: &Path,
    target: &str,
    group: &super::context::DeployedGroup,
) -> Result<(), RunStateError> {
    save_before_target(path, target, Some(group), None)
}

/// The ledger of a run that has not opened its target yet: what it already created outside
/// the cluster (the resource group its deploy command is creating, the IP rule it is adding to
/// the storage firewall), so that `edw cleanup --run-state` removes them if this process dies
/// before the run's own ledger replaces this one.
pub fn save_before_target(
    path: &Path,
    target: &str,
    group: Option<&super::context::DeployedGroup>,
    opening: Option<&edw_model::run::FirewallOpening>,
) -> Result<(), RunStateError> {
    let group = group
        .map(|g| {
            format!(
                "EDW_RUN_DEPLOYED_GROUP={}|{}|{}\n",
                g.subscription, g.resource_group, g.arm_url
            )
        })
        .unwrap_or_default();
    write(
        path,
        &format!(
            "# edw run state: written before the run opened its target (what it created outside the cluster)\nEDW_RUN_TARGET={target}\n{group}{}",
            firewall_line(opening)
        ),
    )
}

/// The ledger line of the IP rule a run added to the storage firewall, if any.
fn firewall_line(opening: Option<&edw_model::run::FirewallOpening>) -> String {
    opening
        .map(|o| format!("{FIREWALL_KEY}={}\n", o.ledger_value()))
        .unwrap_or_default()
}

/// The ledger key of the IP rule a run added to the storage firewall.
const FIREWALL_KEY: &str = "EDW_RUN_STORAGE_FIREWALL_RULE";

fn write(path: &Path, text: &str) -> Result<(), RunStateError> {
    let failed = |e: std::io::Error| RunStateError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    std::fs::write(path, text).map_err(failed)
}

fn footprint_word(footprint: Footprint) -> &'static str {
    match footprint {
        Footprint::OwnNamespace => "own-namespace",
        Footprint::SharedNamespace => "shared-namespace",
        Footprint::UseDeployed => "use-deployed",
    }
}

fn parse_footprint(word: &str) -> Option<Footprint> {
    [
        Footprint::OwnNamespace,
        Footprint::SharedNamespace,
        Footprint::UseDeployed,
    ]
    .into_iter()
    .find(|f| footprint_word(*f) == word)
}

/// Restores a run's names and progress into `context`. A ledger without `EDW_RUN_ID` (older
/// than run ids) restores no id, so its cleanup deletes no Kubernetes object: it cannot tell
/// the run's objects from anyone else's. Returns the target name it was for.
pub fn restore(context: &mut Context, path: &Path) -> Result<String, RunStateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RunStateError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut target = String::new();
    context.names.run_id.clear();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let invalid = |reason: String| RunStateError::Invalid {
            path: shown.clone(),
            line: index + 1,
            reason,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid("expected KEY=value".into()))?;
        match key {
            "EDW_RUN_TARGET" => target = value.to_owned(),
            "EDW_RUN_DEPLOYED_GROUP" => {
                let parts: Vec<&str> = value.splitn(3, '|').collect();
                let [subscription, resource_group, arm_url] = parts[..] else {
                    return Err(invalid(format!(
                        "{value:?} is not subscription|resource group|ARM URL"
                    )));
                };
                context.deployed_group = Some(super::context::DeployedGroup {
                    subscription: subscription.to_owned(),
                    resource_group: resource_group.to_owned(),
                    arm_url: arm_url.to_owned(),
                });
            }
            FIREWALL_KEY => {
                context.storage_firewall_opening = Some(
                    edw_model::run::FirewallOpening::from_ledger_value(value).map_err(invalid)?,
                )
            }
            "EDW_RUN_ID" => context.names.run_id = value.to_owned(),
            "EDW_RUN_FOOTPRINT" => {
                context.footprint = parse_footprint(value).ok_or_else(|| {
                    invalid(format!(
                        "{value:?} is not own-namespace, shared-namespace or use-deployed"
                    ))
                })?
            }
            "EDW_RUN_NAMESPACE" => context.names.namespace = value.to_owned(),
            "EDW_RUN_DEPLOYMENT" => context.names.deployment = value.to_owned(),
            "EDW_RUN_SCALED_OBJECT" => {
                context.names.scaled_object = value.to_owned();
                context.names.hpa = format!("keda-hpa-{value}");
            }
            "EDW_RUN_NODEPOOL" => context.names.nodepool = value.to_owned(),
            "EDW_RUN_QUEUE" => context.names.queue = value.to_owned(),
            "EDW_RUN_POISON" => context.names.poison = value.to_owned(),
            "EDW_RUN_TABLE" => context.names.table = value.to_owned(),
            "EDW_RUN_CREATED_STORAGE" => context.created_storage = value == "true",
            "EDW_RUN_SENT" if value.is_empty() => {}
            "EDW_RUN_SENT" => {
                let count: u64 = value
                    .parse()
                    .map_err(|_| invalid(format!("{value:?} is not a message count")))?;
                context.produced = Some(ProduceReport {
                    sent: (1..=count).collect(),
                    failed: Vec::new(),
                    elapsed: std::time::Duration::ZERO,
                });
            }
            "EDW_RUN_NODES_BEFORE_LOAD" => {
                context.nodes_before_load = value
                    .parse()
                    .map_err(|_| invalid(format!("{value:?} is not a count")))?;
            }
            "EDW_RUN_APPLIED" => context.applied = parse_objects(value).map_err(invalid)?,
            "EDW_RUN_EVENTS_BEFORE_LOAD" => {
                context.events_before_load = Some(parse_events(value).map_err(invalid)?)
            }
            "EDW_RUN_DELETED" => {
                context.deleted_during_run = parse_objects(value).map_err(invalid)?
            }
            other => return Err(invalid(format!("unknown key {other}"))),
        }
    }
    Ok(target)
}

/// Events as the ledger lists them: `uid=count`, `,`-separated.
fn events_value(events: &std::collections::BTreeMap<String, i32>) -> String {
    events
        .iter()
        .map(|(uid, count)| format!("{uid}={count}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_events(value: &str) -> Result<std::collections::BTreeMap<String, i32>, String> {
    value
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .rsplit_once('=')
                .and_then(|(uid, count)| Some((uid.to_owned(), count.parse().ok()?)))
                .filter(|(uid, _)| !uid.is_empty())
                .ok_or_else(|| format!("{entry:?} is not an event's uid=count"))
        })
        .collect()
}

/// Objects as the ledger lists them: `apiVersion|kind|namespace|name`, `;`-separated.
fn objects_value(objects: &[Applied]) -> String {
    objects
        .iter()
        .map(|a| {
            format!(
                "{}|{}|{}|{}",
                a.api_version,
                a.kind,
                a.namespace.clone().unwrap_or_default(),
                a.name
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The objects of a ledger value written by [`objects_value`], or what is wrong with it.
fn parse_objects(value: &str) -> Result<Vec<Applied>, String> {
    value
        .split(';')
        .filter(|a| !a.is_empty())
        .map(|a| {
            let parts: Vec<&str> = a.split('|').collect();
            match parts.as_slice() {
                [api_version, kind, namespace, name] => Ok(Applied {
                    api_version: (*api_version).to_owned(),
                    kind: (*kind).to_owned(),
                    namespace: (!namespace.is_empty()).then(|| (*namespace).to_owned()),
                    name: (*name).to_owned(),
                }),
                _ => Err(format!("{a:?} is not apiVersion|kind|namespace|name")),
            }
        })
        .collect()
}

/// The resource group a run deployed, read from its run state alone (for a cleanup whose
/// cluster, inside that group, can no longer be reached); `None` when there is none or the
/// file cannot be read.
pub fn deployed_group(path: &Path) -> Option<super::context::DeployedGroup> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("EDW_RUN_DEPLOYED_GROUP="))
        .and_then(|value| {
            let parts: Vec<&str> = value.splitn(3, '|').collect();
            let [subscription, resource_group, arm_url] = parts[..] else {
                return None;
            };
            Some(super::context::DeployedGroup {
                subscription: subscription.to_owned(),
                resource_group: resource_group.to_owned(),
                arm_url: arm_url.to_owned(),
            })
        })
}

/// The IP rule a run added to the storage firewall, read from its run state alone (for a
/// cleanup whose cluster can no longer be reached); `None` when there is none or the file
/// cannot be read.
pub fn storage_firewall_opening(path: &Path) -> Option<edw_model::run::FirewallOpening> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix(&format!("{FIREWALL_KEY}="))
                .map(str::to_owned)
        })
        .and_then(|value| edw_model::run::FirewallOpening::from_ledger_value(&value).ok())
}

/// Drops the storage firewall line from the run state at `path`, keeping every other line: the
/// rule is gone, and a rule added later for the same address is not this run's to remove.
pub fn forget_storage_firewall_opening(path: &Path) -> Result<(), RunStateError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunStateError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let kept: String = text
        .lines()
        .filter(|line| !line.trim().starts_with(&format!("{FIREWALL_KEY}=")))
        .map(|line| format!("{line}\n"))
        .collect();
    write(path, &kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::DeployedGroup;
    use edw_model::run::FirewallOpening;

    #[test]
    fn objects_read_back_as_written_and_a_bad_one_is_named() {
        let objects = vec![
            Applied {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                namespace: Some("aqs-demo".into()),
                name: "edw-load-abc-1-00af".into(),
            },
            Applied {
                api_version: "karpenter.sh/v1".into(),
                kind: "NodePool".into(),
                namespace: None,
                name: "edw-abc-load".into(),
            },
        ];
        let value = objects_value(&objects);
        assert_eq!(
            value,
            "batch/v1|Job|aqs-demo|edw-load-abc-1-00af;karpenter.sh/v1|NodePool||edw-abc-load"
        );
        assert_eq!(parse_objects(&value).unwrap(), objects);
        assert_eq!(parse_objects("").unwrap(), Vec::new());
        let bad = parse_objects("batch/v1|Job|x").unwrap_err();
        assert!(
            bad.contains("\"batch/v1|Job|x\" is not apiVersion|kind|namespace|name"),
            "{bad}"
        );
    }

    #[test]
    fn the_events_before_the_load_read_back_as_written_and_a_bad_one_is_named() {
        let events = std::collections::BTreeMap::from([
            ("0c1d-uid".to_owned(), 1),
            ("9f2e-uid".to_owned(), 3),
        ]);
        let value = events_value(&events);
        assert_eq!(value, "0c1d-uid=1,9f2e-uid=3");
        assert_eq!(parse_events(&value).unwrap(), events);
        // None recorded is a record too: every event since is this run's.
        assert_eq!(parse_events("").unwrap(), std::collections::BTreeMap::new());
        for bad in ["0c1d-uid", "=2", "0c1d-uid=many"] {
            let error = parse_events(bad).unwrap_err();
            assert!(
                error.contains("is not an event's uid=count"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_firewall_rule_is_recorded_read_back_and_forgotten_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("reports/edw-run.state");
        let group = DeployedGroup {
            subscription: "s".into(),
            resource_group: "rg".into(),
            arm_url: "http://127.0.0.1:9".into(),
        };
        let opening = FirewallOpening {
            arm_url: "http://127.0.0.1:9".into(),
            account_id:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc"
                    .into(),
            address: "20.81.4.77".parse().unwrap(),
        };
        assert_eq!(storage_firewall_opening(&ledger), None);
        save_before_target(&ledger, "aks", Some(&group), Some(&opening)).unwrap();
        assert_eq!(storage_firewall_opening(&ledger), Some(opening));
        assert_eq!(deployed_group(&ledger), Some(group.clone()));
        forget_storage_firewall_opening(&ledger).unwrap();
        assert_eq!(storage_firewall_opening(&ledger), None);
        // Everything else stays: the group is still to be deleted.
        assert_eq!(deployed_group(&ledger), Some(group));
        let text = std::fs::read_to_string(&ledger).unwrap();
        assert!(text.contains("EDW_RUN_TARGET=aks"), "{text}");
    }
}
