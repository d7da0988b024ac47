//! systemd socket activation: `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`.
//!
//! The variables are read once, on the first call that looks for an
//! inherited socket, and removed from the environment then, so that child
//! processes never see them. Each descriptor can be taken once.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::Error;

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// The name systemd reports for a socket without `FileDescriptorName=`.
const UNNAMED: &str = "unknown";

/// One inherited descriptor: its number, its name, and whether it is
/// still there to be taken.
#[derive(Debug)]
struct Slot {
    fd: RawFd,
    name: String,
    taken: bool,
}

fn registry() -> &'static Mutex<Result<Vec<Slot>, String>> {
    static REGISTRY: OnceLock<Mutex<Result<Vec<Slot>, String>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let var = |name| std::env::var(name).ok();
        let parsed = parse(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        );
        if matches!(&parsed, Ok(Some(_))) {
            crate::sys::remove_listen_env();
        }
        let slots = parsed.map(|fds| {
            fds.unwrap_or_default()
                .into_iter()
                .map(|(fd, name)| Slot {
                    fd,
                    name,
                    taken: false,
                })
                .collect::<Vec<_>>()
        });
        if let Ok(slots) = &slots
            && !slots.is_empty()
        {
            let names: Vec<&str> = slots.iter().map(|slot| slot.name.as_str()).collect();
            tracing::info!(
                count = slots.len(),
                ?names,
                "inherited sockets from systemd"
            );
        }
        Mutex::new(slots)
    })
}

/// Parses the socket-activation variables.
///
/// `Ok(None)`: not activated, or activated for another process (the
/// variables were inherited by mistake). `Ok(Some(fds))`: the descriptors
/// and their names, in order.
pub(crate) fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    my_pid: u32,
) -> Result<Option<Vec<(RawFd, String)>>, String> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| "LISTEN_PID is not a process id".to_owned())?;
    if pid != my_pid {
        tracing::debug!(
            listen_pid = pid,
            my_pid,
            "LISTEN_PID names another process; ignoring"
        );
        return Ok(None);
    }
    let count: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|&count| (0..=4096).contains(&count))
        .ok_or_else(|| "LISTEN_FDS is not a count of descriptors".to_owned())?;
    let names: Vec<String> = match listen_fdnames {
        Some(names) if !names.is_empty() || count == 0 => {
            names.split(':').map(str::to_owned).collect()
        }
        _ => vec![UNNAMED.to_owned(); count as usize],
    };
    let names = if count == 0 { Vec::new() } else { names };
    if names.len() != count as usize {
        return Err(format!(
            "LISTEN_FDNAMES has {} names for {count} descriptors",
            names.len()
        ));
    }
    Ok(Some(
        names
            .into_iter()
            .enumerate()
            .map(|(index, name)| (FIRST_FD + index as RawFd, name))
            .collect(),
    ))
}

/// Takes the inherited descriptor named `name`, or the one at `index`.
pub(crate) fn take(selector: Selector<'_>) -> Result<(OwnedFd, String, usize), Error> {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let slots = registry.as_mut().map_err(|message| {
        Error::environment(format!("invalid socket activation variables: {message}"))
    })?;
    let found = slots
        .iter_mut()
        .enumerate()
        .find(|(index, slot)| match selector {
            Selector::Name(name) => slot.name == name && !slot.taken,
            Selector::Index(wanted) => *index == wanted,
        });
    let Some((index, slot)) = found else {
        let names: Vec<&str> = slots.iter().map(|slot| slot.name.as_str()).collect();
        return Err(Error::not_found(format!(
            "no inherited socket {selector} (systemd passed {}: {names:?})",
            names.len()
        )));
    };
    if slot.taken {
        return Err(Error::not_found(format!(
            "inherited socket {selector} was already taken"
        )));
    }
    let fd = crate::sys::adopt_fd(slot.fd).map_err(|err| {
        Error::inherit(
            format!(
                "inherited descriptor {} ({:?}) is not open",
                slot.fd, slot.name
            ),
            Some(err),
        )
    })?;
    slot.taken = true;
    Ok((fd, slot.name.clone(), index))
}

/// Whether systemd passed any socket to this process.
pub(crate) fn is_activated() -> bool {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_ok_and(|slots| !slots.is_empty())
}

/// The names of the sockets systemd passed, in order (`"unknown"` for a
/// socket without `FileDescriptorName=`); empty when not socket-activated.
pub fn names() -> Vec<String> {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|slots| slots.iter().map(|slot| slot.name.clone()).collect())
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Selector<'a> {
    Name(&'a str),
    Index(usize),
}

impl std::fmt::Display for Selector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Name(name) => write!(f, "named {name:?}"),
            Selector::Index(index) => write!(f, "at index {index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_activated_without_the_variables() {
        assert_eq!(parse(None, None, None, 42), Ok(None));
        assert_eq!(parse(Some("42"), None, None, 42), Ok(None));
    }

    #[test]
    fn variables_for_another_process_are_ignored() {
        assert_eq!(parse(Some("41"), Some("2"), None, 42), Ok(None));
    }

    #[test]
    fn descriptors_start_at_three_with_their_names() {
        assert_eq!(
            parse(Some("42"), Some("2"), Some("http:admin"), 42),
            Ok(Some(vec![(3, "http".to_owned()), (4, "admin".to_owned())]))
        );
    }

    #[test]
    fn missing_names_are_unknown() {
        assert_eq!(
            parse(Some("42"), Some("2"), None, 42),
            Ok(Some(vec![
                (3, "unknown".to_owned()),
                (4, "unknown".to_owned())
            ]))
        );
    }

    #[test]
    fn zero_descriptors_is_activation_with_none() {
        assert_eq!(parse(Some("42"), Some("0"), None, 42), Ok(Some(vec![])));
    }

    #[test]
    fn malformed_variables_are_errors_that_say_which() {
        assert_eq!(
            parse(Some("me"), Some("1"), None, 42),
            Err("LISTEN_PID is not a process id".to_owned())
        );
        assert_eq!(
            parse(Some("42"), Some("-1"), None, 42),
            Err("LISTEN_FDS is not a count of descriptors".to_owned())
        );
        assert_eq!(
            parse(Some("42"), Some("2"), Some("http"), 42),
            Err("LISTEN_FDNAMES has 1 names for 2 descriptors".to_owned())
        );
    }
}
