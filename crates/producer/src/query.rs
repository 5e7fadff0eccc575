//! `/query`: the InfluxQL statements writers send before they write, answered as InfluxDB
//! 1.x answers them. redline stores writes; it serves no data.
//!
//! - `q` comes from the URL or an `application/x-www-form-urlencoded` body (the body wins,
//!   as Go's `FormValue`): the `influx` CLI (`influx -execute`, the DDL part of
//!   `influx -import`), the Go and Python clients send it in the URL, Telegraf in the body;
//! - `CREATE DATABASE x` succeeds: the consumer creates the database in InfluxDB on its
//!   first write. The name is remembered for `SHOW DATABASES`, which lists those and the
//!   producer's `default_db`;
//! - several statements separated by `;` get one result each, with its `statement_id`;
//! - any other statement gets an InfluxDB-shaped error in its result; no `q` gets 400
//!   `missing required parameter "q"`, as InfluxDB answers.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::params::Params;
use crate::reply;

/// Most database names remembered for `SHOW DATABASES`.
const MAX_KNOWN: usize = 10_000;

/// What a statement of another kind gets in its result.
const WRITES_ONLY: &str = "redline accepts writes only (it answers CREATE DATABASE and \
     SHOW DATABASES); send queries to InfluxDB";

/// The databases this producer has heard of: its default and those named in `CREATE
/// DATABASE`. Shared by every request.
#[derive(Debug, Default)]
pub(crate) struct Databases {
    names: Mutex<BTreeSet<String>>,
}

impl Databases {
    /// Starts with `default_db`, when there is one.
    pub(crate) fn new(default_db: Option<&str>) -> Self {
        Self {
            names: Mutex::new(default_db.map(str::to_string).into_iter().collect()),
        }
    }

    fn add(&self, name: String) {
        let mut names = self.lock();
        if names.len() < MAX_KNOWN {
            names.insert(name);
        }
    }

    fn list(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic while holding the lock cannot leave a set half-changed.
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answers `/query` with `q` from `url` or a form `body`.
pub(crate) fn answer(
    databases: &Databases,
    url: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut params = Params::parse(url);
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        params = params.overlaid_by(Params::from_bytes(body));
    }
    let Some(q) = params.non_empty("q") else {
        return reply::error(
            reply::Api::V1,
            StatusCode::BAD_REQUEST,
            "invalid",
            "missing required parameter \"q\"",
        );
    };
    let results: Vec<Value> = statements(&q)
        .into_iter()
        .enumerate()
        .map(|(id, statement)| result(databases, id, statement))
        .collect();
    (StatusCode::OK, Json(json!({ "results": results }))).into_response()
}

/// The result of one statement.
fn result(databases: &Databases, id: usize, statement: &str) -> Value {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let keyword = |i: usize, word: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(word));
    if keyword(0, "CREATE") && keyword(1, "DATABASE") {
        // The name follows the two keywords, quoted (spaces allowed) or not.
        let rest =
            statement.trim_start()[words[0].len()..].trim_start()[words[1].len()..].trim_start();
        return match identifier(rest) {
            Some(name) if !name.is_empty() => {
                databases.add(name);
                json!({ "statement_id": id })
            }
            _ => json!({ "statement_id": id, "error": "CREATE DATABASE needs a name" }),
        };
    }
    if keyword(0, "SHOW") && keyword(1, "DATABASES") && words.len() == 2 {
        let values: Vec<Value> = databases.list().into_iter().map(|n| json!([n])).collect();
        let mut series = json!({ "name": "databases", "columns": ["name"] });
        if !values.is_empty() {
            series["values"] = Value::Array(values);
        }
        return json!({ "statement_id": id, "series": [series] });
    }
    json!({ "statement_id": id, "error": WRITES_ONLY })
}

/// The statements of `q`, split at `;` outside quotes, blank ones dropped.
fn statements(q: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in q.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(open), c) if c == open => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ';') => {
                out.push(&q[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&q[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The InfluxQL identifier at the start of `text`, without its double quotes and escapes:
/// `"a b"` or `a`.
fn identifier(text: &str) -> Option<String> {
    let Some(quoted) = text.strip_prefix('"') else {
        return text.split_whitespace().next().map(str::to_string);
    };
    let mut name = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(chars.next()?),
            '"' => return Some(name),
            c => name.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn create_and_show_databases_from_the_url_or_a_form() {
        let databases = Databases::new(Some("telegraf"));
        let none = HeaderMap::new();
        let (status, body) = body_of(answer(
            &databases,
            Some("chunked=true&db=&epoch=ns&q=CREATE+DATABASE+foo"),
            &none,
            b"",
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"results": [{"statement_id": 0}]}));

        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let (_, body) = body_of(answer(
            &databases,
            Some("q=ignored"),
            &form,
            b"q=CREATE+DATABASE+%22b%20ar%22%3B+SHOW+DATABASES",
        ))
        .await;
        assert_eq!(
            body,
            json!({"results": [
                {"statement_id": 0},
                {"statement_id": 1, "series": [{"name": "databases", "columns": ["name"],
                    "values": [["b ar"], ["foo"], ["telegraf"]]}]}
            ]})
        );
    }

    #[tokio::test]
    async fn other_statements_and_no_q_get_influxdb_shaped_errors() {
        let databases = Databases::default();
        let (status, body) = body_of(answer(
            &databases,
            Some("q=SELECT+*+FROM+cpu"),
            &HeaderMap::new(),
            b"",
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["results"][0]["error"], WRITES_ONLY);
        let (status, body) = body_of(answer(&databases, None, &HeaderMap::new(), b"")).await;
        assert_eq!(status, 400);
        assert_eq!(body, json!({"error": "missing required parameter \"q\""}));
    }

    #[test]
    fn statements_split_outside_quotes() {
        assert_eq!(
            statements("CREATE DATABASE \"a;b\"; SHOW DATABASES;;"),
            ["CREATE DATABASE \"a;b\"", "SHOW DATABASES"]
        );
    }
}
