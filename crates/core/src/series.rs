//! The series key of a metric and the stable hash that picks its partition.
//!
//! A series is its measurement plus its tags sorted by key; [`crate::line`] writes the
//! normalised line with sorted tags, so the key is the line's prefix up to the first
//! unescaped space. The hash is 64-bit FNV-1a: stable across processes, versions and
//! machines (unlike `std`'s randomly seeded hasher), so a series always lands in one
//! partition and keeps its order there.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The partition (`0..partitions`) of the series `key`; always 0 with one partition.
pub fn partition(key: &str, partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    // Both sides fit: the remainder is below `partitions`, a usize.
    (hash(key.as_bytes()) % partitions as u64) as usize
}

/// The series key of a line: its prefix up to the first unescaped space.
///
/// For a line [`crate::line`] normalised (tags sorted) this equals
/// [`crate::line::Metric::series_key`] without parsing the line again; for anything else it
/// is the line's measurement-and-tags text as written. A line without a space is all key.
pub fn key_of_line(lp: &str) -> &str {
    let bytes = lp.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b' ' => return &lp[..i],
            _ => i += 1,
        }
    }
    lp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_of_line_stops_at_the_first_unescaped_space() {
        assert_eq!(key_of_line("cpu,a=1,b=2 v=1 5"), "cpu,a=1,b=2");
        assert_eq!(
            key_of_line(r#"my\ meas,t\,k=v\=1 s="a b" 1"#),
            r"my\ meas,t\,k=v\=1"
        );
        assert_eq!(key_of_line("bare"), "bare");
        assert_eq!(key_of_line("ends\\"), "ends\\");
        let line = "weather,city=S\\ Paulo,zone=b\\=c temp=21.5 1";
        let parsed = crate::line::parse(line, crate::line::Precision::Nanoseconds, 0);
        assert_eq!(key_of_line(line), parsed.metric(0).series_key());
    }

    #[test]
    fn hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        let p = partition("cpu,host=a", 4);
        assert!(p < 4);
        assert_eq!(p, partition("cpu,host=a", 4));
        assert_eq!(partition("cpu,host=a", 1), 0);
        let used: std::collections::BTreeSet<_> = (0..100)
            .map(|i| partition(&format!("cpu,host=h{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4, "100 series should reach every partition");
    }
}
