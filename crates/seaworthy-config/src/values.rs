//! Parsers for the values environment variables hold: booleans, durations,
//! byte sizes.

use std::time::Duration;

/// The spellings of a boolean: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, in any case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A duration like `30s`, `250ms`, `5m`, `1h 30m`.
pub(crate) fn parse_duration(raw: &str) -> Option<Duration> {
    humantime::parse_duration(raw.trim()).ok()
}

/// A byte size like `10MiB`, `512KB`, `1.5GB`, `4096`. `K`/`M`/`G`/`T` with
/// `B` or without are decimal (1000), with `iB` binary (1024).
pub(crate) fn parse_bytes(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64 && bytes.fract() == 0.0)
        .then_some(bytes as u64)
}

/// `#[serde(with = "seaworthy_config::duration")]` for a
/// `std::time::Duration` written `30s`, `250ms`, `5m`.
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    /// Reads a duration like `30s`.
    ///
    /// # Errors
    ///
    /// When the text is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }

    /// Writes a duration like `30s`.
    ///
    /// # Errors
    ///
    /// As the serializer's.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    struct DurationVisitor;

    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration like 30s, 250ms or 5m")
        }

        fn visit_str<E: de::Error>(self, raw: &str) -> Result<Duration, E> {
            super::parse_duration(raw).ok_or_else(|| E::custom("a duration like 30s, 250ms or 5m"))
        }
    }
}

/// `#[serde(with = "seaworthy_config::bytes")]` for a `u64` byte count
/// written `10MiB`, `512KB`, `4096`.
pub mod bytes {
    use std::fmt;

    use serde::{Deserializer, Serializer, de};

    /// Reads a byte size like `10MiB`.
    ///
    /// # Errors
    ///
    /// When the text is not a byte size.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_str(BytesVisitor)
    }

    /// Writes the number of bytes.
    ///
    /// # Errors
    ///
    /// As the serializer's.
    pub fn serialize<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*bytes)
    }

    struct BytesVisitor;

    impl de::Visitor<'_> for BytesVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like 10MiB, 512KB or 4096")
        }

        fn visit_str<E: de::Error>(self, raw: &str) -> Result<u64, E> {
            super::parse_bytes(raw).ok_or_else(|| E::custom("a size like 10MiB, 512KB or 4096"))
        }

        fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }
    }
}

/// `#[serde(with = "seaworthy_config::from_str")]` for any type with
/// `FromStr` and `Display` (a rate like `100/min`, an enum of your own):
/// the parse error's message says what was expected.
pub mod from_str {
    use std::fmt::Display;
    use std::marker::PhantomData;
    use std::str::FromStr;

    use serde::{Deserializer, Serializer, de};

    /// Reads a value with `FromStr`.
    ///
    /// # Errors
    ///
    /// When `FromStr` fails; its error's message is the expectation.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        deserializer.deserialize_str(FromStrVisitor(PhantomData))
    }

    /// Writes a value with `Display`.
    ///
    /// # Errors
    ///
    /// As the serializer's.
    pub fn serialize<S: Serializer, T: Display>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    struct FromStrVisitor<T>(PhantomData<T>);

    impl<T> de::Visitor<'_> for FromStrVisitor<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a value this setting can parse")
        }

        fn visit_str<E: de::Error>(self, raw: &str) -> Result<T, E> {
            raw.trim().parse().map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_have_their_spellings() {
        for raw in ["true", "TRUE", "1", "yes", "On"] {
            assert_eq!(parse_bool(raw), Some(true), "{raw}");
        }
        for raw in ["false", "0", "no", "OFF"] {
            assert_eq!(parse_bool(raw), Some(false), "{raw}");
        }
        for raw in ["", "2", "y", "enable"] {
            assert_eq!(parse_bool(raw), None, "{raw}");
        }
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_bytes("10MiB"), Some(10 << 20));
        assert_eq!(parse_bytes("512KB"), Some(512_000));
        assert_eq!(parse_bytes("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("1 kib"), Some(1024));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1.5B"), None);
        assert_eq!(parse_bytes("-1"), None);
    }
}
