//! Load split across the pods of an in-cluster load Job: each pod's slice of the message
//! numbers (unique across pods, together exactly the load), and message numbers written as
//! compressed ranges (`1-5000,5002`) in the reports the pods print.

use std::fmt::Write as _;

/// One pod's share of a load: messages `first ..= first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    pub first: u64,
    pub count: u64,
}

/// A split that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("--parallelism must be at least 1 (pods sending the load)")]
    NoPods,
    #[error("--count {count} is smaller than --parallelism {parallelism}: {} pod(s) would have no message to send; use at most {count} pods or send more messages", parallelism - count)]
    FewerMessagesThanPods { count: u64, parallelism: u64 },
    #[error("slice index {index} is outside 0..{parallelism} (JOB_COMPLETION_INDEX of a Job with {parallelism} completions)")]
    IndexOutOfRange { index: u64, parallelism: u64 },
}

/// Checks that `count` messages can be split over `parallelism` pods, each sending at least one.
pub fn check_split(count: u64, parallelism: u64) -> Result<(), SliceError> {
    if parallelism == 0 {
        return Err(SliceError::NoPods);
    }
    if count < parallelism {
        return Err(SliceError::FewerMessagesThanPods { count, parallelism });
    }
    Ok(())
}

/// Pod `index`'s slice of `count` messages numbered from `first`, split over `parallelism`
/// pods: the first `count % parallelism` pods send one more than the others.
pub fn slice_of(first: u64, count: u64, parallelism: u64, index: u64) -> Result<Slice, SliceError> {
    check_split(count, parallelism)?;
    if index >= parallelism {
        return Err(SliceError::IndexOutOfRange { index, parallelism });
    }
    let base = count / parallelism;
    let extra = count % parallelism;
    Ok(Slice {
        first: first + index * base + index.min(extra),
        count: base + u64::from(index < extra),
    })
}

/// Ascending, distinct `numbers` as ranges: `1-3,5,7-8` (empty for none).
pub fn ranges(numbers: &[u64]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut text = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !text.is_empty() {
            text.push(',');
        }
        let _ = if start == end {
            write!(text, "{start}")
        } else {
            write!(text, "{start}-{end}")
        };
        i += 1;
    }
    text
}

/// A ranges text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a list of message-number ranges (like 1-5000,5002): {text:?}")]
pub struct RangesError {
    pub text: String,
}

/// The numbers `text` (as [`ranges`] writes it) holds, ascending.
pub fn parse_ranges(text: &str) -> Result<Vec<u64>, RangesError> {
    let bad = || RangesError {
        text: text.chars().take(80).collect(),
    };
    let mut numbers = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
            None => (part.parse::<u64>(), part.parse::<u64>()),
        };
        let (Ok(start), Ok(end)) = (start, end) else {
            return Err(bad());
        };
        if end < start || end - start > 10_000_000 {
            return Err(bad());
        }
        numbers.extend(start..=end);
    }
    numbers.sort_unstable();
    numbers.dedup();
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slices_cover_the_load_once_and_differ_by_at_most_one() {
        let slices: Vec<Slice> = (0..3).map(|i| slice_of(1, 10, 3, i).unwrap()).collect();
        assert_eq!(
            slices,
            vec![
                Slice { first: 1, count: 4 },
                Slice { first: 5, count: 3 },
                Slice { first: 8, count: 3 },
            ]
        );
    }

    #[test]
    fn bad_splits_name_the_culprit() {
        assert_eq!(check_split(10, 0), Err(SliceError::NoPods));
        let few = check_split(3, 5).unwrap_err();
        assert!(
            few.to_string()
                .contains("--count 3 is smaller than --parallelism 5"),
            "{few}"
        );
        assert!(
            few.to_string().contains("2 pod(s) would have no message"),
            "{few}"
        );
        let out = slice_of(1, 10, 3, 3).unwrap_err();
        assert!(out.to_string().contains("JOB_COMPLETION_INDEX"), "{out}");
    }

    #[test]
    fn ranges_compress_and_parse_back() {
        assert_eq!(ranges(&[5, 1, 2, 3, 7, 8, 3]), "1-3,5,7-8");
        assert_eq!(ranges(&[]), "");
        assert_eq!(parse_ranges("1-3,5,7-8").unwrap(), vec![1, 2, 3, 5, 7, 8]);
        assert_eq!(parse_ranges("").unwrap(), Vec::<u64>::new());
        for bad in ["1-", "a", "5-3", "1,,x"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_split_is_a_partition(first in 1u64..1000, count in 1u64..5000, pods in 1u64..64) {
            prop_assume!(count >= pods);
            let mut next = first;
            for index in 0..pods {
                let slice = slice_of(first, count, pods, index).unwrap();
                prop_assert_eq!(slice.first, next);
                prop_assert!(slice.count >= 1);
                prop_assert!(slice.count == count / pods || slice.count == count / pods + 1);
                next += slice.count;
            }
            prop_assert_eq!(next, first + count);
        }

        #[test]
        fn ranges_round_trip(numbers in proptest::collection::vec(0u64..500, 0..80)) {
            let mut expected = numbers.clone();
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(parse_ranges(&ranges(&numbers)).unwrap(), expected);
        }
    }
}
