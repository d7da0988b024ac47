use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A setting that must never be shown: a password, a token, a URL with
/// credentials.
///
/// It deserializes like `T`, prints `[redacted]` in `Debug` and `Display`,
/// serializes as `"[redacted]"` (so [`Loader::explain`](crate::Loader::explain)
/// and dumps never hold it), is zeroized when dropped (secrecy's
/// `SecretBox`), and hands its value out only through
/// [`expose`](Self::expose).
///
/// # Examples
///
/// ```
/// use seaworthy_config::{Loader, Secret};
///
/// #[derive(serde::Deserialize, Debug)]
/// struct Settings {
///     database_password: Secret<String>,
/// }
///
/// let settings: Settings = Loader::new("APP_")
///     .from_iter([("APP_DATABASE_PASSWORD", "hunter2")])
///     .load()
///     .unwrap();
/// assert_eq!(settings.database_password.expose(), "hunter2");
/// assert_eq!(format!("{settings:?}"), "Settings { database_password: [redacted] }");
/// ```
pub struct Secret<T: Zeroize>(SecretBox<T>);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(SecretBox::new(Box::new(value)))
    }

    /// The value. Every read of a secret goes through here, so that a review
    /// can find them all.
    pub fn expose(&self) -> &T {
        self.0.expose_secret()
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret::new(self.expose().clone())
    }
}

impl<T: Zeroize + PartialEq> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl<T: Zeroize + Default> Default for Secret<T> {
    fn default() -> Self {
        Secret::new(T::default())
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret::new)
    }
}

impl<T: Zeroize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}
