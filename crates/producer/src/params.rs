//! Query-string parameters read as InfluxDB 1.x reads them (Go's `url.Values.Get`): the
//! first value of a repeated parameter wins (`db=a&db=b` writes to `a`), and a parameter
//! that does not decode is simply absent, never a framework's plain-text 400.

use std::collections::HashMap;

/// The parameters of a query string, first value of each name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `query` (without the `?`); `None` is no parameter at all.
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self::from_bytes(query.unwrap_or_default().as_bytes())
    }

    /// Parses an `application/x-www-form-urlencoded` body or query string.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            params
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
        Self(params)
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name` when given and not empty.
    pub(crate) fn non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// These parameters, with `other`'s taking precedence (a form body over the URL, as
    /// Go's `Request.FormValue`).
    pub(crate) fn overlaid_by(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_wins_and_escapes_decode() {
        let params = Params::parse(Some("db=a&db=b&q=CREATE+DATABASE+%22x%22&rp="));
        assert_eq!(params.get("db"), Some("a"));
        assert_eq!(params.get("q"), Some("CREATE DATABASE \"x\""));
        assert_eq!(params.get("rp"), Some(""));
        assert_eq!(params.non_empty("rp"), None);
        assert_eq!(params.get("precision"), None);
        let body = Params::from_bytes(b"q=SHOW+DATABASES");
        assert_eq!(params.overlaid_by(body).get("q"), Some("SHOW DATABASES"));
    }
}
