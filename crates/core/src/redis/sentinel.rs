//! Redis under Sentinel: finding the master through the sentinels, connecting to it only
//! once it says it is the master, and following it when it changes.
//!
//! The lookup is redis-rs' (`redis::sentinel::Sentinel::async_master_for`: it asks the
//! sentinels in order, `SENTINEL MASTERS`, skips a master they flag down, and checks `ROLE`
//! on the address they name). What redis-rs does not do, this module adds:
//! - it checks `ROLE` again on the very connection it hands out (redis-rs checks it on a
//!   connection of its own, then forgets it): no connection to a node that was demoted in
//!   between is ever handed out;
//! - pooled connections that follow the master ([`pool`]): a connection that meets a sign
//!   that the master moved (`READONLY`, a dropped or refused connection) makes every
//!   connection of its generation be dropped instead of reused, and new ones are made through
//!   the sentinels again; redis-rs' and deadpool-redis' Sentinel pools recycle with `PING`
//!   alone, which a demoted master still answers;
//! - a one-line explanation when no master can be found (which sentinels did not answer, or
//!   refused the password, or know no such master, or that the master refused its
//!   credentials), and the [`Census`] of what each sentinel says, for `redline status`.
//!
//! Invariants:
//! - every connection handed out was answered `ROLE` → `master` on itself;
//! - the master's credentials go to the master only, the sentinels' to the sentinels only;
//!   neither is ever logged or put in an error.
//!
//! <https://redis.io/docs/latest/develop/reference/sentinel-clients/>

mod census;
pub mod pool;
mod url;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelNodeConnectionInfo;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, Role, TlsMode,
};

pub use self::census::{Census, SentinelView};
pub use self::url::{is_sentinel, redact, SentinelUrl, UrlError, DEFAULT_PORT};

/// No master could be had through the sentinels. Messages are one line and hold no secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sentinels named no usable master.
    #[error("cannot find the Redis master '{master}' through the sentinels {sentinels}: {reason}")]
    Lookup {
        /// The master name.
        master: String,
        /// The sentinels asked, `host:port,…`.
        sentinels: String,
        /// Why, from what each sentinel said.
        reason: String,
    },
    /// The master the sentinels named could not be connected to.
    #[error("cannot connect to the Redis master '{master}' at {address}: {}", super::describe(.reason))]
    Connect {
        /// The master name.
        master: String,
        /// Its address.
        address: String,
        /// What redis-rs said.
        reason: RedisError,
    },
    /// The node the sentinels named is not a master (any more): a failover is under way.
    #[error("{address}, named by the sentinels as master '{master}', answers ROLE as a {role}: a failover is under way")]
    NotMaster {
        /// The master name.
        master: String,
        /// The node's address.
        address: String,
        /// What it is instead (`replica`, `sentinel`).
        role: &'static str,
    },
}

/// Finds the master through the sentinels and connects to it; shared by a pool's
/// connections (one lookup at a time), or made for one dedicated connection.
pub(crate) struct Resolver {
    url: SentinelUrl,
    /// Each sentinel's address, TLS and credentials (`sentinel_username`/`_password`).
    sentinels: Vec<ConnectionInfo>,
    /// redis-rs' client of the sentinels; it caches one connection per sentinel.
    lookup: tokio::sync::Mutex<redis::sentinel::Sentinel>,
    /// The master's credentials, database and TLS.
    node: SentinelNodeConnectionInfo,
    /// Bound on connecting to one node (sentinel or master).
    connect_timeout: Duration,
    /// The master last connected to, to log a change once.
    last: Mutex<Option<String>>,
    /// The last explanation of a failed lookup and when it was made, reused for
    /// [`EXPLANATION_TTL`]: a pool whose connections all fail at once (a failover) asks
    /// every sentinel once, not once per connection.
    explained: Mutex<Option<(Instant, String)>>,
}

