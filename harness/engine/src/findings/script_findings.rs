//! `role-assignment-scope`: the sample's deploy.sh looks the storage account up in
//! `$STORAGE_RG_NAME`, which it never sets, so the Storage Queue/Table Data Contributor role
//! assignments get no valid scope.

use super::{Checked, Finding, Severity};

const VARIABLE: &str = "STORAGE_RG_NAME";

/// The role names the sample assigns on the storage account.
const ROLES: &[&str] = &[
    "Storage Queue Data Contributor",
    "Storage Table Data Contributor",
];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The part of `line` before a `#` comment (a `#` at the start or after a blank).
pub(super) fn code(line: &str) -> &str {
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if c == '#' && previous.is_whitespace() {
            return &line[..i];
        }
        previous = c;
    }
    line
}

/// True when `line` expands the variable: `$STORAGE_RG_NAME` or `${STORAGE_RG_NAME}`.
fn uses(line: &str) -> bool {
    let braced = format!("${{{VARIABLE}}}");
    let plain = format!("${VARIABLE}");
    line.contains(&braced)
        || line.match_indices(&plain).any(|(i, _)| {
            !line[i + plain.len()..]
                .chars()
                .next()
                .is_some_and(is_name_char)
        })
}

/// True when `line` sets the variable: `STORAGE_RG_NAME=` (also after `export`, `local`,
/// `declare`, `;` or `&&`) or `read … STORAGE_RG_NAME`.
fn assigns(line: &str) -> bool {
    let assignment = format!("{VARIABLE}=");
    let direct = line.match_indices(&assignment).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| is_name_char(c) || c == '$')
    });
    let read = line
        .split([';', '&', '|'])
        .map(str::split_whitespace)
        .any(|mut words| words.next() == Some("read") && words.any(|w| w == VARIABLE));
    direct || read
}

/// `role-assignment-scope` (Risk, only with a deploy script).
pub(super) fn role_assignment_scope(c: &Checked<'_>) -> Option<Finding> {
    let (path, text) = c.inputs.deploy_script.as_ref()?;
    let lines: Vec<&str> = text.lines().map(code).collect();
    if lines.iter().any(|l| assigns(l)) {
        return None;
    }
    let used: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| uses(l))
        .map(|(i, _)| i + 1)
        .collect();
    let first = *used.first()?;
    let roles: Vec<&str> = ROLES.iter().copied().filter(|r| text.contains(r)).collect();
    let roles = if roles.is_empty() {
        ROLES.join(" and ")
    } else {
        roles.join(" and ")
    };
    let lines_text = used
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let burst = c.burst_or_full();
    Some(Finding {
        id: "role-assignment-scope".to_owned(),
        severity: Severity::Risk,
        subject: format!("{path}:{first}"),
        message: format!(
            "{path} uses ${VARIABLE} (line{} {lines_text}) but never sets it (no \
             {VARIABLE}=, export {VARIABLE}= or read {VARIABLE}): the storage account is looked \
             up in an empty resource group",
            if used.len() > 1 { "s" } else { "" }
        ),
        consequence: format!(
            "the storage account id comes back empty, so the role assignments ({roles}) get no \
             valid scope and the workload identity cannot use the queue or the table: KEDA's \
             scaler and the consumer are refused (403) and none of a burst of {burst} messages \
             is processed (the deploy may still look successful)"
        ),
        fix: format!(
            "set {VARIABLE} before line {first} (e.g. {VARIABLE}=$RESOURCE_GROUP, the group the \
             storage account is created in), or pass --resource-group $RESOURCE_GROUP there"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{find, walkthrough};
    use super::super::{CheckInputs, Severity};
    use super::*;

    const SAMPLE: &str = r#"#!/bin/bash
source ./environmentVariables.sh
RESOURCE_GROUP="rg-$LOCAL_NAME-$SUFFIX"
az group create --name $RESOURCE_GROUP --location $LOCATION
# look the account up
STORAGE_ACCOUNT_ID=$(az storage account show --name $AZURE_STORAGE_ACCOUNT_NAME --resource-group $STORAGE_RG_NAME --query id -o tsv)
az role assignment create --role "Storage Queue Data Contributor" --assignee $PRINCIPAL --scope $STORAGE_ACCOUNT_ID
az role assignment create --role "Storage Table Data Contributor" --assignee $PRINCIPAL --scope "${STORAGE_ACCOUNT_ID}" # ${STORAGE_RG_NAME}
"#;

    fn with_script(text: &str) -> CheckInputs {
        let mut inputs = CheckInputs::new(walkthrough());
        inputs.deploy_script = Some(("deployment/infra/deploy.sh".to_owned(), text.to_owned()));
        inputs
    }

    #[test]
    fn the_samples_unset_variable_is_found_with_its_line() {
        let f = find(&with_script(SAMPLE), "role-assignment-scope").expect("finding");
        assert_eq!(f.severity, Severity::Risk);
        assert_eq!(f.subject, "deployment/infra/deploy.sh:6");
        assert!(f.message.contains("(line 6)"), "{}", f.message);
        assert!(
            f.consequence
                .contains("Storage Queue Data Contributor and Storage Table Data Contributor"),
            "{}",
            f.consequence
        );
    }

    #[test]
    fn an_assignment_in_any_form_clears_it() {
        for set in [
            "STORAGE_RG_NAME=$RESOURCE_GROUP",
            "export STORAGE_RG_NAME=\"$RESOURCE_GROUP\"",
            "read -r STORAGE_RG_NAME",
            "az login && STORAGE_RG_NAME=rg",
        ] {
            let text = SAMPLE.replacen("# look the account up", set, 1);
            assert!(
                find(&with_script(&text), "role-assignment-scope").is_none(),
                "{set}"
            );
        }
        assert!(find(&CheckInputs::new(walkthrough()), "role-assignment-scope").is_none());
    }

    #[test]
    fn uses_and_assignments_are_told_apart() {
        assert!(uses("x ${STORAGE_RG_NAME} y") && uses("--resource-group $STORAGE_RG_NAME"));
        assert!(!uses("$STORAGE_RG_NAME_OTHER") && !uses("STORAGE_RG_NAME=1"));
        assert!(assigns("  export STORAGE_RG_NAME=x") && assigns("read a STORAGE_RG_NAME"));
        assert!(!assigns("MY_STORAGE_RG_NAME=x") && !assigns("echo $STORAGE_RG_NAME"));
        assert_eq!(code("a # ${STORAGE_RG_NAME}"), "a ");
        assert_eq!(code("x=\"a#b\""), "x=\"a#b\"");
        // Commented-out uses are not uses.
        let text = "# --resource-group $STORAGE_RG_NAME\necho ok\n";
        assert!(find(&with_script(text), "role-assignment-scope").is_none());
    }
}
