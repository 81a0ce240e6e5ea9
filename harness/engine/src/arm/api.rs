//! The ARM API versions (those of the recorded payloads in `fixtures/recorded/arm/`), the
//! built-in role definition ids and the feature the checks look at.

/// `Microsoft.Resources/resourceGroups` (recorded_resources_ResourceGroup_Get.json).
pub const RESOURCE_GROUPS: &str = "2024-11-01";
/// `Microsoft.ContainerService/managedClusters` (recorded managed-cluster GET and DELETE).
pub const MANAGED_CLUSTERS: &str = "2025-10-01";
/// `Microsoft.ContainerService/locations/{location}/kubernetesVersions` (KubernetesVersions_List).
pub const KUBERNETES_VERSIONS: &str = "2025-10-01";
/// `Microsoft.Storage/storageAccounts` and its queues (StorageAccountGetProperties,
/// StorageAccountUpdate, QueueOperationPut).
pub const STORAGE: &str = "2025-08-01";
/// `Microsoft.Storage/storageAccounts/tableServices/default/tables` (TableOperationPut).
pub const STORAGE_TABLES: &str = "2023-01-01";
/// `Microsoft.ContainerRegistry/registries` (RegistryGet).
pub const CONTAINER_REGISTRY: &str = "2025-11-01";
/// `Microsoft.ManagedIdentity` identities and federated credentials (IdentityGet, FederatedIdentityCredentialGet).
pub const MANAGED_IDENTITY: &str = "2026-05-31";
/// `Microsoft.Authorization/roleAssignments` (RoleAssignments_ListForScope).
pub const ROLE_ASSIGNMENTS: &str = "2022-04-01";
/// `Microsoft.Features` (no payload recorded; the stable version of the Features API).
pub const FEATURES: &str = "2021-07-01";

/// Built-in role AcrPull.
pub const ACR_PULL: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
/// Built-in role Storage Queue Data Contributor.
pub const STORAGE_QUEUE_DATA_CONTRIBUTOR: &str = "974c5e8b-45b9-4653-ba55-5f855dd0fb88";
/// Built-in role Storage Table Data Contributor.
pub const STORAGE_TABLE_DATA_CONTRIBUTOR: &str = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3";
/// The data roles the harness's queue and table calls need with an Entra ID sign-in, by id
/// and name.
pub const STORAGE_DATA_ROLES: &[(&str, &str)] = &[
    (
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
        "Storage Queue Data Contributor",
    ),
    (
        STORAGE_TABLE_DATA_CONTRIBUTOR,
        "Storage Table Data Contributor",
    ),
];

/// The preview feature deploy.sh registers for Node Autoprovisioning.
pub const NAP_FEATURE_NAMESPACE: &str = "Microsoft.ContainerService";
/// See [`NAP_FEATURE_NAMESPACE`].
pub const NAP_FEATURE_NAME: &str = "NodeAutoProvisioningPreview";

/// The taint deploy.sh puts on the system pool.
pub const SYSTEM_POOL_TAINT: &str = "CriticalAddonsOnly=true:NoSchedule";
/// The KEDA operator's service account subject.
pub const KEDA_OPERATOR_SUBJECT: &str = "system:serviceaccount:kube-system:keda-operator";
