//! Table operations: create/delete a table, insert and upsert an entity, get one, query with
//! an OData filter, count.

use azure_data_tables::prelude::{Filter, Select, TableClient};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::Failed;
use super::StorageError;

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// An entity with the same PartitionKey and RowKey was already there; it is unchanged.
    AlreadyExists,
}

/// One table of the storage account.
#[derive(Debug, Clone)]
pub struct Table {
    client: TableClient,
    name: String,
    endpoint: String,
}

#[derive(serde::Deserialize)]
struct KeysOnly {
    #[serde(rename = "PartitionKey")]
    _partition_key: String,
}

impl Table {
    pub(super) fn new(client: TableClient, name: &str, endpoint: &str) -> Self {
        Table {
            client,
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, operation: &'static str) -> Failed<'_> {
        Failed {
            operation,
            resource: &self.name,
            endpoint: &self.endpoint,
        }
    }

    /// Creates the table; an existing table is fine.
    pub async fn create(&self) -> Result<(), StorageError> {
        self.failed("create table")
            .tolerate(self.client.create().await, StorageError::is_conflict)
    }

    /// Deletes the table; a missing table is fine.
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.failed("delete table")
            .tolerate(self.client.delete().await, StorageError::is_not_found)
    }

    /// Inserts `entity` (which carries its `PartitionKey` and `RowKey`). An existing entity
    /// with the same keys is left as it is and reported as [`InsertOutcome::AlreadyExists`].
    pub async fn insert<E: Serialize>(&self, entity: &E) -> Result<InsertOutcome, StorageError> {
        let builder = self
            .client
            .insert::<_, serde_json::Value>(entity)
            .map_err(|e| self.failed("insert entity").classify(e))?;
        match builder.await {
            Ok(_) => Ok(InsertOutcome::Inserted),
            Err(e) => match self.failed("insert entity").classify(e) {
                conflict if conflict.is_conflict() => Ok(InsertOutcome::AlreadyExists),
                other => Err(other),
            },
        }
    }

    /// Inserts or replaces the entity with keys (`partition_key`, `row_key`).
    pub async fn upsert<E: Serialize>(
        &self,
        partition_key: &str,
        row_key: &str,
        entity: &E,
    ) -> Result<(), StorageError> {
        let builder = self
            .client
            .partition_key_client(partition_key)
            .entity_client(row_key)
            .insert_or_replace(entity)
            .map_err(|e| self.failed("upsert entity").classify(e))?;
        builder
            .await
            .map(|_| ())
            .map_err(|e| self.failed("upsert entity").classify(e))
    }

    /// True when the table exists (one page of keys is read: a missing table answers 404).
    pub async fn exists(&self) -> Result<bool, StorageError> {
        let mut pages = self
            .client
            .query()
            .select(Select::new("PartitionKey"))
            .into_stream::<KeysOnly>();
        match pages.next().await {
            None | Some(Ok(_)) => Ok(true),
            Some(Err(e)) => match self.failed("query entities").classify(e) {
                missing if missing.is_not_found() => Ok(false),
                other => Err(other),
            },
        }
    }

    /// The entity with keys (`partition_key`, `row_key`), if there is one.
    pub async fn get<E: DeserializeOwned + Send + Sync>(
        &self,
        partition_key: &str,
        row_key: &str,
    ) -> Result<Option<E>, StorageError> {
        let result = self
            .client
            .partition_key_client(partition_key)
            .entity_client(row_key)
            .get::<E>()
            .await;
        match result {
            Ok(response) => Ok(Some(response.entity)),
            Err(e) => match self.failed("get entity").classify(e) {
                missing if missing.is_not_found() => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Every entity matching the OData `filter` (all entities when `None`), across pages.
    pub async fn query<E: DeserializeOwned + Send + Sync>(
        &self,
        filter: Option<&str>,
    ) -> Result<Vec<E>, StorageError> {
        let mut builder = self.client.query();
        if let Some(filter) = filter {
            builder = builder.filter(Filter::new(filter.to_owned()));
        }
        self.collect(builder.into_stream::<E>()).await
    }

    /// How many entities match `filter` (all when `None`); only the keys are transferred.
    pub async fn count(&self, filter: Option<&str>) -> Result<usize, StorageError> {
        let mut builder = self.client.query().select(Select::new("PartitionKey"));
        if let Some(filter) = filter {
            builder = builder.filter(Filter::new(filter.to_owned()));
        }
        Ok(self.collect(builder.into_stream::<KeysOnly>()).await?.len())
    }

    async fn collect<E: DeserializeOwned + Send + Sync>(
        &self,
        mut pages: azure_core::Pageable<
            azure_data_tables::operations::QueryEntityResponse<E>,
            azure_core::Error,
        >,
    ) -> Result<Vec<E>, StorageError> {
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("query entities").classify(e))?;
            all.extend(page.entities);
        }
        Ok(all)
    }
}
