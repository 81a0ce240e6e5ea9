//! Cleanup steps: delete only what the run created (its Kubernetes objects, and waits for its NodePool's nodes to go; queue, poison queue and table; the resource group it deployed).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::{k8s::*, secs};
use crate::manifests::{delete_owned, exists, Applied, Removal};
use crate::runner::{Context, Footprint, Step, StepFuture, StepResult};

/// Deletes the Kubernetes objects the run applied, in reverse order, each only while it still
/// carries the run's id, and waits until they are gone; names what it left alone.
pub fn cleanup_objects(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.applied.is_empty() {
            let prefix = match ctx.footprint {
                Footprint::UseDeployed => "--use-deployed: ",
                _ => "",
            };
            if ctx.deleted_during_run.is_empty() {
                return StepResult::skipped(format!(
                    "{prefix}the run created no Kubernetes object"
                ));
            }
            let deleted: Vec<String> = ctx
                .deleted_during_run
                .iter()
                .map(|o| format!("{} {}", o.kind, o.name))
                .collect();
            return StepResult::skipped(format!(
                "{prefix}nothing left to delete: the run's only Kubernetes objects ({}) were deleted when their step ended",
                deleted.join(", ")
            ));
        }
        let client = ctx.target.client();
        let run_id = ctx.names.run_id.clone();
        let mut details = Vec::new();
        let mut errors = Vec::new();
        let mut deleted = Vec::new();
        // In reverse: the ScaledObject first (KEDA stops scaling), the namespace last.
        let applied: Vec<Applied> = ctx.applied.iter().rev().cloned().collect();
        for object in &applied {
            match delete_owned(&client, object, &run_id).await {
                Ok(Removal::Deleted) => {
                    details.push(format!("deleted {} {}", object.kind, object.name));
                    deleted.push(object.clone());
                }
                Ok(Removal::AlreadyGone) => {
                    details.push(format!("{} {} was already gone", object.kind, object.name))
                }
                Ok(Removal::NotOurs { run_id: owner }) => details.push(format!(
                    "left alone: {} {} exists but does not carry this run's label {}={run_id} ({}): the run did not create it",
                    object.kind,
                    object.name,
                    crate::manifests::RUN_ID_LABEL,
                    owner.map_or("no run id".to_owned(), |o| format!("it carries {o}"))
                )),
                Err(e) => errors.push(crate::error_chain::text(&e)),
            }
        }
        let within = secs(600);
        let clock = ctx.clock();
        let gone = poll_until(&clock, within, || async {
            let mut left = Vec::new();
            for object in &deleted {
                match exists(&client, object).await {
                    Ok(false) => {}
                    Ok(true) => left.push(format!("{} {}", object.kind, object.name)),
                    Err(e) => left.push(crate::error_chain::text(&e)),
                }
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            }
        })
        .await;
        match gone {
            Err(left) => errors.push(format!("still present: {left}")),
            Ok(()) => details.push(format!(
                "checked: the {} object(s) this run created and deleted are gone",
                deleted.len()
            )),
        }
        // Its NodePool's nodes go with it (their NodeClaims are its dependents): wait for
        // them, so the next run on the cluster, or one side by side, starts from its own.
        for pool in deleted.iter().filter(|o| o.kind == "NodePool") {
            match pool_nodes_gone(ctx, &pool.name, within).await {
                Ok(line) => details.push(line),
                Err(left) => errors.push(left),
            }
        }
        if errors.is_empty() {
            StepResult::passed(details)
        } else {
            StepResult::failed(errors.join("; "), details)
        }
    })
}

