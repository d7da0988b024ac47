use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::de::{Ctx, De, Failure, STAND_INS, build_tree};
use crate::source::{Var, gather};
use crate::{ConfigError, Problem, ProblemKind, Source};

/// Loads typed settings from the environment and `.env` files; see the
/// [crate documentation](crate).
#[derive(Clone, Debug)]
#[must_use = "a loader does nothing until `load` is called"]
pub struct Loader {
    prefix: String,
    env_files: Vec<PathBuf>,
    /// `None`: the process environment.
    variables: Option<Vec<(String, String)>>,
}

impl Loader {
    /// A loader for the variables starting with `prefix` (`"APP_"`; `""`
    /// for no prefix), matched in any case, from the process environment.
    pub fn new(prefix: impl Into<String>) -> Self {
        Loader {
            prefix: prefix.into(),
            env_files: Vec::new(),
            variables: None,
        }
    }

    /// Also reads this `.env` file, under the environment: a variable set in
    /// both comes from the environment. Several files: a later one wins over
    /// an earlier one. A missing file is skipped. The process environment is
    /// never written.
    pub fn env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.env_files.push(path.into());
        self
    }

    /// Reads these variables instead of the process environment: for tests,
    /// which then never touch the real environment.
    pub fn from_iter<K, V>(mut self, variables: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.variables = Some(
            variables
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        );
        self
    }

    /// Reads the variables of a map instead of the process environment.
    pub fn from_map(self, variables: &HashMap<String, String>) -> Self {
        self.from_iter(
            variables
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        )
    }

    fn variables(&self, wanted: Option<&[&str]>, problems: &mut Vec<Problem>) -> Vec<Var> {
        let environment = match &self.variables {
            Some(variables) => variables.clone(),
            None => {
                let prefix = self.prefix.to_ascii_uppercase();
                std::env::vars_os()
                    .filter_map(|(name, value)| {
                        let name = name.into_string().ok()?;
                        if !name.to_ascii_uppercase().starts_with(&prefix) {
                            return None;
                        }
                        match value.into_string() {
                            Ok(value) => Some((name, value)),
                            Err(_) => {
                                problems.push(Problem {
                                    variable: name.to_ascii_uppercase(),
                                    source: Some(Source::Environment),
                                    kind: ProblemKind::Invalid("valid UTF-8 text".to_owned()),
                                });
                                None
                            }
                        }
                    })
                    .collect()
            }
        };
        gather(&self.prefix, environment, &self.env_files, wanted, problems)
            .into_values()
            .collect()
    }

    /// Loads `T`, reporting every problem at once.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming every missing, invalid, unknown or
    /// conflicting variable, and never a value.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let wanted = root_fields::<T>();
        self.load_root(wanted.as_deref(), |ctx, root| {
            T::deserialize(De::root(ctx, root))
        })
    }

    /// Loads two settings types from the same variables, with one error
    /// for everything wrong in either: a library's settings (seaworthy's
    /// own, say) beside the program's, each a plain struct.
    ///
    /// Why not `#[serde(flatten)]`: serde hands a flattened struct its
    /// values as text it has buffered, so a number, a list or a duration
    /// in it would no longer parse from the environment, and a bad one
    /// could not be named by its variable. Both types here read the
    /// variables directly; with a prefix, a variable neither reads is
    /// unknown, as with [`load`](Self::load).
    ///
    /// ```
    /// use seaworthy_config::Loader;
    ///
    /// #[derive(serde::Deserialize, Debug)]
    /// struct Server { port: u16 }
    ///
    /// #[derive(serde::Deserialize, Debug)]
    /// struct App { greeting: String, #[serde(default)] workers: u8 }
    ///
    /// let loader = Loader::new("APP_").from_iter([("APP_PORT", "8080"), ("APP_GREETING", "hi")]);
    /// let (server, app): (Server, App) = loader.load_both().unwrap();
    /// assert_eq!((server.port, app.greeting.as_str()), (8080, "hi"));
    ///
    /// let err = Loader::new("APP_")
    ///     .from_iter([("APP_PORT", "x"), ("APP_WORKERS", "many"), ("APP_PROT", "1")])
    ///     .load_both::<Server, App>()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "invalid configuration: 4 problems
    ///   APP_GREETING: missing, and required
    ///   APP_PORT (environment): invalid, expected an integer from 0 to 65535
    ///   APP_PROT (environment): unknown variable; did you mean APP_PORT?
    ///   APP_WORKERS (environment): invalid, expected an integer from 0 to 255");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), over both types.
    pub fn load_both<A: DeserializeOwned, B: DeserializeOwned>(
        &self,
    ) -> Result<(A, B), ConfigError> {
        let wanted = match (root_fields::<A>(), root_fields::<B>()) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        self.load_root(wanted.as_deref(), |ctx, root| {
            // B is read once A reads whole (with stand-ins for its bad
            // values): each pass stops at its first problem.
            let a = A::deserialize(De::root(ctx, root))?;
            let b = B::deserialize(De::root(ctx, root))?;
            Ok((a, b))
        })
    }

    /// Loads what `deserialize` reads from the root, every problem at once.
    fn load_root<R>(
        &self,
        wanted: Option<&[&str]>,
        deserialize: impl Fn(&Ctx<'_>, &crate::de::Node) -> Result<R, crate::de::DeError>,
    ) -> Result<R, ConfigError> {
        let mut problems = Vec::new();
        let wanted = if self.prefix.is_empty() { wanted } else { None };
        let vars = self.variables(wanted, &mut problems);
        let root = build_tree(self.prefix.len(), &vars, &mut problems);
        let mut stand_ins: HashMap<Vec<String>, usize> = HashMap::new();
        let mut excluded: HashSet<Vec<String>> = HashSet::new();
        // Each problem with the settings path it was found at.
        let mut found: Vec<(Vec<String>, Problem)> = Vec::new();
        // Each pass either succeeds or finds one more problem (or the next
        // stand-in for one, or leaves a field out): bounded by the
        // variables and fields times the stand-ins.
        let limit = (vars.len() + 64) * (STAND_INS.len() + 1);
        for _ in 0..limit {
            let ctx = Ctx::new(&vars, &stand_ins, &excluded);
            let result = deserialize(&ctx, &root);
            let failure = ctx.failed.borrow_mut().take();
            match (result, failure) {
                (Ok(value), _) => {
                    problems.extend(found.into_iter().map(|(_, problem)| problem));
                    problems.extend(self.last_pass(ctx, &vars, &root));
                    return finish(value, problems);
                }
                (Err(_), Some(failure)) => {
                    let path = failure.path().to_vec();
                    if excluded.contains(&path) {
                        // A field left out that has no default: serde says
                        // so once it has read every other field, so this
                        // pass saw all the rest.
                        problems.extend(found.into_iter().map(|(_, problem)| problem));
                        problems.extend(self.last_pass(ctx, &vars, &root));
                        return finish_err(problems);
                    }
                    if let Some(index) = stand_ins.get_mut(&path) {
                        *index += 1;
                        if *index < STAND_INS.len() {
                            continue;
                        }
                        // No stand-in fits this type: go on without it, to
                        // find the problems after it.
                        stand_ins.remove(&path);
                        excluded.insert(path);
                        continue;
                    }
                    // A missing struct is not a variable anyone can set: its
                    // fields are. Once a field of it is found missing, the
                    // struct's own entry goes.
                    found.retain(|(earlier, problem)| {
                        !(matches!(problem.kind(), ProblemKind::Missing)
                            && earlier.len() < path.len()
                            && path.starts_with(earlier))
                    });
                    found.push((path.clone(), self.problem(&vars, failure)));
                    stand_ins.insert(path, 0);
                }
                (Err(err), None) => {
                    problems.extend(found.into_iter().map(|(_, problem)| problem));
                    problems.push(Problem {
                        variable: format!("{}*", self.prefix.to_ascii_uppercase()),
                        source: None,
                        kind: ProblemKind::Invalid(err.to_string()),
                    });
                    return finish_err(problems);
                }
            }
        }
        problems.extend(found.into_iter().map(|(_, problem)| problem));
        finish_err(problems)
    }

    /// The problems of the pass that ends the load: what it recorded, and
    /// (with a prefix) the variables no field asked for.
    fn last_pass(&self, ctx: Ctx<'_>, vars: &[Var], root: &crate::de::Node) -> Vec<Problem> {
        let mut problems = ctx.problems.into_inner();
        if !self.prefix.is_empty() {
            problems.extend(unknown(&self.prefix, vars, root, &ctx.structs.into_inner()));
        }
        problems
    }

    fn problem(&self, vars: &[Var], failure: Failure) -> Problem {
        match failure {
            Failure::Invalid {
                path,
                var,
                expected,
            } => {
                let var = var.map(|index| &vars[index]);
                Problem {
                    variable: var.map_or_else(|| self.name(&path), |var| var.name.clone()),
                    source: var.map(|var| var.source.clone()),
                    kind: ProblemKind::Invalid(expected),
                }
            }
            Failure::Missing { path } => Problem {
                variable: self.name(&path),
                source: None,
                kind: ProblemKind::Missing,
            },
        }
    }

    /// The variable name for a settings path.
    fn name(&self, path: &[String]) -> String {
        format!("{}{}", self.prefix, path.join("__")).to_ascii_uppercase()
    }

    /// The effective settings, each variable with its value (secrets
    /// redacted: [`Secret`](crate::Secret) serializes as `[redacted]`) and
    /// where it came from, for a `--print-config` flag. A pair as
    /// [`load_both`](Self::load_both) returns it explains both.
    pub fn explain<T: Serialize>(&self, settings: &T) -> Explanation {
        let value = to_value(settings);
        let fields: Vec<&str> = match &value {
            Value::Object(map) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let wanted = self.prefix.is_empty().then_some(fields.as_slice());
        let mut ignored = Vec::new();
        let vars = self.variables(wanted, &mut ignored);
        let sources: HashMap<&str, &Source> = vars
            .iter()
            .map(|var| (var.name.as_str(), &var.source))
            .collect();
        let mut entries = Vec::new();
        flatten(&self.prefix, &value, &mut Vec::new(), &mut |name, value| {
            let source = sources
                .get(name.as_str())
                .copied()
                .cloned()
                .unwrap_or(Source::Default);
            entries.push((name, value, source));
        });
        Explanation { entries }
    }

    /// A `.env.example` listing every variable with its default (`T`'s
    /// `Default`); secrets and unset options are left empty.
    pub fn env_example<T: Default + Serialize>(&self) -> String {
        let mut text = String::from("# Every variable, with its default.\n");
        flatten(
            &self.prefix,
            &to_value(&T::default()),
            &mut Vec::new(),
            &mut |name, value| match value.as_deref() {
                None => text.push_str(&format!("# {name}=\n")),
                Some("[redacted]") => text.push_str(&format!("{name}=\n")),
                Some(value) => text.push_str(&format!("{name}={value}\n")),
            },
        );
        text
    }

    /// Loads `T` into a handle that can be reloaded.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn reloadable<T: DeserializeOwned>(self) -> Result<Reloadable<T>, ConfigError> {
        let settings = self.load()?;
        Ok(Reloadable {
            loader: self,
            current: ArcSwap::from_pointee(settings),
        })
    }
}

