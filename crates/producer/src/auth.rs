//! Authentication of HTTP requests by token, in every form InfluxDB clients send one.
//!
//! Invariants:
//! - a protected request is refused before its body is read: nothing of an unauthorised
//!   request is decoded or stored;
//! - tokens are compared in constant time: the presented credential and every configured
//!   token are hashed with SHA-256, so their lengths do not matter, and the 32-byte digests
//!   are compared with `subtle`, against every configured token without an early exit;
//! - a token is never logged, serialised or shown by `Debug` (only how many there are).
//!
//! Accepted credentials (any one that matches is enough):
//! - `Authorization: Token T` (InfluxDB 2.x clients, Telegraf's `outputs.influxdb_v2`) and
//!   `Authorization: Bearer T`; also `Token user:T`, the form InfluxDB 1.8's v2 API takes
//!   for v1 users (the part after the first `:` is the token);
//! - `Authorization: Basic base64(user:T)`: the password is the token, the user is ignored
//!   (Telegraf's `outputs.influxdb` with `username`/`password`);
//! - the v1 query parameters `u=user&p=T`: again `p` is the token.

use std::{net::SocketAddr, path::Path, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use redline_core::telemetry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::params::Params;
use crate::reply;

/// The challenge sent with a 401: the schemes this producer accepts.
const CHALLENGES: [&str; 3] = [
    r#"Token realm="redline""#,
    r#"Bearer realm="redline""#,
    r#"Basic realm="redline", charset="UTF-8""#,
];

/// The tokens that may write, kept as SHA-256 digests only.
///
/// `Serialize` writes one `"***"` per token (what `redline config check` prints);
/// `Deserialize` reads a list of tokens in clear.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// The tokens among `tokens`, each trimmed; empty ones are skipped.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut digests: Vec<[u8; 32]> = tokens
            .into_iter()
            .map(|t| t.as_ref().trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(|t| digest(t.as_bytes()))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        Self { digests }
    }

    /// No token configured: every request is let in.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// How many distinct tokens are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when `candidate` is one of the tokens. Takes the same time whichever token
    /// matches, or none, and whatever the candidate's length.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let presented = digest(candidate);
        let mut found = subtle::Choice::from(0);
        for known in &self.digests {
            found |= known.ct_eq(&presented);
        }
        found.into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

impl Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.digests.iter().map(|_| "***"))
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::new(Vec::<String>::deserialize(deserializer)?))
    }
}

/// The tokens of a token file: one per line; blank lines and lines starting with `#` are
/// skipped, surrounding whitespace is trimmed.
///
/// # Errors
/// The I/O error of reading `path` (the message names the path, never a token).
pub fn read_token_file(path: &Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Logs a warning when the producer listens beyond loopback without any token.
pub fn warn_if_open(addr: SocketAddr, tokens: &Tokens) {
    if tokens.is_empty() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "No auth token is configured and the listener is not on loopback: anyone who \
             can reach it can write metrics. Set REDLINE_AUTH_TOKENS or --auth-token-file."
        );
    }
}

/// What a request presented.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    /// Nothing that looks like a credential.
    Nothing,
    /// An `Authorization` header that cannot be read.
    Unreadable(&'static str),
    /// Credentials to check (the header's and the `p` parameter's).
    Credentials(Vec<Vec<u8>>),
}

fn presented(headers: &HeaderMap, uri: &axum::http::Uri) -> Presented {
    let mut credentials = Vec::new();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        match from_header(value.as_bytes()) {
            Ok(presented) => credentials.extend(presented),
            Err(reason) => return Presented::Unreadable(reason),
        }
    }
    // v1 credentials in the query string (`u=…&p=T`), the first `p` as InfluxDB reads it.
    if let Some(p) = Params::parse(uri.query()).get("p") {
        credentials.push(p.as_bytes().to_vec());
    }
    if credentials.is_empty() {
        Presented::Nothing
    } else {
        Presented::Credentials(credentials)
    }
}

