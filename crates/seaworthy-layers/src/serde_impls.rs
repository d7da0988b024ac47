//! serde for the settings types (feature `serde`): each as the text a
//! person writes in a variable or a file, through `FromStr` and
//! `Display`, so that they load with every other setting (seaworthy-config
//! names the variable of a bad one).
//!
//! ```
//! use seaworthy_layers::{Quota, TrustedProxies};
//!
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     rate_limit: Quota,
//!     trusted_proxies: TrustedProxies,
//! }
//!
//! let settings: Settings = serde_json::from_str(
//!     r#"{"rate_limit": "100/min", "trusted_proxies": "10.0.0.0/8, ::1"}"#,
//! ).unwrap();
//! assert_eq!(settings.rate_limit.to_string(), "100/min");
//! assert_eq!(settings.trusted_proxies.to_string(), "10.0.0.0/8,::1/128");
//! // A list works as well as a comma-separated string.
//! let list: TrustedProxies = serde_json::from_str(r#"["10.0.0.0/8", "::1"]"#).unwrap();
//! assert_eq!(list, settings.trusted_proxies);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::client_ip::{IpNet, TrustedProxies};
use crate::gcra::Quota;

/// Reads a value from its text with `FromStr`; the error's `Display` is
/// what was expected.
struct Text<T>(PhantomData<T>);

impl<T> Visitor<'_> for Text<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.trim().parse().map_err(E::custom)
    }
}

/// A `/`-rate such as `100/min` (the burst is set apart, with
/// [`Quota::burst`]: `RATE_LIMIT_BURST`).
impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Text(PhantomData))
    }
}

/// The rate as text (`100/min`); the burst is not part of it.
impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A block such as `10.0.0.0/8` (a bare address is `/32` or `/128`).
impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Text(PhantomData))
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Blocks as comma-separated text (`10.0.0.0/8, ::1`), or as a list.
impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Blocks;

        impl<'de> Visitor<'de> for Blocks {
            type Value = TrustedProxies;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TrustedProxies, E> {
                text.parse().map_err(|_| E::custom(EXPECTED))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TrustedProxies, A::Error> {
                let mut nets = Vec::new();
                while let Some(net) = seq.next_element::<IpNet>()? {
                    nets.push(net);
                }
                Ok(TrustedProxies::new(nets))
            }
        }

        deserializer.deserialize_any(Blocks)
    }
}

/// What a bad `TrustedProxies` was expected to be.
const EXPECTED: &str = "address blocks like 10.0.0.0/8 or 2001:db8::/32, comma-separated";

/// Comma-separated text, which parses back.
impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
