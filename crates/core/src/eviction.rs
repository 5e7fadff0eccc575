//! Redis must never evict a stream: an evicted stream is every buffered metric lost with
//! no error anywhere. Producer and consumer refuse to start when Redis's `maxmemory-policy`
//! could evict keys without a TTL (the `allkeys-*` policies), unless the operator says
//! `--allow-eviction`. The `volatile-*` policies only evict keys with a TTL, which streams
//! never have, and `noeviction` makes a full Redis refuse writes, which the producer turns
//! into 503.
//!
//! See <https://redis.io/docs/latest/develop/reference/eviction/>.

use redis::aio::ConnectionLike;

/// Redis is configured to evict keys that may be our streams.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Redis maxmemory-policy is '{policy}', which can evict the metric streams and lose buffered metrics; set it to noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), or pass --allow-eviction to accept the risk")]
pub struct EvictionRisk {
    /// The configured policy.
    pub policy: String,
}

/// True for policies that may evict a key without a TTL.
pub fn may_evict_streams(policy: &str) -> bool {
    policy.starts_with("allkeys-")
}

/// Reads `maxmemory-policy`. `Ok(None)` when Redis does not say (CONFIG disabled or
/// renamed, as managed services do): nothing can be checked then.
///
/// # Errors
/// Redis unreachable.
pub async fn policy<C: ConnectionLike + Send>(conn: &mut C) -> redis::RedisResult<Option<String>> {
    let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    match reply {
        Ok(pair) => Ok(pair.into_iter().nth(1)),
        Err(e) if crate::redis::is_transient(&e) => Err(e),
        Err(_) => Ok(None),
    }
}

/// `Err(EvictionRisk)` when `policy` may evict streams.
pub fn check(policy: &str) -> Result<(), EvictionRisk> {
    if may_evict_streams(policy) {
        Err(EvictionRisk {
            policy: policy.to_string(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allkeys_policies_are_refused() {
        for safe in [
            "noeviction",
            "volatile-lru",
            "volatile-lfu",
            "volatile-ttl",
            "volatile-random",
        ] {
            assert!(check(safe).is_ok(), "{safe}");
        }
        for risky in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            let err = check(risky).unwrap_err().to_string();
            assert!(
                err.contains(risky) && err.contains("--allow-eviction"),
                "{err}"
            );
        }
    }
}