/// The credentials an `Authorization` header value may stand for.
fn from_header(value: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
        None => (value, &[][..]),
    };
    if scheme.eq_ignore_ascii_case(b"token") || scheme.eq_ignore_ascii_case(b"bearer") {
        if rest.is_empty() {
            return Err("the Authorization header has no token");
        }
        let mut credentials = vec![rest.to_vec()];
        // `Token user:password` (InfluxDB 1.8's v2 API for v1 users): the password.
        if let Some(colon) = rest.iter().position(|b| *b == b':') {
            credentials.push(rest[colon + 1..].to_vec());
        }
        return Ok(credentials);
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "the basic credentials are not base64")?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or("the basic credentials have no ':' between user and password")?;
        return Ok(vec![decoded[colon + 1..].to_vec()]);
    }
    Err("unknown Authorization scheme: use Token, Bearer or Basic")
}

/// Middleware: lets a request through only with a valid token (or when none is configured),
/// else answers 401 without reading the body.
pub(crate) async fn require(
    State(tokens): State<Arc<Tokens>>,
    request: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let refusal = match presented(request.headers(), request.uri()) {
        Presented::Credentials(credentials) => {
            // Check every credential (no early exit): the time taken does not tell which.
            let ok = credentials
                .iter()
                .fold(false, |ok, c| tokens.verify(c) | ok);
            if ok {
                return next.run(request).await;
            }
            "authorization failed: invalid token"
        }
        Presented::Unreadable(reason) => reason,
        Presented::Nothing => {
            "authorization required: send 'Authorization: Token <token>' (or Bearer, basic \
             auth with the token as password, or the u/p query parameters)"
        }
    };
    let refusal = if refusal.starts_with("authorization") {
        refusal.to_owned()
    } else {
        format!("authorization failed: {refusal}")
    };
    // A route's own path: these layers run only on matched routes.
    let path = request.uri().path().to_owned();
    tracing::debug!(%path, reason = %refusal, "Request refused: 401.");
    metrics::counter!(
        telemetry::HTTP_REQUESTS,
        "endpoint" => path.clone(),
        "status" => "401"
    )
    .increment(1);
    unauthorized(reply::Api::of_path(&path), &refusal)
}

fn unauthorized(api: reply::Api, message: &str) -> Response {
    let mut response = reply::error(api, StatusCode::UNAUTHORIZED, "unauthorized", message);
    let headers = response.headers_mut();
    for challenge in CHALLENGES {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn uri(s: &str) -> axum::http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn tokens_match_exactly_whatever_their_length() {
        let tokens = Tokens::new(["s3cret", " other ", ""]);
        assert_eq!(tokens.len(), 2);
        assert!(tokens.verify(b"s3cret"));
        assert!(tokens.verify(b"other"));
        for wrong in ["", "s3cre", "s3cret ", "s3cretx", "S3CRET", "other\n"] {
            assert!(!tokens.verify(wrong.as_bytes()), "{wrong:?}");
        }
        assert!(!Tokens::default().verify(b""));
    }

    #[test]
    fn tokens_never_show_in_debug_or_serialisation() {
        let tokens = Tokens::new(["s3cret", "other"]);
        assert_eq!(format!("{tokens:?}"), "Tokens(2 configured)");
        let json = serde_json::to_string(&tokens).unwrap();
        assert_eq!(json, r#"["***","***"]"#);
        let back: Tokens = serde_json::from_str(r#"["s3cret","other"]"#).unwrap();
        assert_eq!(back, tokens);
    }

    #[test]
    fn every_client_form_of_credentials_is_read() {
        let none = HeaderMap::new();
        assert_eq!(presented(&none, &uri("/write?db=x")), Presented::Nothing);
        let token = |h: &str| presented(&headers(h), &uri("/write"));
        let one = |t: &str| Presented::Credentials(vec![t.as_bytes().to_vec()]);
        assert_eq!(token("Token abc"), one("abc"));
        assert_eq!(token("bearer  abc "), one("abc"));
        // "user:pa:ss" → password "pa:ss".
        assert_eq!(token("Basic dXNlcjpwYTpzcw=="), one("pa:ss"));
        assert_eq!(
            presented(&none, &uri("/write?db=x&u=me&p=abc%3D")),
            one("abc=")
        );
        assert!(matches!(token("Basic !!!"), Presented::Unreadable(_)));
        assert!(matches!(token("Basic dXNlcg=="), Presented::Unreadable(_)));
        assert!(matches!(token("Digest x"), Presented::Unreadable(_)));
        assert!(matches!(token("Token"), Presented::Unreadable(_)));
    }

    #[test]
    fn token_files_skip_blank_and_comment_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# telegraf hosts\n  abc  \n\nxyz\r\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), ["abc", "xyz"]);
    }
}