/// The top-level field names of `T`, when it is a struct: found by one
/// pass over no variables, which meets the struct before anything fails.
fn root_fields<T: DeserializeOwned>() -> Option<Vec<&'static str>> {
    let stand_ins = HashMap::new();
    let excluded = HashSet::new();
    let empty = crate::de::Node::Map(Default::default());
    let ctx = Ctx::new(&[], &stand_ins, &excluded);
    let _ = T::deserialize(De::root(&ctx, &empty));
    ctx.structs
        .into_inner()
        .into_iter()
        .find(|(path, _)| path.is_empty())
        .map(|(_, fields)| fields.to_vec())
}

fn finish<T>(value: T, problems: Vec<Problem>) -> Result<T, ConfigError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        finish_err(problems)
    }
}

fn finish_err<T>(mut problems: Vec<Problem>) -> Result<T, ConfigError> {
    problems.sort_by(|a, b| a.variable.cmp(&b.variable));
    problems.dedup();
    Err(ConfigError { problems })
}

/// Variables inside the prefix that no field reads, with the closest name.
fn unknown(
    prefix: &str,
    vars: &[Var],
    root: &crate::de::Node,
    structs: &[(Vec<String>, &'static [&'static str])],
) -> Vec<Problem> {
    use crate::de::Node;
    let mut problems = Vec::new();
    // The fields each path's structs read (two at the root with
    // `load_both`), in the order first seen.
    let mut paths: Vec<(&Vec<String>, Vec<&'static str>)> = Vec::new();
    for (path, fields) in structs {
        match paths.iter_mut().find(|(known, _)| *known == path) {
            Some((_, known)) => known.extend(fields.iter().copied()),
            None => paths.push((path, fields.to_vec())),
        }
    }
    for (path, fields) in paths {
        // The struct's own node; a struct with no variable at all (a
        // missing one, given a stand-in) has none, and nothing unknown.
        let mut node = Some(root);
        for segment in path {
            node = match node {
                Some(Node::Map(map)) => map.get(segment),
                _ => None,
            };
        }
        let Some(Node::Map(map)) = node else { continue };
        for (key, child) in map {
            if fields.iter().any(|field| field.eq_ignore_ascii_case(key)) {
                continue;
            }
            let closest = fields
                .iter()
                .map(|field| {
                    (
                        strsim::levenshtein(&field.to_ascii_lowercase(), key),
                        *field,
                    )
                })
                .min()
                .filter(|(distance, field)| *distance <= 2.max(field.len() / 3));
            let did_you_mean = closest.map(|(_, field)| {
                let mut full = path.clone();
                full.push((*field).to_owned());
                format!("{prefix}{}", full.join("__")).to_ascii_uppercase()
            });
            let mut leaves = Vec::new();
            collect_leaves(child, &mut leaves);
            for index in leaves {
                problems.push(Problem {
                    variable: vars[index].name.clone(),
                    source: Some(vars[index].source.clone()),
                    kind: ProblemKind::Unknown {
                        did_you_mean: did_you_mean.clone(),
                    },
                });
            }
        }
    }
    problems
}

fn collect_leaves(node: &crate::de::Node, leaves: &mut Vec<usize>) {
    match node {
        crate::de::Node::Leaf(index) => leaves.push(*index),
        crate::de::Node::Map(map) => map.values().for_each(|child| collect_leaves(child, leaves)),
    }
}

/// `settings` as a JSON object; a pair of structs (what
/// [`Loader::load_both`] returns) as one object of both.
fn to_value<T: Serialize>(settings: &T) -> Value {
    match serde_json::to_value(settings).unwrap_or(Value::Null) {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut merged = serde_json::Map::new();
            for item in items {
                if let Value::Object(map) = item {
                    merged.extend(map);
                }
            }
            Value::Object(merged)
        }
        value => value,
    }
}

