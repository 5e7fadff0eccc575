//! Every Redis key name redline uses; no other module builds one.
//!
//! With one partition the metric stream is `<stream>` (default `redline:metrics`); with
//! `N > 1` partitions it is `<stream>:{0}` … `<stream>:{N-1}`, the braces being Redis
//! Cluster hash tags so partitions spread over slots. Dead letters live in `<stream>:dlq`, the
//! consumers' write rates in the hash `<stream>:rates`.

/// The default base name of the metric stream.
pub const DEFAULT_STREAM: &str = "redline:metrics";
/// Suffix of the dead-letter stream.
pub const DLQ_SUFFIX: &str = ":dlq";
/// Suffix of the hash of consumer write rates.
pub const RATES_SUFFIX: &str = ":rates";

/// The key names of one redline deployment: its metric stream partitions and its DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeys {
    base: String,
    partitions: Vec<String>,
}

impl StreamKeys {
    /// Keys for `base` split into `partitions` streams (0 is taken as 1).
    pub fn new(base: &str, partitions: u32) -> Self {
        let partitions = if partitions <= 1 {
            vec![base.to_string()]
        } else {
            (0..partitions).map(|i| format!("{base}:{{{i}}}")).collect()
        };
        Self {
            base: base.to_string(),
            partitions,
        }
    }

    /// The base name as configured.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The stream key of partition `index` (`index < self.len()`).
    pub fn partition(&self, index: usize) -> &str {
        &self.partitions[index]
    }

    /// Every metric stream key, in partition order.
    pub fn partitions(&self) -> &[String] {
        &self.partitions
    }

    /// How many partitions there are (at least 1).
    pub fn count(&self) -> usize {
        self.partitions.len()
    }

    /// The dead-letter stream.
    pub fn dlq(&self) -> String {
        format!("{}{DLQ_SUFFIX}", self.base)
    }

    /// The hash where each consumer process reports its write rate and limit, for
    /// `redline status`.
    pub fn rates(&self) -> String {
        format!("{}{RATES_SUFFIX}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_is_the_bare_stream() {
        let keys = StreamKeys::new("redline:metrics", 1);
        assert_eq!(keys.partitions(), ["redline:metrics"]);
        assert_eq!(keys.dlq(), "redline:metrics:dlq");
        assert_eq!(keys.rates(), "redline:metrics:rates");
    }

    #[test]
    fn partitions_use_cluster_hash_tags() {
        let keys = StreamKeys::new("m", 3);
        assert_eq!(keys.partitions(), ["m:{0}", "m:{1}", "m:{2}"]);
    }
}
