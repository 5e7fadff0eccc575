//! The `redis+sentinel://` URL: parsing, what each part applies to, and its masked form.
//!
//! ```text
//! redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[/DB][?sentinel_username=U&sentinel_password=P]
//! rediss+sentinel://…   (TLS to the sentinels and to the master)
//! ```
//!
//! Invariants:
//! - `USER:PASS` and the database are the master's (data nodes'); the sentinels get only
//!   `sentinel_username`/`sentinel_password`, never the master's password;
//! - the passwords are [`Secret`]s, so `Debug` of a parsed URL never shows them, and
//!   [`redact`] masks every query value and the password of a URL given as text, parseable
//!   or not (a mistyped `sentinel_pasword=…` is masked too);
//! - every error names the part that is wrong and never quotes a password.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::secret::Secret;

/// The scheme of a Sentinel URL without TLS.
const SCHEME: &str = "redis+sentinel";

/// The scheme of a Sentinel URL with TLS to the sentinels and the master.
const SCHEME_TLS: &str = "rediss+sentinel";

/// The port a sentinel listens on when the URL names none.
pub const DEFAULT_PORT: u16 = 26379;

/// The query parameters a Sentinel URL may carry.
const PARAMETERS: [&str; 2] = ["sentinel_username", "sentinel_password"];

/// A parsed `redis+sentinel://` or `rediss+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// TLS (`rediss+sentinel://`) to the sentinels and to the master.
    pub tls: bool,
    /// Each sentinel's host and port, in the order given (asked in that order).
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels know the master by (`sentinel monitor <name> …`).
    pub master_name: String,
    /// The master's ACL user (`USER` of `USER:PASS@`).
    pub username: Option<String>,
    /// The master's password (`PASS` of `USER:PASS@`, or `:PASS@`).
    pub password: Option<Secret>,
    /// The database on the master (`/MASTER_NAME/DB`), 0 by default.
    pub db: i64,
    /// The sentinels' ACL user (`sentinel_username=`).
    pub sentinel_username: Option<String>,
    /// The sentinels' password (`sentinel_password=`, their `requirepass`).
    pub sentinel_password: Option<Secret>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("tls", &self.tls)
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("db", &self.db)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &self.sentinel_password)
            .finish()
    }
}

/// What is wrong with a Sentinel URL. No variant holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No sentinel address before the master name.
    #[error("it names no sentinel: expected HOST:PORT[,HOST:PORT…] after '://'")]
    NoSentinel,
    /// A sentinel address that is not `HOST[:PORT]`. Named by position, not quoted: in a
    /// URL whose password holds an unencoded `/` or `?`, the "address" holds the password.
    #[error("sentinel address {position} is not HOST:PORT: {reason}")]
    Sentinel {
        /// Its position in the list, from 1.
        position: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing after the sentinels.
    #[error(
        "it names no master: add /MASTER_NAME after the sentinels (the name in `sentinel monitor`)"
    )]
    NoMasterName,
    /// A path segment after the master name that is not a database number.
    #[error("'{0}' after the master name is not a database number")]
    Db(String),
    /// A query parameter this URL does not take.
    #[error("unknown parameter '{name}' (known: {})", PARAMETERS.join(", "))]
    UnknownParameter {
        /// The parameter's name, as written.
        name: String,
    },
    /// A query part without `=` (its text is not quoted: it may be a piece of a password
    /// holding an unencoded `&`).
    #[error("a parameter has no '=' (expected name=value; percent-encode '&' in values as %26)")]
    NoValue,
    /// A query parameter given twice.
    #[error("parameter '{0}' is given twice")]
    DuplicateParameter(&'static str),
    /// A part whose percent-encoding does not decode to UTF-8.
    #[error("the {0} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    /// `--redis-cluster` together with a Sentinel URL.
    #[error("it cannot be used with --redis-cluster: Sentinel watches one master, Redis Cluster fails over by itself")]
    WithCluster,
}

/// True when `url` has a Sentinel scheme (`redis+sentinel://`, `rediss+sentinel://`).
pub fn is_sentinel(url: &str) -> bool {
    scheme(url).is_some()
}

