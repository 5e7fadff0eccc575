//! What each sentinel says about the master ([`Census`]), for `redline status`, and the
//! one-line explanation of a failed lookup built from it: which sentinels did not answer,
//! refused the password, or know no such master, or that the master they name refused its
//! credentials. No explanation quotes a password.

use std::time::Duration;

use redis::{AsyncConnectionConfig, ConnectionInfo, RedisError};
use serde::Serialize;

use super::url::{join_host_port, SentinelUrl};

/// What one sentinel says about the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelView {
    /// The sentinel, `host:port`.
    pub address: String,
    /// The master's address it gives (`SENTINEL GET-MASTER-ADDR-BY-NAME`), `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Why it gave none: no answer, refused credentials, or no master by that name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What every sentinel says about the master, for `redline status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Census {
    /// The master name.
    pub master_name: String,
    /// One per sentinel of the URL, in its order.
    pub sentinels: Vec<SentinelView>,
}

impl Census {
    /// The distinct master addresses the sentinels give, sorted.
    pub fn masters(&self) -> Vec<&str> {
        let mut masters: Vec<&str> = self
            .sentinels
            .iter()
            .filter_map(|s| s.master.as_deref())
            .collect();
        masters.sort_unstable();
        masters.dedup();
        masters
    }

    /// True when sentinels that answered name different masters.
    pub fn disagree(&self) -> bool {
        self.masters().len() > 1
    }

    /// How many sentinels named a master.
    pub fn answered(&self) -> usize {
        self.sentinels.iter().filter(|s| s.master.is_some()).count()
    }
}

/// Asks every sentinel of `url` (connected as `sentinels` say) at once for the master's
/// address (`SENTINEL GET-MASTER-ADDR-BY-NAME`), each on a connection of its own, bounded
/// by `timeout` to connect and to answer.
pub(super) async fn take(
    url: &SentinelUrl,
    sentinels: &[ConnectionInfo],
    timeout: Duration,
) -> Census {
    let mut asks = tokio::task::JoinSet::new();
    for (index, info) in sentinels.iter().enumerate() {
        let info = info.clone();
        let name = url.master_name.clone();
        asks.spawn(async move { (index, ask(info, &name, timeout).await) });
    }
    let mut views: Vec<SentinelView> = url
        .sentinels
        .iter()
        .map(|(host, port)| SentinelView {
            address: join_host_port(host, *port),
            master: None,
            error: Some("no answer".into()),
        })
        .collect();
    while let Some(joined) = asks.join_next().await {
        if let Ok((index, answer)) = joined {
            let view = &mut views[index];
            match answer {
                Ok(Some(master)) => {
                    view.master = Some(master);
                    view.error = None;
                }
                Ok(None) => {
                    view.error = Some(format!("knows no master named '{}'", url.master_name));
                }
                Err(error) => view.error = Some(error),
            }
        }
    }
    Census {
        master_name: url.master_name.clone(),
        sentinels: views,
    }
}

/// One sentinel's answer: the master's `host:port`, `None` when it knows no such master, or
/// why it did not answer.
async fn ask(
    info: ConnectionInfo,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let client = redis::Client::open(info).map_err(|e| super::super::describe(&e))?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| super::super::describe(&e))?;
    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query_async(&mut conn)
        .await
        .map_err(|e| super::super::describe(&e))?;
    Ok(reply.map(|(host, port)| join_host_port(&host, port)))
}

/// True for an error that says the credentials were refused.
fn is_auth(text: &str) -> bool {
    [
        "WRONGPASS",
        "NOAUTH",
        "invalid password",
        "invalid username-password",
        "AuthenticationFailed",
        "authentication failed",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Why no master was found, from what each sentinel said and what redis-rs met (`None`: it
/// timed out).
pub(super) fn explain(census: &Census, error: Option<&RedisError>) -> String {
    let masters = census.masters();
    if masters.is_empty() {
        let errors: Vec<&str> = census
            .sentinels
            .iter()
            .filter_map(|s| s.error.as_deref())
            .collect();
        if let Some(refused) = errors.iter().find(|e| is_auth(e)) {
            return format!(
                "the sentinels refuse the credentials ({refused}); give the sentinels' password as ?sentinel_password=… (and ?sentinel_username=… for an ACL user) in the URL"
            );
        }
        if census.sentinels.iter().all(|s| {
            s.error
                .as_deref()
                .is_some_and(|e| e.starts_with("knows no master"))
        }) {
            return format!(
                "no sentinel knows a master named '{}' (the name of `sentinel monitor`)",
                census.master_name
            );
        }
        let each: Vec<String> = census
            .sentinels
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    s.address,
                    s.error.as_deref().unwrap_or("no answer")
                )
            })
            .collect();
        return format!("no sentinel answers ({})", each.join("; "));
    }
    let named = masters.join(" or ");
    match error {
        None => format!("the sentinels name {named}, which did not answer in time"),
        Some(error) => {
            let text = super::super::describe(error);
            if is_auth(&text) || error.kind() == redis::ErrorKind::AuthenticationFailed {
                format!(
                    "the master the sentinels name, {named}, refuses the credentials ({text}); USER:PASS before '@' in the URL are the master's"
                )
            } else if error.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
                format!("the sentinels name {named} but flag it down, or it is not a master yet: a failover is under way")
            } else {
                format!("the master the sentinels name, {named}, fails: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(views: &[(Option<&str>, Option<&str>)]) -> Census {
        Census {
            master_name: "mymaster".into(),
            sentinels: views
                .iter()
                .enumerate()
                .map(|(i, (master, error))| SentinelView {
                    address: format!("127.0.0.1:{}", 26379 + i),
                    master: master.map(str::to_string),
                    error: error.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn disagreement_is_between_sentinels_that_answered() {
        let agree = census(&[
            (Some("a:1"), None),
            (Some("a:1"), None),
            (None, Some("no answer")),
        ]);
        assert!(!agree.disagree());
        assert_eq!(agree.answered(), 2);
        let split = census(&[
            (Some("a:1"), None),
            (Some("b:2"), None),
            (Some("a:1"), None),
        ]);
        assert!(split.disagree());
        assert_eq!(split.masters(), ["a:1", "b:2"]);
    }

    #[test]
    fn a_failed_lookup_says_which_side_refused() {
        let refused = census(&[
            (
                None,
                Some("WRONGPASS invalid username-password pair or user is disabled."),
            ),
            (None, Some("Connection refused (os error 111)")),
        ]);
        let reason = explain(&refused, None);
        assert!(
            reason.starts_with("the sentinels refuse the credentials"),
            "{reason}"
        );
        assert!(reason.contains("sentinel_password"), "{reason}");

        let down = census(&[
            (None, Some("Connection refused")),
            (None, Some("timed out")),
        ]);
        assert_eq!(
            explain(&down, None),
            "no sentinel answers (127.0.0.1:26379: Connection refused; 127.0.0.1:26380: timed out)"
        );

        let unknown = census(&[(None, Some("knows no master named 'mymaster'"))]);
        assert!(explain(&unknown, None).starts_with("no sentinel knows a master named 'mymaster'"));

        let master = census(&[(Some("10.0.0.1:6379"), None)]);
        let wrong = RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS x"));
        let reason = explain(&master, Some(&wrong));
        assert!(
            reason.contains("10.0.0.1:6379, refuses the credentials"),
            "{reason}"
        );
        assert!(reason.contains("master's"), "{reason}");
    }
}
