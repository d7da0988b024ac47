//! Gathering variables: the environment, `.env` files, `NAME_FILE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Problem, ProblemKind, Source};

/// One variable inside the prefix, after precedence.
#[derive(Clone, Debug)]
pub(crate) struct Var {
    /// The full name, uppercased (`APP_DB__POOL_SIZE`).
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) source: Source,
}

/// The variables inside `prefix` from `environment` (already read) and
/// `env_files`, by precedence: environment, then the files (a later file
/// over an earlier one), with `NAME_FILE` resolved. Keyed by uppercase name.
pub(crate) fn gather(
    prefix: &str,
    environment: Vec<(String, String)>,
    env_files: &[PathBuf],
    wanted: Option<&[&str]>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Var> {
    let prefix = prefix.to_ascii_uppercase();
    // Without a prefix, only the variables the settings' top-level fields
    // name (or their NAME_FILE) are read: not PATH, not HOME.
    let inside = |name: &str| {
        let upper = name.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(&prefix) else {
            return false;
        };
        wanted.is_none_or(|fields| {
            let first = rest.split("__").next().unwrap_or_default();
            let first = first
                .strip_suffix("_FILE")
                .filter(|_| !rest.contains("__"))
                .unwrap_or(first);
            fields.iter().any(|field| field.eq_ignore_ascii_case(first))
        })
    };
    let mut vars: BTreeMap<String, Var> = BTreeMap::new();
    for path in env_files {
        for (name, value, line) in read_env_file(path, problems) {
            if inside(&name) {
                let source = Source::DotEnv {
                    path: path.clone(),
                    line,
                };
                vars.insert(
                    name.to_ascii_uppercase(),
                    Var {
                        name: name.to_ascii_uppercase(),
                        value,
                        source,
                    },
                );
            }
        }
    }
    for (name, value) in environment {
        if inside(&name) {
            vars.insert(
                name.to_ascii_uppercase(),
                Var {
                    name: name.to_ascii_uppercase(),
                    value,
                    source: Source::Environment,
                },
            );
        }
    }
    resolve_files(&mut vars, problems);
    vars
}

/// `NAME_FILE=/run/secrets/x` sets `NAME` to the file's content, one
/// trailing newline trimmed.
fn resolve_files(vars: &mut BTreeMap<String, Var>, problems: &mut Vec<Problem>) {
    let file_vars: Vec<String> = vars
        .keys()
        .filter(|name| name.ends_with("_FILE"))
        .cloned()
        .collect();
    for file_var in file_vars {
        let Some(var) = vars.remove(&file_var) else {
            continue;
        };
        let base = file_var.trim_end_matches("_FILE").to_owned();
        if base.is_empty() {
            continue;
        }
        if let Some(existing) = vars.get(&base) {
            problems.push(Problem {
                variable: base.clone(),
                source: Some(existing.source.clone()),
                kind: ProblemKind::Conflict(format!("both {base} and {file_var} are set; set one")),
            });
            continue;
        }
        let path = PathBuf::from(var.value.trim());
        match read_capped(&path, MAX_SECRET_FILE) {
            Ok(mut content) => {
                if content.ends_with('\n') {
                    content.pop();
                    if content.ends_with('\r') {
                        content.pop();
                    }
                }
                vars.insert(
                    base.clone(),
                    Var {
                        name: base,
                        value: content,
                        source: Source::File(path),
                    },
                );
            }
            Err(err) => problems.push(Problem {
                variable: file_var.clone(),
                source: Some(var.source.clone()),
                kind: ProblemKind::Unreadable(format!("{}: {err}", path.display())),
            }),
        }
    }
}

/// The most a `NAME_FILE` secret may hold: a password, a token, a URL, a
/// key fit many times over; `/dev/zero` or a log file do not.
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// The most a `.env` file may hold.
const MAX_ENV_FILE: u64 = 1024 * 1024;

/// Reads a regular file of at most `max` bytes as UTF-8 text. A device
/// (`/dev/zero`), a FIFO or a directory is refused before anything is read,
/// and no more than `max + 1` bytes are ever read (a file that grows, or a
/// `/proc` file that reports no size, cannot make it read more).
fn read_capped(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let metadata = std::fs::metadata(path).map_err(|err| err.kind().to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file (a device, a FIFO or a directory)".to_owned());
    }
    let too_large = || format!("larger than {} KiB", max / 1024);
    if metadata.len() > max {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|err| err.kind().to_string())?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.kind().to_string())?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// The variables of one `.env` file, with their lines, parsed by dotenvy
/// without touching the process environment. A missing file is no file.
fn read_env_file(path: &Path, problems: &mut Vec<Problem>) -> Vec<(String, String, usize)> {
    if !path.exists() {
        return Vec::new();
    }
    let text = match read_capped(path, MAX_ENV_FILE) {
        Ok(text) => text,
        Err(why) => {
            problems.push(Problem {
                variable: path.display().to_string(),
                source: None,
                kind: ProblemKind::Unreadable(why),
            });
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((name, value)) => {
                let line = line_of(&text, &name).unwrap_or(0);
                found.push((name, value, line));
            }
            Err(dotenvy::Error::LineParse(_, index)) => {
                let line = text[..index.min(text.len())].matches('\n').count() + 1;
                problems.push(Problem {
                    variable: path.display().to_string(),
                    source: Some(Source::DotEnv {
                        path: path.to_path_buf(),
                        line,
                    }),
                    kind: ProblemKind::Unreadable("a line that is not NAME=value".to_owned()),
                });
                break;
            }
            Err(_) => {
                problems.push(Problem {
                    variable: path.display().to_string(),
                    source: None,
                    kind: ProblemKind::Unreadable("cannot be parsed".to_owned()),
                });
                break;
            }
        }
    }
    found
}

/// The last line that assigns `name` (`NAME=`, `export NAME =`), from 1.
fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(index, _)| index + 1)
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_for_names() {
        let text = "# comment\nA=1\n\nexport B = 2\nA=3\n";
        assert_eq!(line_of(text, "A"), Some(5));
        assert_eq!(line_of(text, "B"), Some(4));
        assert_eq!(line_of(text, "C"), None);
    }
}
