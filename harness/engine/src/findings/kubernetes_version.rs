//! `kubernetes-version-unsupported`: the deploy script creates the cluster with a pinned
//! `--kubernetes-version` (the sample: `$K8sversion`, 1.30 in its environmentVariables.sh)
//! that is past AKS standard support, so `az aks create` refuses it (or needs long-term
//! support) and a cluster on it gets no AKS support.
//!
//! The dates are the AKS release calendar's (learn.microsoft.com/azure/aks/supported-kubernetes-versions,
//! "AKS Kubernetes release calendar" and "LTS versions", as published in 2026; a month without
//! a day means its last day). A minor newer than the table is not judged: the region's own list
//! (`edw doctor --target aks`, `az aks get-versions`) is the authority.

use time::{Date, Month};

use super::script_findings::code;
use super::{Checked, Finding, Severity};

/// A calendar day: (year, month, day).
type Day = (i32, Month, u8);

/// (1.x minor, end of standard support, end of long-term support).
const AKS_CALENDAR: &[(u32, Day, Day)] = &[
    (29, (2025, Month::March, 31), (2026, Month::April, 30)),
    (30, (2025, Month::August, 22), (2026, Month::July, 31)),
    (31, (2025, Month::November, 1), (2026, Month::November, 30)),
    (32, (2026, Month::March, 31), (2027, Month::March, 31)),
    (33, (2026, Month::July, 31), (2027, Month::July, 31)),
    (34, (2026, Month::November, 30), (2027, Month::November, 30)),
    (35, (2027, Month::March, 31), (2028, Month::March, 31)),
    (36, (2027, Month::June, 30), (2028, Month::June, 30)),
    (37, (2027, Month::October, 31), (2028, Month::October, 31)),
];

fn date((year, month, day): Day) -> Option<Date> {
    Date::from_calendar_date(year, month, day).ok()
}

/// Where a 1.x minor stands on `today`, if the calendar knows: `None` while it has standard
/// support (or is newer than the calendar).
fn lapsed_support(minor: u32, today: Date) -> Option<String> {
    let (first, ..) = AKS_CALENDAR.first()?;
    if minor < *first {
        return Some(format!(
            "AKS support for 1.{minor} ended long ago (1.{first} is the oldest minor on the current calendar)"
        ));
    }
    let (_, standard, long_term) = AKS_CALENDAR.iter().find(|(m, ..)| *m == minor)?;
    let (standard, long_term) = (date(*standard)?, date(*long_term)?);
    if today <= standard {
        return None;
    }
    Some(if today <= long_term {
        format!("AKS standard support for 1.{minor} ended {standard}; only long-term support (Premium tier, --k8s-support-plan AKSLongTermSupport) lasts until {long_term}")
    } else {
        format!("AKS standard support for 1.{minor} ended {standard}, and its long-term support {long_term}")
    })
}

fn unquote(word: &str) -> &str {
    word.trim()
        .trim_end_matches('\\')
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
}

/// The value after `--kubernetes-version` (or `--kubernetes-version=`) on `line`.
fn pinned_version(line: &str) -> Option<&str> {
    const FLAG: &str = "--kubernetes-version";
    let rest = &line[line.find(FLAG)? + FLAG.len()..];
    let rest = match rest.strip_prefix('=') {
        Some(value) => value,
        None if rest.starts_with([' ', '\t']) => rest,
        None => return None,
    };
    let word = unquote(rest.split_whitespace().next()?);
    (!word.is_empty()).then_some(word)
}

/// `NAME` of `$NAME` or `${NAME}`.
fn variable(word: &str) -> Option<&str> {
    let name = word.strip_prefix('$')?;
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// The last `NAME=value` (also after `export`) in `text`, with its line number.
fn assignment<'a>(text: &'a str, name: &str) -> Option<(usize, &'a str)> {
    let prefix = format!("{name}=");
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = code(line).trim();
            let line = line.strip_prefix("export ").map_or(line, str::trim_start);
            line.strip_prefix(&prefix).map(|value| {
                (
                    i + 1,
                    unquote(value.split_whitespace().next().unwrap_or("")),
                )
            })
        })
        .last()
}