/// `Some(tls)` for a Sentinel scheme, `None` for any other URL.
fn scheme(url: &str) -> Option<bool> {
    let (scheme, _) = url.trim().split_once("://")?;
    if scheme.eq_ignore_ascii_case(SCHEME) {
        Some(false)
    } else if scheme.eq_ignore_ascii_case(SCHEME_TLS) {
        Some(true)
    } else {
        None
    }
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` or `rediss+sentinel://` URL.
    ///
    /// # Errors
    /// [`UrlError`] naming the part that is wrong; `None`-scheme URLs are the caller's to
    /// route elsewhere (see [`is_sentinel`]), and give [`UrlError::NoSentinel`] here.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        let tls = scheme(url).ok_or(UrlError::NoSentinel)?;
        let (_, rest) = url.split_once("://").ok_or(UrlError::NoSentinel)?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        // The credentials end at the last '@' (a password may hold an unencoded '/').
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let sentinels = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .enumerate()
            .map(|(i, host)| address(i + 1, host))
            .collect::<Result<Vec<_>, _>>()?;
        if sentinels.is_empty() {
            return Err(UrlError::NoSentinel);
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, pass) = match userinfo.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (userinfo, None),
                };
                let user = decode(user, "user name")?;
                let pass = pass
                    .map(|p| decode(p, "password"))
                    .transpose()?
                    .filter(|p| !p.is_empty());
                ((!user.is_empty()).then_some(user), pass.map(Secret::new))
            }
        };
        let mut segments = path.split('/');
        let master_name = decode(segments.next().unwrap_or(""), "master name")?;
        if master_name.is_empty() {
            return Err(UrlError::NoMasterName);
        }
        let db = match segments.next().filter(|s| !s.is_empty()) {
            None => 0,
            Some(db) => db.parse().map_err(|_| UrlError::Db(clip(db)))?,
        };
        if let Some(extra) = segments.find(|s| !s.is_empty()) {
            return Err(UrlError::Db(clip(extra)));
        }
        let mut parsed = Self {
            tls,
            sentinels,
            master_name,
            username,
            password,
            db,
            sentinel_username: None,
            sentinel_password: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or(UrlError::NoValue)?;
            match name {
                "sentinel_username" => {
                    let value = decode(value, "sentinel_username")?;
                    if parsed.sentinel_username.replace(value).is_some() {
                        return Err(UrlError::DuplicateParameter("sentinel_username"));
                    }
                }
                "sentinel_password" => {
                    let value = Secret::new(decode(value, "sentinel_password")?);
                    if parsed.sentinel_password.replace(value).is_some() {
                        return Err(UrlError::DuplicateParameter("sentinel_password"));
                    }
                }
                other => {
                    return Err(UrlError::UnknownParameter { name: clip(other) });
                }
            }
        }
        Ok(parsed)
    }

    /// The sentinels as `host:port,host:port`, for messages.
    pub fn sentinel_list(&self) -> String {
        self.sentinels
            .iter()
            .map(|(host, port)| join_host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `HOST[:PORT]` or `[V6]:PORT` → (host, port); `position` (from 1) names it in errors.
fn address(position: usize, text: &str) -> Result<(String, u16), UrlError> {
    let bad = |reason| UrlError::Sentinel { position, reason };
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(bad("no closing ']'"))?;
        match after {
            "" => (host, None),
            after => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or(bad("':' expected after ']'"))?,
                ),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains(['@', '/', '?', '#', ' ']) {
        return Err(bad("a host has no '@', '/', '?', '#' or space"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("the port is not a number from 1 to 65535")),
            Ok(port) => port,
        },
    };
    Ok((host.to_string(), port))
}

fn decode(text: &str, part: &'static str) -> Result<String, UrlError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::Encoding(part))
}

/// At most 64 characters of a part quoted in an error.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `url` with its password and every query value masked:
/// `redis+sentinel://u:***@h1:26379,h2:26379/mymaster?sentinel_password=***`. Works on any
/// text with a Sentinel scheme, parseable or not: everything up to the last `@` is the
/// credentials (when a query value holds an `@`, more is masked than needed, never less),
/// and every query value is masked.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let mut out = format!("{scheme}://");
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            match userinfo.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '&', '=']) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                _ => out.push_str("***@"),
            }
            after
        }
        None => rest,
    };
    match rest.split_once('?') {
        None => out.push_str(rest),
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}=***"),
                    None => "***".to_string(),
                })
                .collect();
            out.push_str(&masked.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