/// How long the explanation of a failed lookup is reused.
const EXPLANATION_TTL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver for `url`; connects to nothing yet.
    ///
    /// # Errors
    /// When redis-rs refuses the sentinels' connection settings.
    pub(crate) fn new(url: SentinelUrl, connect_timeout: Duration) -> Result<Self, RedisError> {
        let sentinels: Vec<ConnectionInfo> = url
            .sentinels
            .iter()
            .map(|(host, port)| {
                let addr = if url.tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                let mut redis = RedisConnectionInfo::default();
                if let Some(user) = &url.sentinel_username {
                    redis = redis.set_username(user);
                }
                if let Some(password) = &url.sentinel_password {
                    redis = redis.set_password(password.expose());
                }
                addr.into_connection_info()
                    .map(|info| info.set_redis_settings(redis))
            })
            .collect::<Result<_, _>>()?;
        let lookup = redis::sentinel::Sentinel::build(sentinels.clone())?;
        let mut master = RedisConnectionInfo::default().set_db(url.db);
        if let Some(user) = &url.username {
            master = master.set_username(user);
        }
        if let Some(password) = &url.password {
            master = master.set_password(password.expose());
        }
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(master);
        if url.tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        Ok(Self {
            url,
            sentinels,
            lookup: tokio::sync::Mutex::new(lookup),
            node,
            connect_timeout,
            last: Mutex::new(None),
            explained: Mutex::new(None),
        })
    }

    /// The master name.
    pub(crate) fn master_name(&self) -> &str {
        &self.url.master_name
    }

    /// How long one lookup may take: the sentinels are asked three at a time, each with
    /// redis-rs' own bounds (1 s to connect, 0.5 s per reply), then the master's `ROLE`.
    fn lookup_timeout(&self) -> Duration {
        (self.connect_timeout * 3).max(Duration::from_secs(3))
    }

    /// Asks the sentinels for the master, connects to it with `config`, and checks that it
    /// answers `ROLE` as master on that connection.
    ///
    /// # Errors
    /// [`Error::Lookup`] when the sentinels name no master that answers (with the reason),
    /// [`Error::Connect`] or [`Error::NotMaster`] for the node they name.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<(MultiplexedConnection, String), Error> {
        let found = {
            let mut lookup = self.lookup.lock().await;
            tokio::time::timeout(
                self.lookup_timeout(),
                lookup.async_master_for(&self.url.master_name, Some(&self.node)),
            )
            .await
        };
        let client = match found {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(self.lookup_error(Some(&error)).await),
            Err(_) => return Err(self.lookup_error(None).await),
        };
        let address = client.get_connection_info().addr().to_string();
        let connect_error = |reason| Error::Connect {
            master: self.url.master_name.clone(),
            address: address.clone(),
            reason,
        };
        let mut conn = client
            .get_multiplexed_async_connection_with_config(config)
            .await
            .map_err(connect_error)?;
        let role: Role = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(connect_error)?;
        let role = match role {
            Role::Primary { .. } => None,
            Role::Replica { .. } => Some("replica"),
            Role::Sentinel { .. } => Some("sentinel"),
            _ => Some("node of another role"),
        };
        if let Some(role) = role {
            return Err(Error::NotMaster {
                master: self.url.master_name.clone(),
                address,
                role,
            });
        }
        self.note_master(&address);
        Ok((conn, address))
    }

    /// Logs a change of master once (the first connection at debug).
    fn note_master(&self, address: &str) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match last.as_deref() {
            Some(previous) if previous == address => return,
            Some(previous) => tracing::info!(master = %address, %previous,
                name = %self.url.master_name, "The Redis master changed; connections follow it."),
            None => tracing::debug!(master = %address, name = %self.url.master_name,
                "Connected to the Redis master the sentinels name."),
        }
        *last = Some(address.to_string());
    }

    /// The error for a lookup that failed with `error` (`None`: it timed out), explained by
    /// asking each sentinel what it knows.
    async fn lookup_error(&self, error: Option<&RedisError>) -> Error {
        let recent = {
            let explained = self.explained.lock().unwrap_or_else(|p| p.into_inner());
            explained
                .as_ref()
                .filter(|(at, _)| at.elapsed() < EXPLANATION_TTL)
                .map(|(_, reason)| reason.clone())
        };
        let reason = match recent {
            Some(reason) => reason,
            None => {
                let reason = census::explain(&self.census().await, error);
                *self.explained.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), reason.clone()));
                reason
            }
        };
        Error::Lookup {
            master: self.url.master_name.clone(),
            sentinels: self.url.sentinel_list(),
            reason,
        }
    }

    /// Asks every sentinel at once for the master's address
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`), each on a connection of its own.
    pub(crate) async fn census(&self) -> Census {
        census::take(&self.url, &self.sentinels, self.connect_timeout).await
    }
}
