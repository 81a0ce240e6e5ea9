//! The cluster's Kubernetes version against what AKS supports in its region: the managed
//! cluster's `properties.currentKubernetesVersion` (else `kubernetesVersion`) and `supportPlan`,
//! and `Microsoft.ContainerService/locations/{location}/kubernetesVersions` (each minor with its
//! `capabilities.supportPlan`: `KubernetesOfficial` for standard support, `AKSLongTermSupport`
//! for LTS).

use serde_json::Value;

/// The support plans of one minor version in a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionVersion {
    /// `1.32`.
    pub minor: String,
    pub standard: bool,
    pub long_term: bool,
    pub preview: bool,
    pub default: bool,
}

/// The `values` of a kubernetesVersions list.
pub fn region_versions(body: &Value) -> Result<Vec<RegionVersion>, String> {
    let values = body
        .get("values")
        .and_then(Value::as_array)
        .ok_or("no `values` array in the kubernetesVersions list")?;
    values
        .iter()
        .map(|v| {
            let minor = v
                .get("version")
                .and_then(Value::as_str)
                .ok_or("a kubernetesVersions entry has no `version`")?
                .to_owned();
            let plans: Vec<&str> = v
                .pointer("/capabilities/supportPlan")
                .and_then(Value::as_array)
                .map(|p| p.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let flag = |name: &str| v.get(name).and_then(Value::as_bool).unwrap_or(false);
            Ok(RegionVersion {
                standard: plans.is_empty() || plans.contains(&"KubernetesOfficial"),
                long_term: plans.contains(&"AKSLongTermSupport"),
                preview: flag("isPreview"),
                default: flag("isDefault"),
                minor,
            })
        })
        .collect()
}

/// `1.32` of `1.32.6` (or of `1.32`).
pub fn minor_of(version: &str) -> Option<String> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    (major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok())
        .then(|| format!("{major}.{minor}"))
}

/// How the cluster's version stands in its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSupport {
    /// Standard (KubernetesOfficial) support.
    Standard { preview: bool },
    /// Only long-term support, and the cluster is on that plan.
    LongTermSupport,
    /// Only long-term support, and the cluster is not on it.
    LongTermOnly,
    /// Not in the region's list at all.
    Unsupported,
}

/// Where `minor` stands among `versions`, for a cluster on `support_plan`.
pub fn support_of(
    minor: &str,
    support_plan: Option<&str>,
    versions: &[RegionVersion],
) -> VersionSupport {
    match versions.iter().find(|v| v.minor == minor) {
        None => VersionSupport::Unsupported,
        Some(v) if v.standard => VersionSupport::Standard { preview: v.preview },
        Some(v) if v.long_term && support_plan == Some("AKSLongTermSupport") => {
            VersionSupport::LongTermSupport
        }
        Some(_) => VersionSupport::LongTermOnly,
    }
}

/// The region's minors with standard support, oldest first (`1.31, 1.32, 1.33`).
pub fn standard_minors(versions: &[RegionVersion]) -> Vec<String> {
    let mut minors: Vec<(u32, u32, String)> = versions
        .iter()
        .filter(|v| v.standard && !v.preview)
        .filter_map(|v| {
            let (major, minor) = v.minor.split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?, v.minor.clone()))
        })
        .collect();
    minors.sort();
    minors.into_iter().map(|(_, _, m)| m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn versions() -> Vec<RegionVersion> {
        region_versions(&json!({"values": [
            {"version": "1.31", "capabilities": {"supportPlan": ["KubernetesOfficial", "AKSLongTermSupport"]}},
            {"version": "1.30", "capabilities": {"supportPlan": ["AKSLongTermSupport"]}},
            {"version": "1.33", "isPreview": true, "capabilities": {"supportPlan": ["KubernetesOfficial"]}},
            {"version": "1.32", "isDefault": true, "capabilities": {"supportPlan": ["KubernetesOfficial"]}}
        ]}))
        .unwrap()
    }

    #[test]
    fn minors_are_read_from_full_versions() {
        assert_eq!(minor_of("1.32.6").as_deref(), Some("1.32"));
        assert_eq!(minor_of("v1.30").as_deref(), Some("1.30"));
        assert_eq!(minor_of("latest"), None);
        assert_eq!(minor_of("1"), None);
    }

    #[test]
    fn standard_lts_and_unsupported_are_told_apart() {
        let v = versions();
        assert_eq!(
            support_of("1.32", Some("KubernetesOfficial"), &v),
            VersionSupport::Standard { preview: false }
        );
        assert_eq!(
            support_of("1.33", None, &v),
            VersionSupport::Standard { preview: true }
        );
        assert_eq!(
            support_of("1.30", Some("KubernetesOfficial"), &v),
            VersionSupport::LongTermOnly
        );
        assert_eq!(
            support_of("1.30", Some("AKSLongTermSupport"), &v),
            VersionSupport::LongTermSupport
        );
        assert_eq!(support_of("1.29", None, &v), VersionSupport::Unsupported);
        assert_eq!(standard_minors(&v), ["1.31", "1.32"]);
        assert!(region_versions(&json!({"value": []})).is_err());
    }
}
