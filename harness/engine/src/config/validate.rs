//! Checks of the values the suite uses, against the naming rules of Azure Storage and
//! Kubernetes, so that a bad name fails before anything is created.

use super::{Config, ConfigError, Source};

/// A check of one value: `Err` says what a valid one looks like.
type Check = fn(&str) -> Result<(), String>;

/// Validates every value that the suite uses directly.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let checks: &[(&str, Check)] = &[
        ("AZURE_QUEUE_NAME", queue_name),
        ("AZURE_TABLE_NAME", table_name),
        ("AZURE_STORAGE_ACCOUNT_NAME", account_name),
        ("AQS_TARGET_NAMESPACE", dns_label),
        ("AQS_TARGET_DEPLOYMENT", dns_label),
        ("SERVICE_ACCOUNT", dns_label),
        ("EDW_STORAGE_MAX_RETRIES", small_count),
        ("EDW_AZURITE_QUEUE_ENDPOINT", http_url_list),
        ("EDW_AZURITE_QUEUE_PARTITIONS", partition_count),
        ("EDW_AZURITE_TABLE_ENDPOINT", http_url),
        ("EDW_QUEUE_ENDPOINT", http_url),
        ("EDW_TABLE_ENDPOINT", http_url),
        ("EDW_TWIN_SCALE", clock_scale),
    ];
    for (key, check) in checks {
        if let Some(value) = config.get(key) {
            check(value).map_err(|reason| ConfigError::Invalid {
                key: (*key).to_owned(),
                origin: config.source(key).cloned().unwrap_or(Source::Default),
                // The value is shown to say what is wrong, unless it is also a secret's value.
                reason: crate::secrets::redact(&format!("{value:?}: {reason}")),
            })?;
        }
    }
    Ok(())
}

/// Azure queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending
/// with a letter or digit.
pub fn queue_name(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    ok.then_some(()).ok_or_else(|| {
        "a queue name is 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit".to_owned()
    })
}

/// Azure table names: 3-63 letters and digits, starting with a letter.
pub fn table_name(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some(())
        .ok_or_else(|| "a table name is 3-63 letters and digits, starting with a letter".to_owned())
}

/// Storage account names: 3-24 lowercase letters and digits.
pub fn account_name(name: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| "a storage account name is 3-24 lowercase letters and digits".to_owned())
}

/// Kubernetes names of namespaces, deployments and service accounts (RFC 1123 labels).
pub fn dns_label(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        "a Kubernetes name is 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit".to_owned()
    })
}

fn small_count(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(n) if n <= 20 => Ok(()),
        _ => Err("expected a whole number from 0 to 20".to_owned()),
    }
}

fn partition_count(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(n) if (1..=16).contains(&n) => Ok(()),
        _ => Err("expected a whole number from 1 to 16".to_owned()),
    }
}

/// The twin's clock scale: a number from 1 (real time) to 1,000.
pub fn clock_scale(value: &str) -> Result<(), String> {
    match value.parse::<f64>() {
        Ok(scale) if (1.0..=1000.0).contains(&scale) => Ok(()),
        _ => Err("expected a number from 1 (real time) to 1000".to_owned()),
    }
}

/// One URL, or several separated by commas (a queue partitioned over several services).
fn http_url_list(value: &str) -> Result<(), String> {
    let urls: Vec<&str> = value.split(',').map(str::trim).collect();
    match urls.iter().find(|url| http_url(url).is_err()) {
        None => Ok(()),
        Some(bad) if urls.len() > 1 => Err(format!(
            "{bad:?} is not an http:// or https:// URL (expected one, or several separated by commas)"
        )),
        Some(_) => http_url(value),
    }
}

fn http_url(value: &str) -> Result<(), String> {
    let ok = (value.starts_with("http://") || value.starts_with("https://"))
        && value.len() > "https://".len();
    ok.then_some(())
        .ok_or_else(|| "expected an http:// or https:// URL".to_owned())
}

#[cfg(test)]
mod run_name_tests {
    use edw_model::naming::{run_queue_name, run_table_name};

    #[test]
    fn run_names_are_valid_and_distinct() {
        let a = run_queue_name("aws2azmsgs");
        let b = run_queue_name("aws2azmsgs");
        assert_ne!(a, b);
        assert!(crate::config::validate_queue_name(&a).is_ok(), "{a}");
        let t = run_table_name("aws2azpmts");
        assert!(crate::config::validate_table_name(&t).is_ok(), "{t}");
    }
}