/// Waits until no NodeClaim and no Node of `pool` (label `karpenter.sh/nodepool`) is listed.
async fn pool_nodes_gone(
    ctx: &Context,
    pool: &str,
    within: std::time::Duration,
) -> Result<String, String> {
    let claims = super::chaos::nodeclaims(ctx);
    let nodes: Api<Node> = Api::all(ctx.target.client());
    let selector = ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}"));
    let clock = ctx.clock();
    // The most of each seen at once, for the line that says what went.
    let (seen_claims, seen_nodes) = (
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    );
    let result = poll_until(&clock, within, || async {
        let claims = claims.list(&selector).await.map_err(|e| e.to_string())?;
        let nodes = nodes.list(&selector).await.map_err(|e| e.to_string())?;
        seen_claims.fetch_max(claims.items.len(), std::sync::atomic::Ordering::Relaxed);
        seen_nodes.fetch_max(nodes.items.len(), std::sync::atomic::Ordering::Relaxed);
        let left: Vec<String> = claims
            .items
            .iter()
            .map(|c| format!("NodeClaim {}", c.metadata.name.clone().unwrap_or_default()))
            .chain(
                nodes
                    .items
                    .iter()
                    .map(|n| format!("Node {}", n.metadata.name.clone().unwrap_or_default())),
            )
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join(", "))
        }
    })
    .await;
    let (claims_seen, nodes_seen) = (seen_claims.into_inner(), seen_nodes.into_inner());
    match result {
        Ok(()) if claims_seen + nodes_seen == 0 => Ok(format!(
            "checked: NodePool {pool} had no NodeClaim or Node left"
        )),
        Ok(()) => Ok(format!(
            "checked: NodePool {pool}'s NodeClaims and Nodes are gone (waited for them: {claims_seen} NodeClaim(s) and {nodes_seen} Node(s) left at the deletion, {})",
            clock.name()
        )),
        Err(left) => Err(format!(
            "NodePool {pool} is deleted, but its nodes are still there: {left}"
        )),
    }
}

/// The cleanup step that deletes the resource group the run deployed (and waits until it is
/// gone); skipped when the run reused a deployment.
pub fn cleanup_resource_group_step() -> Step {
    Step::new(
        "delete the resource group the run deployed",
        secs(3600),
        cleanup_resource_group,
    )
}

/// Deletes the resource group this run deployed (`--deploy`) and waits until it is gone.
pub fn cleanup_resource_group(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(group) = ctx.deployed_group.clone() else {
            return StepResult::skipped(
                "the run deployed no resource group (it reused an existing deployment or ran on the twin)",
            );
        };
        match delete_group(&group).await {
            Ok(done) => StepResult::passed([done]),
            Err(e) => StepResult::failed(e, []),
        }
    })
}

/// [`delete_group`], announced on stderr first with why the group goes (`this run deployed
/// it`, `the deploy did not finish`).
pub async fn delete_group_announced(
    group: &crate::runner::DeployedGroup,
    why: &str,
) -> Result<String, String> {
    eprintln!("deleting resource group {} ({why})…", group.resource_group);
    delete_group(group).await
}

/// Deletes `group` and waits until Azure Resource Manager answers 404 (idempotent); the text
/// says what happened.
pub async fn delete_group(group: &crate::runner::DeployedGroup) -> Result<String, String> {
    let name = &group.resource_group;
    let client = crate::arm::ArmClient::from_env(&group.arm_url).map_err(|e| {
        format!("cannot reach Azure Resource Manager to delete resource group {name}: {e} (it is tagged for `edw sweep`)")
    })?;
    let groups = crate::arm::ResourceGroups::new(&client, &group.subscription);
    match groups.delete_resource_group(name).await {
        Ok(crate::arm::DeleteOutcome::Deleted) => Ok(format!(
            "deleted resource group {name} and waited until Azure Resource Manager answered 404"
        )),
        Ok(crate::arm::DeleteOutcome::AlreadyAbsent) => {
            Ok(format!("resource group {name} was already gone"))
        }
        Err(e) => Err(format!(
            "deleting resource group {name}: {e} (it is tagged for `edw sweep`)"
        )),
    }
}

/// Deletes the queue, poison queue and table the run created (nothing when it used the team's).
pub fn cleanup_storage(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.created_storage {
            return StepResult::skipped("the run created no queue or table");
        }
        let storage = ctx.target.storage();
        let names = ctx.names.clone();
        let mut errors = Vec::new();
        for queue in [&names.queue, &names.poison] {
            let q = storage.queue(queue);
            if let Err(e) = q.delete().await {
                errors.push(e.to_string());
            } else if matches!(q.exists().await, Ok(true)) {
                errors.push(format!("queue {queue} still exists"));
            }
        }
        let table = storage.table(&names.table);
        if let Err(e) = table.delete().await {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            StepResult::passed([format!(
                "deleted queue {}, poison queue {} and table {} (checked)",
                names.queue, names.poison, names.table
            )])
        } else {
            StepResult::failed(errors.join("; "), [])
        }
    })
}
