//! Human units for durations and sizes, as flags, environment variables and the TOML file
//! take them: durations `500ms`, `10s`, `5m`; sizes `1048576`, `512KiB`, `1MiB`, `25MB`.

use std::time::Duration;

/// A value that is not a valid duration or size.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The duration did not parse.
    #[error("invalid duration '{value}': {reason} (examples: 500ms, 10s, 5m)")]
    Duration {
        /// The text as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The size did not parse.
    #[error("invalid size '{value}': expected bytes or a number with a unit (B, KB, KiB, MB, MiB, GB, GiB)")]
    Size {
        /// The text as given.
        value: String,
    },
}

/// Parses `500ms`, `10s`, `1m30s`, `2h`. A bare number is refused: the unit is never implied.
///
/// # Errors
/// [`Error::Duration`] naming the value.
pub fn parse_duration(value: &str) -> Result<Duration, Error> {
    humantime::parse_duration(value.trim()).map_err(|e| Error::Duration {
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// Formats a duration the way [`parse_duration`] reads it back (`1s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a size: plain bytes or a number with a decimal (`KB`, `MB`, `GB`) or binary
/// (`KiB`, `MiB`, `GiB`) unit, case-insensitive.
///
/// # Errors
/// [`Error::Size`] naming the value.
pub fn parse_size(value: &str) -> Result<u64, Error> {
    let err = || Error::Size {
        value: value.to_string(),
    };
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Formats a size the way [`parse_size`] reads it back, in the largest unit that divides it
/// (`25MB`, `64KiB`, `1000`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (1 << 30, "GiB"),
        (1_000_000_000, "GB"),
        (1 << 20, "MiB"),
        (1_000_000, "MB"),
        (1 << 10, "KiB"),
        (1_000, "KB"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| bytes > 0 && bytes.is_multiple_of(*unit))
        .map_or_else(
            || bytes.to_string(),
            |(unit, name)| format!("{}{name}", bytes / unit),
        )
}

/// Serde helpers: `#[serde(with = "redline_core::units::duration")]`.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialises as `1s`, `500ms`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads `500ms`, `10s`, `5m`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers: `#[serde(with = "redline_core::units::size")]`; takes a number or a string.
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as a plain number of bytes.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }

    /// Reads `1048576`, `"512KiB"`, `"25MB"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(n),
            Raw::S(s) => super::parse_size(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        let err = parse_duration("ten").unwrap_err().to_string();
        assert!(err.contains("'ten'"), "{err}");
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1_048_576);
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("25MB").unwrap(), 25_000_000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn sizes_print_as_they_parse() {
        for (bytes, text) in [
            (25_000_000, "25MB"),
            (65_536, "64KiB"),
            (1000, "1KB"),
            (1001, "1001"),
            (0, "0"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text).unwrap(), bytes);
        }
    }
}
