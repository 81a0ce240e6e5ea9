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
    let base: String = base.chars().take(50).collect();
    format!("{}-{}", base.trim_end_matches('-'), unique_suffix())
}

/// A table name `<base><suffix>` (letters and digits only).
pub fn run_table_name(base: &str) -> String {
    let base: String = base
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(50)
        .collect();
    format!("{base}{}", unique_suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_distinct() {
        let a = run_queue_name("aws2azmsgs");
        let b = run_queue_name("aws2azmsgs");
        assert_ne!(a, b);
        assert!(crate::config::validate_queue_name(&a).is_ok(), "{a}");
        let t = run_table_name("aws2azpmts");
        assert!(crate::config::validate_table_name(&t).is_ok(), "{t}");
    }
}
