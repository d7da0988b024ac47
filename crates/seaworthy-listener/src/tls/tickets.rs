//! TLS session tickets under keys shared by every instance behind one load
//! balancer: a client resumes with whichever instance it reaches.

use std::fmt;
use std::path::Path;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

use super::Error;
use super::certs::read_capped;

/// The shortest secret accepted, in bytes: 256 bits of base64 text.
const MIN_SECRET: usize = 32;
/// A key's id: the first bytes of every ticket it made.
const ID_LEN: usize = 16;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// The ticket lifetime clients are told: keys should rotate within it.
const LIFETIME_SECS: u32 = 12 * 3600;

/// One key, from one secret.
pub(crate) struct TicketKey {
    id: [u8; ID_LEN],
    key: LessSafeKey,
}

impl TicketKey {
    fn from_secret(secret: &[u8]) -> TicketKey {
        let derive = |label: &[u8]| {
            let mut input = label.to_vec();
            input.extend_from_slice(secret);
            digest(&SHA256, &input)
        };
        let key = derive(b"seaworthy tls ticket key\0");
        let id = derive(b"seaworthy tls ticket id\0");
        TicketKey {
            id: id.as_ref()[..ID_LEN]
                .try_into()
                .expect("a SHA-256 digest is 32 bytes"),
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key.as_ref()).expect("a 32-byte AES-256 key"),
            ),
        }
    }
}

/// The keys of a ticket-key file: the first encrypts, every one decrypts.
pub(crate) struct TicketKeys {
    pub(crate) keys: Vec<TicketKey>,
    /// The file's bytes, to tell a change from a touch.
    pub(crate) contents: Vec<u8>,
}

/// Reads a ticket-key file: one secret per line (blank lines and lines
/// starting with `#` skipped), each at least 32 bytes, the first the one
/// new tickets are made with.
pub(crate) fn read_keys(path: &Path) -> Result<TicketKeys, Error> {
    let what = "ticket key file";
    let contents = read_capped(path, what)?;
    let mut keys = Vec::new();
    for (number, line) in contents.split(|&b| b == b'\n').enumerate() {
        let secret = line.trim_ascii();
        if secret.is_empty() || secret.starts_with(b"#") {
            continue;
        }
        if secret.len() < MIN_SECRET {
            return Err(Error::file(
                what,
                path,
                format!(
                    "line {}: a secret of {} bytes, fewer than {MIN_SECRET} (make one with \
                     `openssl rand -base64 48`)",
                    number + 1,
                    secret.len()
                ),
            ));
        }
        keys.push(TicketKey::from_secret(secret));
    }
    if keys.is_empty() {
        return Err(Error::file(
            what,
            path,
            "holds no secret (one per line, the first encrypts)".to_owned(),
        ));
    }
    Ok(TicketKeys { keys, contents })
}

/// rustls' ticketer over the shared keys, swapped on reload.
pub(crate) struct SharedTicketer {
    pub(crate) keys: ArcSwap<TicketKeys>,
    random: SystemRandom,
}

impl SharedTicketer {
    pub(crate) fn new(keys: TicketKeys) -> SharedTicketer {
        SharedTicketer {
            keys: ArcSwap::from_pointee(keys),
            random: SystemRandom::new(),
        }
    }
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer")
            .field("keys", &self.keys.load().keys.len())
            .finish()
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    /// `id ‖ nonce ‖ AES-256-GCM(plain)`, the id as associated data.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let key = keys.keys.first()?;
        let mut nonce = [0_u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(ID_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        ticket.extend_from_slice(&key.id);
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.id),
                &mut sealed,
            )
            .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < ID_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (id, rest) = cipher.split_at(ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys.load();
        let key = keys.keys.iter().find(|key| key.id == id)?;
        let mut plain = sealed.to_vec();
        let opened = key
            .key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(id),
                &mut plain,
            )
            .ok()?
            .len();
        plain.truncate(opened);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secrets: &[&str]) -> TicketKeys {
        TicketKeys {
            keys: secrets
                .iter()
                .map(|s| TicketKey::from_secret(s.as_bytes()))
                .collect(),
            contents: Vec::new(),
        }
    }

    const OLD: &str = "an old secret of at least thirty-two bytes";
    const NEW: &str = "a new secret, also at least thirty-two bytes";

    #[test]
    fn a_ticket_opens_with_the_same_secret_anywhere_and_under_rotation() {
        let one = SharedTicketer::new(keys(&[OLD]));
        let other_instance = SharedTicketer::new(keys(&[OLD]));
        let ticket = one.encrypt(b"session state").unwrap();
        assert_eq!(other_instance.decrypt(&ticket).unwrap(), b"session state");
        // Rotated: the new key encrypts, the old one still decrypts.
        let rotated = SharedTicketer::new(keys(&[NEW, OLD]));
        assert_eq!(rotated.decrypt(&ticket).unwrap(), b"session state");
        let fresh = rotated.encrypt(b"later").unwrap();
        assert!(one.decrypt(&fresh).is_none());
        // Dropped: the old tickets no longer open.
        let dropped = SharedTicketer::new(keys(&[NEW]));
        assert!(dropped.decrypt(&ticket).is_none());
        assert_eq!(dropped.decrypt(&fresh).unwrap(), b"later");
    }

    #[test]
    fn forged_and_damaged_tickets_open_nothing() {
        let ticketer = SharedTicketer::new(keys(&[OLD]));
        let ticket = ticketer.encrypt(b"state").unwrap();
        for cut in 0..ticket.len() {
            assert!(ticketer.decrypt(&ticket[..cut]).is_none(), "{cut}");
        }
        for byte in 0..ticket.len() {
            let mut damaged = ticket.clone();
            damaged[byte] ^= 1;
            assert!(ticketer.decrypt(&damaged).is_none(), "{byte}");
        }
        assert!(ticketer.decrypt(&[]).is_none());
        assert!(ticketer.decrypt(&[0; 200]).is_none());
        // Two tickets of the same state differ (a fresh nonce each).
        assert_ne!(ticket, ticketer.encrypt(b"state").unwrap());
    }
}
