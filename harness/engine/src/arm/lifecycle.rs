//! Resource-group lifecycle: [`ResourceGroups::delete_resource_group`] (DELETE, then GET until
//! 404; idempotent) and the sweep of expired groups tagged `edw-run-id` + `edw-expires`.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::api;
use super::client::ArmClient;
use super::deployment::unsafe_segment;
use super::error::ArmError;
use crate::secrets::redact;

/// The tags that mark a group the suite created and when it may be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryTags {
    /// Tag holding the run id (default `edw-run-id`).
    pub run_id: String,
    /// Tag holding the RFC 3339 expiry (default `edw-expires`).
    pub expires: String,
}

impl Default for ExpiryTags {
    fn default() -> Self {
        ExpiryTags {
            run_id: "edw-run-id".to_owned(),
            expires: "edw-expires".to_owned(),
        }
    }
}

/// A tagged group whose expiry has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredGroup {
    pub name: String,
    pub run_id: String,
    pub expires: OffsetDateTime,
}

/// What [`ResourceGroups::delete_resource_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The group existed and is now gone.
    Deleted,
    /// There was nothing to delete.
    AlreadyAbsent,
}

/// What a sweep found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub dry_run: bool,
    /// Every expired group (deleted unless `dry_run`).
    pub expired: Vec<ExpiredGroup>,
    /// Groups deleted (or already gone).
    pub deleted: Vec<String>,
    /// Groups whose deletion failed, with the error text.
    pub failed: Vec<(String, String)>,
}

/// Resource groups of one subscription.
#[derive(Debug, Clone)]
pub struct ResourceGroups<'a> {
    client: &'a ArmClient,
    subscription_id: String,
}

impl<'a> ResourceGroups<'a> {
    pub fn new(client: &'a ArmClient, subscription_id: &str) -> Self {
        ResourceGroups {
            client,
            subscription_id: subscription_id.to_owned(),
        }
    }

    fn id(&self, name: &str) -> Result<String, ArmError> {
        let id = format!(
            "/subscriptions/{}/resourceGroups/{name}",
            self.subscription_id
        );
        for part in [self.subscription_id.as_str(), name] {
            if let Some(reason) = unsafe_segment(part) {
                return Err(ArmError::invalid(&id, format!("{part:?}: {reason}")));
            }
        }
        Ok(id)
    }

    /// Deletes group `name` and waits until a GET answers 404. A group that is already absent
    /// (404 on the first GET or on the DELETE) is a success without a DELETE.
    pub async fn delete_resource_group(&self, name: &str) -> Result<DeleteOutcome, ArmError> {
        let id = self.id(name)?;
        match self.client.get(&id, api::RESOURCE_GROUPS).await {
            Err(e) if e.is_not_found() => return Ok(DeleteOutcome::AlreadyAbsent),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let url = self.client.url(&id, api::RESOURCE_GROUPS, &[])?;
        let response = self
            .client
            .send(reqwest::Method::DELETE, url, None, &id)
            .await?;
        if response.status == 404 {
            return Ok(DeleteOutcome::AlreadyAbsent);
        }
        super::client::ensure_success(&id, response)?;
        tracing::info!(resource_group = %redact(name), "resource group deletion accepted; waiting for 404");
        let settings = self.client.settings().clone();
        let started = tokio::time::Instant::now();
        let deadline = started + settings.operation_deadline;
        loop {
            match self.client.get(&id, api::RESOURCE_GROUPS).await {
                Err(e) if e.is_not_found() => return Ok(DeleteOutcome::Deleted),
                Err(e) => return Err(e),
                Ok(body) => {
                    let state = body
                        .pointer("/properties/provisioningState")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    if tokio::time::Instant::now() + settings.poll_interval > deadline {
                        return Err(ArmError::Timeout {
                            resource: redact(&id),
                            waited: started.elapsed(),
                            last: format!("provisioningState {}", redact(state)),
                        });
                    }
                }
            }
            tokio::time::sleep(settings.poll_interval).await;
        }
    }

    /// Tags group `name` with the run id and its expiry (RFC 3339), keeping the tags it has
    /// (GET, then PUT with its location and the merged tags), so that `edw sweep` finds it if
    /// the run that deployed it dies before its cleanup. Returns the tags now on the group.
    pub async fn tag_for_expiry(
        &self,
        name: &str,
        tags: &ExpiryTags,
        run_id: &str,
        expires: OffsetDateTime,
    ) -> Result<serde_json::Map<String, Value>, ArmError> {
        let id = self.id(name)?;
        let group = self.client.get(&id, api::RESOURCE_GROUPS).await?;
        let location = group
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| ArmError::invalid(&id, "the resource group has no location"))?
            .to_owned();
        let mut merged = group
            .get("tags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let expires = expires
            .format(&Rfc3339)
            .map_err(|e| ArmError::invalid(&id, format!("expiry: {e}")))?;
        merged.insert(tags.run_id.clone(), Value::String(run_id.to_owned()));
        merged.insert(tags.expires.clone(), Value::String(expires));
        let body = serde_json::json!({"location": location, "tags": merged});
        self.client.put(&id, api::RESOURCE_GROUPS, &body).await?;
        tracing::info!(resource_group = %redact(name), run_id, "resource group tagged for expiry");
        Ok(merged)
    }

    /// Groups tagged with both `tags.run_id` and `tags.expires` whose expiry is before `now`.
    /// A group whose expiry tag is not RFC 3339 is left alone (and logged).
    pub async fn list_expired_groups(
        &self,
        tags: &ExpiryTags,
        now: OffsetDateTime,
    ) -> Result<Vec<ExpiredGroup>, ArmError> {
        let collection = format!("/subscriptions/{}/resourcegroups", self.subscription_id);
        if let Some(reason) = unsafe_segment(&self.subscription_id) {
            return Err(ArmError::invalid(&collection, reason));
        }
        let groups = self
            .client
            .list(&collection, api::RESOURCE_GROUPS, &[])
            .await?;
        let mut expired = Vec::new();
        for group in &groups {
            let Some(name) = group.get("name").and_then(Value::as_str) else {
                continue;
            };
            let tag = |key: &str| {
                group
                    .get("tags")
                    .and_then(|t| t.get(key))
                    .and_then(Value::as_str)
            };
            let (Some(run_id), Some(expires)) = (tag(&tags.run_id), tag(&tags.expires)) else {
                continue;
            };
            match OffsetDateTime::parse(expires, &Rfc3339) {
                Ok(at) if at < now => expired.push(ExpiredGroup {
                    name: name.to_owned(),
                    run_id: run_id.to_owned(),
                    expires: at,
                }),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    resource_group = name,
                    tag = %tags.expires,
                    value = expires,
                    "expiry tag is not RFC 3339 ({e}); group left alone"
                ),
            }
        }
        Ok(expired)
    }

    /// Deletes exactly the groups [`ResourceGroups::list_expired_groups`] returns (none when
    /// `dry_run`). One failed deletion does not stop the others.
    pub async fn sweep(
        &self,
        tags: &ExpiryTags,
        now: OffsetDateTime,
        dry_run: bool,
    ) -> Result<SweepReport, ArmError> {
        let expired = self.list_expired_groups(tags, now).await?;
        let mut report = SweepReport {
            dry_run,
            expired: expired.clone(),
            deleted: Vec::new(),
            failed: Vec::new(),
        };
        if dry_run {
            return Ok(report);
        }
        for group in expired {
            match self.delete_resource_group(&group.name).await {
                Ok(_) => report.deleted.push(group.name),
                Err(e) => report.failed.push((group.name, e.to_string())),
            }
        }
        Ok(report)
    }
}