/// Calls `emit(NAME, value)` for each leaf of a serialized settings value;
/// `None` for an unset option.
fn flatten(
    prefix: &str,
    value: &Value,
    path: &mut Vec<String>,
    emit: &mut dyn FnMut(String, Option<String>),
) {
    let name = || format!("{prefix}{}", path.join("__")).to_ascii_uppercase();
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                flatten(prefix, child, path, emit);
                path.pop();
            }
        }
        Value::Null => emit(name(), None),
        Value::String(text) => emit(name(), Some(text.clone())),
        Value::Array(items) => emit(
            name(),
            Some(
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        other => emit(name(), Some(other.to_string())),
    }
}

/// The effective settings, redacted, with the source of each; `Display`
/// prints one `NAME=value  # source` line each.
#[derive(Clone, Debug)]
pub struct Explanation {
    entries: Vec<(String, Option<String>, Source)>,
}

impl Explanation {
    /// Each variable: its name, its value (`None` when an option is unset),
    /// and its source.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>, &Source)> {
        self.entries
            .iter()
            .map(|(name, value, source)| (name.as_str(), value.as_deref(), source))
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value, source) in &self.entries {
            writeln!(f, "{name}={}  # {source}", value.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

/// Settings that can be reloaded while the program runs; reads are
/// lock-free (arc-swap).
///
/// # Examples
///
/// ```
/// use seaworthy_config::Loader;
///
/// #[derive(serde::Deserialize)]
/// struct Settings { level: String }
///
/// let settings = Loader::new("APP_")
///     .from_iter([("APP_LEVEL", "info")])
///     .reloadable::<Settings>()
///     .unwrap();
/// assert_eq!(settings.load().level, "info");
/// ```
pub struct Reloadable<T> {
    loader: Loader,
    current: ArcSwap<T>,
}

impl<T: DeserializeOwned> Reloadable<T> {
    /// The current settings (lock-free).
    pub fn load(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// The current settings, as an `Arc` to keep.
    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Reads the sources again. Settings that do not validate are not
    /// applied: the old ones stay, and the full error is returned. Wire it to
    /// `SIGHUP` with tokio's signal support or seaworthy-shutdown's.
    ///
    /// # Errors
    ///
    /// As [`Loader::load`].
    pub fn reload(&self) -> Result<(), ConfigError> {
        let settings = self.loader.load()?;
        self.current.store(Arc::new(settings));
        Ok(())
    }

    /// Replaces the loader's variables (a test's map), for the next reload.
    pub fn set_loader(&mut self, loader: Loader) {
        self.loader = loader;
    }
}

impl<T> fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable")
            .field("loader", &self.loader)
            .finish_non_exhaustive()
    }
}