/// `kubernetes-version-unsupported` (Risk, only with a deploy script that pins a version the
/// AKS calendar says is past standard support).
pub(super) fn kubernetes_version_unsupported(c: &Checked<'_>) -> Option<Finding> {
    let (path, text) = c.inputs.deploy_script.as_ref()?;
    let (line, raw) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| pinned_version(code(l)).map(|v| (i + 1, v)))?;
    let (value, origin) = match variable(raw) {
        None => (raw.to_owned(), "written in the script".to_owned()),
        Some(name) => {
            // The script's own assignment wins (it runs after what it sources), else the
            // last sourced file that sets it.
            let sourced = assignment(text, name)
                .map(|(n, v)| (format!("{path}:{n}"), v))
                .or_else(|| {
                    c.inputs.sourced_scripts.iter().rev().find_map(|(p, t)| {
                        assignment(t, name).map(|(n, v)| (format!("{p}:{n}"), v))
                    })
                });
            match sourced {
                Some((at, v)) => (v.to_owned(), format!("{name}={v} at {at}")),
                None => {
                    let (_, v, from) =
                        c.inputs.script_variables.iter().find(|(k, ..)| k == name)?;
                    (v.clone(), format!("{name}={v} from {from}"))
                }
            }
        }
    };
    let minor: u32 = {
        let mut parts = value.trim_start_matches('v').split('.');
        match (parts.next(), parts.next()) {
            (Some("1"), Some(minor)) => minor.parse().ok()?,
            _ => return None,
        }
    };
    let lapsed = lapsed_support(minor, c.inputs.today)?;
    let location = c
        .inputs
        .script_variables
        .iter()
        .find(|(k, ..)| k == "LOCATION")
        .map_or("<location>".to_owned(), |(_, v, _)| v.clone());
    Some(Finding {
        id: "kubernetes-version-unsupported".to_owned(),
        severity: Severity::Risk,
        subject: format!("{path}:{line}"),
        message: format!(
            "{path} creates the cluster with --kubernetes-version {raw}, which is {value} ({origin}): {lapsed}"
        ),
        consequence: "`az aks create` refuses a version the region no longer offers (one offered only with long-term support needs the Premium tier and --k8s-support-plan AKSLongTermSupport), so the deploy stops before the cluster exists; a cluster already on it runs without AKS support or security patches".to_owned(),
        fix: format!(
            "pick a version with standard support in the region: `az aks get-versions --location {location} --output table` (KubernetesOfficial among its support plans), and set it where the script takes it from ({origin}), or drop --kubernetes-version to get the region's default"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{find, walkthrough};
    use super::super::CheckInputs;
    use super::*;

    /// The sample's shape: deploy.sh sources environmentVariables.sh and passes $K8sversion.
    const SCRIPT: &str = "#!/bin/bash\nsource ./deployment/environmentVariables.sh\naz aks create \\\n--name \"$AKS_CLUSTER_NAME\" \\\n--enable-keda \\\n--kubernetes-version \"$K8sversion\" \\\n";
    const VARIABLES: &str =
        "#!/bin/bash\n#K8s Variables\nexport K8sversion=\"1.30\"\nexport LOCATION=\"westus3\"\n";

    fn inputs(script: &str, sourced: &[(&str, &str)], today: Date) -> CheckInputs {
        let mut inputs = CheckInputs::new(walkthrough());
        inputs.deploy_script = Some(("deployment/infra/deploy.sh".to_owned(), script.to_owned()));
        inputs.sourced_scripts = sourced
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        inputs.today = today;
        inputs
    }

    fn day(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn the_samples_pinned_1_30_is_past_support() {
        let sourced = [("./deployment/environmentVariables.sh", VARIABLES)];
        let f = find(
            &inputs(SCRIPT, &sourced, day(2026, Month::December, 6)),
            "kubernetes-version-unsupported",
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Risk);
        assert_eq!(f.subject, "deployment/infra/deploy.sh:6");
        assert!(
            f.message.contains("--kubernetes-version $K8sversion, which is 1.30 (K8sversion=1.30 at ./deployment/environmentVariables.sh:3)"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains(
                "standard support for 1.30 ended 2025-08-22, and its long-term support 2026-07-31"
            ),
            "{}",
            f.message
        );
        assert!(
            f.fix.contains("az aks get-versions --location <location>"),
            "{}",
            f.fix
        );
        // Between the two ends: standard support is over, only LTS is left.
        let lts = find(
            &inputs(SCRIPT, &sourced, day(2026, Month::January, 10)),
            "kubernetes-version-unsupported",
        )
        .expect("finding");
        assert!(
            lts.message.contains("only long-term support"),
            "{}",
            lts.message
        );
        // Before its end of standard support: fine.
        assert!(find(
            &inputs(SCRIPT, &sourced, day(2025, Month::August, 1)),
            "kubernetes-version-unsupported"
        )
        .is_none());
    }

    #[test]
    fn literal_versions_configuration_and_unknown_ones() {
        let today = day(2026, Month::December, 6);
        let literal = "az aks create --name c --kubernetes-version=1.27.9\n";
        let f = find(
            &inputs(literal, &[], today),
            "kubernetes-version-unsupported",
        )
        .unwrap();
        assert!(f.message.contains("ended long ago"), "{}", f.message);
        // Not set in any file: the configuration's value (the sample's default), named so.
        let mut from_config = inputs(SCRIPT, &[], today);
        from_config.script_variables = vec![
            (
                "K8sversion".into(),
                "1.30".into(),
                "the sample's default".into(),
            ),
            (
                "LOCATION".into(),
                "westus3".into(),
                "the sample's default".into(),
            ),
        ];
        let f = find(&from_config, "kubernetes-version-unsupported").unwrap();
        assert!(
            f.message
                .contains("K8sversion=1.30 from the sample's default"),
            "{}",
            f.message
        );
        assert!(f.fix.contains("--location westus3"), "{}", f.fix);
        // Supported, newer than the calendar, unresolved, or commented out: nothing to say.
        for script in [
            "az aks create --kubernetes-version 1.35\n",
            "az aks create --kubernetes-version 1.40\n",
            "az aks create --kubernetes-version $UNSET\n",
            "# az aks create --kubernetes-version 1.27\n",
            "az aks create --name c\n",
        ] {
            assert!(
                find(
                    &inputs(script, &[], today),
                    "kubernetes-version-unsupported"
                )
                .is_none(),
                "{script}"
            );
        }
    }
}
