//! Run-scoped resource names: a short random suffix so that concurrent runs and tests never
//! share a queue or table, valid under Azure's queue and table naming rules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Six lowercase letters and digits, different for every call in every process.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spreads the bits so that close inputs give unrelated names.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|i| ALPHABET[((x >> (i * 6)) % 36) as usize] as char)
        .collect()
}

/// A queue name `<base>-<suffix>` (the base is cut so the name fits 63 characters).
pub fn run_queue_name(base: &str) -> String {
    run_queue_name_for(base, &unique_suffix())
}

/// The queue name `<base>-<run id>` of a run (the base is cut so the name fits 63 characters).
pub fn run_queue_name_for(base: &str, run_id: &str) -> String {
    let base: String = base.chars().take(50).collect();
    format!("{}-{run_id}", base.trim_end_matches('-'))
}

/// A table name `<base><suffix>` (letters and digits only).
pub fn run_table_name(base: &str) -> String {
    run_table_name_for(base, &unique_suffix())
}

/// The table name `<base><run id>` of a run (letters and digits only).
pub fn run_table_name_for(base: &str, run_id: &str) -> String {
    let base: String = base
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(50)
        .collect();
    format!("{base}{run_id}")
}

/// A Kubernetes object name `<base>-<run id>`, the base cut so that the name stays a valid
/// DNS label (63 characters at most, no trailing `-` before the id).
pub fn with_run_id(base: &str, run_id: &str) -> String {
    let room = 63usize.saturating_sub(run_id.len() + 1);
    let base: String = base.chars().take(room).collect();
    format!("{}-{run_id}", base.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_with_a_run_id_stay_dns_labels() {
        assert_eq!(with_run_id("aqs-demo", "k3x9q2"), "aqs-demo-k3x9q2");
        let long = with_run_id(&"a".repeat(80), "k3x9q2");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-k3x9q2"));
        assert_eq!(with_run_id("edw-", "k3x9q2"), "edw-k3x9q2");
        assert_eq!(
            run_queue_name_for("aws2azmsgs", "k3x9q2"),
            "aws2azmsgs-k3x9q2"
        );
        assert_eq!(
            run_table_name_for("aws2az-pmts", "k3x9q2"),
            "aws2azpmtsk3x9q2"
        );
    }
}
