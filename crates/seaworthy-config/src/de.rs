//! The deserializer: variables as a tree, every problem collected.
//!
//! serde stops at the first error a visitor returns. To report every bad
//! variable in one load, this deserializer parses what it can itself
//! (booleans, numbers, enums by name) and records a problem with a
//! stand-in value instead of failing. Where only the target type's own
//! visitor can tell (a URL, a socket address, a duration helper), the pass
//! aborts, the problem is recorded, and the next pass gives that variable a
//! stand-in value that the type accepts, found from a short list. A missing
//! required field is found the same way, through serde's `missing_field`.
//! A load with k problems takes at most about k × 8 passes; a good load,
//! one.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use crate::source::Var;
use crate::values::parse_bool;
use crate::{Problem, ProblemKind};

/// Values tried, in order, for a variable whose own value (or absence)
/// stopped a pass.
pub(crate) const STAND_INS: &[&str] = &[
    "",
    "0",
    "false",
    "0s",
    "0.0.0.0:0",
    "127.0.0.1",
    "http://localhost/",
    "a",
];

/// Variables as a tree: `APP_DB__POOL_SIZE` is `db` → `pool_size`.
#[derive(Debug)]
pub(crate) enum Node {
    Leaf(usize),
    Map(BTreeMap<String, Node>),
}

pub(crate) fn build_tree(prefix_len: usize, vars: &[Var], problems: &mut Vec<Problem>) -> Node {
    let mut root = BTreeMap::new();
    'vars: for (index, var) in vars.iter().enumerate() {
        let rest = var.name[prefix_len..].to_ascii_lowercase();
        let segments: Vec<&str> = rest.split("__").collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            problems.push(Problem {
                variable: var.name.clone(),
                source: Some(var.source.clone()),
                kind: ProblemKind::Unknown { did_you_mean: None },
            });
            continue;
        }
        let mut map = &mut root;
        for (depth, segment) in segments.iter().enumerate() {
            let last = depth + 1 == segments.len();
            if last {
                if map.contains_key(*segment) {
                    conflict(problems, var);
                    continue 'vars;
                }
                map.insert((*segment).to_owned(), Node::Leaf(index));
            } else {
                let entry = map
                    .entry((*segment).to_owned())
                    .or_insert_with(|| Node::Map(BTreeMap::new()));
                match entry {
                    Node::Map(inner) => map = inner,
                    Node::Leaf(_) => {
                        conflict(problems, var);
                        continue 'vars;
                    }
                }
            }
        }
    }
    Node::Map(root)
}

fn conflict(problems: &mut Vec<Problem>, var: &Var) {
    problems.push(Problem {
        variable: var.name.clone(),
        source: Some(var.source.clone()),
        kind: ProblemKind::Conflict(
            "another variable sets the same setting as a single value and as nested values"
                .to_owned(),
        ),
    });
}

/// Why a pass stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    Invalid {
        path: Vec<String>,
        var: Option<usize>,
        expected: String,
    },
    Missing {
        path: Vec<String>,
    },
}

impl Failure {
    pub(crate) fn path(&self) -> &[String] {
        match self {
            Failure::Invalid { path, .. } | Failure::Missing { path } => path,
        }
    }
}

/// The state of one pass.
pub(crate) struct Ctx<'a> {
    pub(crate) vars: &'a [Var],
    pub(crate) stand_ins: &'a HashMap<Vec<String>, usize>,
    /// Fields left out of their struct: their value fits no stand-in, so
    /// the pass goes on without them (a struct with defaults fills them)
    /// to find the problems after them.
    pub(crate) excluded: &'a HashSet<Vec<String>>,
    pub(crate) problems: RefCell<Vec<Problem>>,
    pub(crate) failed: RefCell<Option<Failure>>,
    /// Each struct met, with its fields, to find unknown variables.
    pub(crate) structs: RefCell<Vec<(Vec<String>, &'static [&'static str])>>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        vars: &'a [Var],
        stand_ins: &'a HashMap<Vec<String>, usize>,
        excluded: &'a HashSet<Vec<String>>,
    ) -> Self {
        Ctx {
            vars,
            stand_ins,
            excluded,
            problems: RefCell::new(Vec::new()),
            failed: RefCell::new(None),
            structs: RefCell::new(Vec::new()),
        }
    }
}

/// The error type inside a pass. It never carries a value.
#[derive(Debug)]
pub(crate) enum DeError {
    /// The pass stopped; the reason is in `Ctx::failed`.
    Abort,
    Missing(&'static str),
    Message(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Abort => f.write_str("aborted"),
            DeError::Missing(field) => write!(f, "missing field {field}"),
            DeError::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DeError::Message(message.to_string())
    }

    fn invalid_type(_unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DeError::Message(expected.to_string())
    }

    fn invalid_value(_unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DeError::Message(expected.to_string())
    }

    fn invalid_length(_len: usize, expected: &dyn de::Expected) -> Self {
        DeError::Message(expected.to_string())
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::Message(format!("one of {}", expected.join(", ")))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        DeError::Message(format!("one of the fields {}", expected.join(", ")))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Missing(field)
    }
}

/// A value to deserialize: a node of the tree, or one element of a list.
pub(crate) struct De<'a, 'c> {
    ctx: &'c Ctx<'a>,
    node: Option<&'c Node>,
    path: Vec<String>,
    /// For a list element: its text, its variable, whether it stands in.
    element: Option<(&'c str, Option<usize>, bool)>,
}

struct Leaf<'c> {
    raw: &'c str,
    var: Option<usize>,
    stand_in: bool,
}

impl<'a, 'c> De<'a, 'c> {
    pub(crate) fn root(ctx: &'c Ctx<'a>, node: &'c Node) -> Self {
        De {
            ctx,
            node: Some(node),
            path: Vec::new(),
            element: None,
        }
    }

    fn leaf(&self) -> Option<Leaf<'c>> {
        if let Some((raw, var, stand_in)) = self.element {
            return Some(Leaf { raw, var, stand_in });
        }
        let var = match self.node {
            Some(Node::Leaf(index)) => Some(*index),
            _ => None,
        };
        if let Some(&index) = self.ctx.stand_ins.get(&self.path) {
            return Some(Leaf {
                raw: STAND_INS[index],
                var,
                stand_in: true,
            });
        }
        var.map(|index| Leaf {
            raw: self.ctx.vars[index].value.as_str(),
            var: Some(index),
            stand_in: false,
        })
    }

    /// Records that the value does not parse, unless it is a stand-in.
    fn invalid(&self, leaf: &Leaf<'_>, expected: String) {
        if leaf.stand_in {
            return;
        }
        let var = leaf.var.map(|index| &self.ctx.vars[index]);
        self.ctx.problems.borrow_mut().push(Problem {
            variable: var.map_or_else(|| self.path.join("__"), |var| var.name.clone()),
            source: var.map(|var| var.source.clone()),
            kind: ProblemKind::Invalid(expected),
        });
    }

    /// Stops the pass: this value needs a stand-in the type accepts.
    fn abort(&self, var: Option<usize>, expected: String) -> DeError {
        let raw = var.map(|index| self.ctx.vars[index].value.as_str());
        *self.ctx.failed.borrow_mut() = Some(Failure::Invalid {
            path: self.path.clone(),
            var,
            expected: scrub(expected, raw),
        });
        DeError::Abort
    }

    /// Hands the text to the type's own visitor; a refusal stops the pass.
    fn visit_text<V: Visitor<'c>>(&self, visitor: V) -> Result<V::Value, DeError> {
        let Some(leaf) = self.leaf() else {
            return Err(self.abort(None, "a single value, not nested variables".to_owned()));
        };
        // What the type says it expects ("IP address"), for parse errors
        // that only say what went wrong ("invalid IP address syntax").
        let expecting = format!("{}", &visitor as &dyn de::Expected);
        match visitor.visit_str::<DeError>(leaf.raw) {
            Ok(value) => Ok(value),
            Err(DeError::Message(message)) => {
                Err(self.abort(leaf.var, expectation(message, &expecting)))
            }
            Err(other) => Err(other),
        }
    }

    fn child(&self, node: Option<&'c Node>, key: &str) -> De<'a, 'c> {
        let mut path = self.path.clone();
        path.push(key.to_owned());
        De {
            ctx: self.ctx,
            node,
            path,
            element: None,
        }
    }
}

/// What to say was expected: a type's parse error when it says so, else
/// what the type's visitor expects, with the error beside it.
fn expectation(message: String, expecting: &str) -> String {
    let says_what_went_wrong = ["invalid", "cannot", "unexpected", "missing"]
        .iter()
        .any(|start| message.to_ascii_lowercase().starts_with(start));
    if says_what_went_wrong && !expecting.is_empty() {
        let article = if expecting.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        };
        let expecting = expecting
            .strip_prefix("a ")
            .or_else(|| expecting.strip_prefix("an "))
            .map_or_else(
                || format!("{article} {expecting}"),
                |_| expecting.to_owned(),
            );
        format!("{expecting} ({message})")
    } else {
        message
    }
}

/// Removes a value from a message, should a type's parse error quote it:
/// where it stands as a word of its own, so that a value that happens to be
/// part of the expectation (`0/s` in "10/s") leaves it whole.
fn scrub(message: String, raw: Option<&str>) -> String {
    let Some(raw) = raw.map(str::trim).filter(|raw| raw.len() >= 3) else {
        return message;
    };
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(at) = rest.find(raw) {
        let before = rest[..at]
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back());
        let after = rest[at + raw.len()..].chars().next();
        out.push_str(&rest[..at]);
        if word(before) || word(after) {
            out.push_str(raw);
        } else {
            out.push_str("[redacted]");
        }
        rest = &rest[at + raw.len()..];
    }
    out.push_str(rest);
    out
}

macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
            let Some(leaf) = self.leaf() else {
                return Err(self.abort(None, "a single value, not nested variables".to_owned()));
            };
            match leaf.raw.trim().parse::<$ty>() {
                Ok(value) => visitor.$visit(value),
                Err(_) => {
                    self.invalid(&leaf, format!($what, <$ty>::MIN, <$ty>::MAX));
                    visitor.$visit(<$ty>::default())
                }
            }
        }
    )*};
}

impl<'c> de::Deserializer<'c> for De<'_, 'c> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        match (self.element, self.node) {
            (None, Some(Node::Map(_))) if !self.ctx.stand_ins.contains_key(&self.path) => {
                self.deserialize_map(visitor)
            }
            _ => self.visit_text(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(leaf) = self.leaf() else {
            return Err(self.abort(None, "a single value, not nested variables".to_owned()));
        };
        match parse_bool(leaf.raw) {
            Some(value) => visitor.visit_bool(value),
            None => {
                self.invalid(
                    &leaf,
                    "a boolean (true, false, 1, 0, yes, no, on, off)".to_owned(),
                );
                visitor.visit_bool(false)
            }
        }
    }

    numbers! {
        deserialize_i8 visit_i8 i8, "an integer from {} to {}";
        deserialize_i16 visit_i16 i16, "an integer from {} to {}";
        deserialize_i32 visit_i32 i32, "an integer from {} to {}";
        deserialize_i64 visit_i64 i64, "an integer from {} to {}";
        deserialize_u8 visit_u8 u8, "an integer from {} to {}";
        deserialize_u16 visit_u16 u16, "an integer from {} to {}";
        deserialize_u32 visit_u32 u32, "an integer from {} to {}";
        deserialize_u64 visit_u64 u64, "an integer from {} to {}";
        deserialize_f32 visit_f32 f32, "a number (from {} to {})";
        deserialize_f64 visit_f64 f64, "a number (from {} to {})";
    }

    fn deserialize_char<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(leaf) = self.leaf() else {
            return Err(self.abort(None, "a single value, not nested variables".to_owned()));
        };
        let mut chars = leaf.raw.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => {
                self.invalid(&leaf, "a single character".to_owned());
                visitor.visit_char('\0')
            }
        }
    }

    fn deserialize_str<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_text(visitor)
    }

    fn deserialize_string<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_text(visitor)
    }

    fn deserialize_bytes<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_text(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_text(visitor)
    }

    fn deserialize_option<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.leaf() {
            // An empty value is no value.
            Some(leaf) if !leaf.stand_in && leaf.raw.trim().is_empty() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'c>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'c>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(leaf) = self.leaf() else {
            return Err(self.abort(
                None,
                "a comma-separated list, not nested variables".to_owned(),
            ));
        };
        // An empty value is an empty list, never [""].
        let items: Vec<&'c str> = if leaf.raw.trim().is_empty() {
            Vec::new()
        } else {
            leaf.raw.split(',').map(str::trim).collect()
        };
        visitor.visit_seq(List {
            de: &self,
            items: items.into_iter(),
            var: leaf.var,
            stand_in: leaf.stand_in,
        })
    }

    fn deserialize_tuple<V: Visitor<'c>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'c>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries: Vec<(String, Option<&'c Node>)> = match self.node {
            Some(Node::Map(map)) => map
                .iter()
                .map(|(key, node)| (key.clone(), Some(node)))
                .collect(),
            None => Vec::new(),
            Some(Node::Leaf(index)) => {
                return Err(self.abort(
                    Some(*index),
                    "nested variables (NAME__KEY=value), not a single value".to_owned(),
                ));
            }
        };
        visitor.visit_map(Entries {
            de: &self,
            entries: entries.into_iter(),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'c>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let map = match self.node {
            Some(Node::Map(map)) if !self.ctx.stand_ins.contains_key(&self.path) => Some(map),
            Some(Node::Leaf(index)) if !self.ctx.stand_ins.contains_key(&self.path) => {
                return Err(self.abort(
                    Some(*index),
                    "nested variables (NAME__FIELD=value), not a single value".to_owned(),
                ));
            }
            _ => None,
        };
        self.ctx
            .structs
            .borrow_mut()
            .push((self.path.clone(), fields));
        let mut entries: Vec<(String, Option<&'c Node>)> = Vec::new();
        for field in fields {
            let node = map.and_then(|map| map.get(&field.to_ascii_lowercase()));
            let mut path = self.path.clone();
            path.push(field.to_ascii_lowercase());
            if self.ctx.excluded.contains(&path) {
                continue;
            }
            if node.is_some() || self.ctx.stand_ins.contains_key(&path) {
                entries.push(((*field).to_owned(), node));
            }
        }
        match visitor.visit_map(Entries {
            de: &self,
            entries: entries.into_iter(),
            value: None,
        }) {
            Err(DeError::Missing(field)) => {
                let mut path = self.path.clone();
                path.push(field.to_ascii_lowercase());
                *self.ctx.failed.borrow_mut() = Some(Failure::Missing { path });
                Err(DeError::Abort)
            }
            other => other,
        }
    }

    fn deserialize_enum<V: Visitor<'c>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Some(leaf) = self.leaf() else {
            return Err(self.abort(None, format!("one of {}", variants.join(", "))));
        };
        let raw = leaf.raw.trim();
        let variant = match variants
            .iter()
            .find(|variant| variant.eq_ignore_ascii_case(raw))
        {
            Some(variant) => variant,
            None => {
                self.invalid(&leaf, format!("one of {}", variants.join(", ")));
                variants.first().copied().unwrap_or_default()
            }
        };
        visitor.visit_enum(UnitVariant(variant))
    }

    fn deserialize_identifier<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_text(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'c>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct List<'d, 'a, 'c> {
    de: &'d De<'a, 'c>,
    items: std::vec::IntoIter<&'c str>,
    var: Option<usize>,
    stand_in: bool,
}

impl<'c> SeqAccess<'c> for List<'_, '_, 'c> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'c>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(De {
            ctx: self.de.ctx,
            node: None,
            path: self.de.path.clone(),
            element: Some((item, self.var, self.stand_in)),
        })
        .map(Some)
    }
}

struct Entries<'d, 'a, 'c> {
    de: &'d De<'a, 'c>,
    entries: std::vec::IntoIter<(String, Option<&'c Node>)>,
    value: Option<(String, Option<&'c Node>)>,
}

impl<'c> MapAccess<'c> for Entries<'_, '_, 'c> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'c>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let value = seed.deserialize(key.as_str().into_deserializer()).map(Some);
        self.value = Some((key, node));
        value
    }

    fn next_value_seed<T: DeserializeSeed<'c>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let (key, node) = self.value.take().expect("next_key_seed comes first");
        seed.deserialize(self.de.child(node, &key.to_ascii_lowercase()))
    }
}

struct UnitVariant(&'static str);

impl<'c> EnumAccess<'c> for UnitVariant {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'c>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let value = seed.deserialize(self.0.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'c> VariantAccess<'c> for UnitVariant {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'c>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(DeError::Message(
            "a plain name (variants with data are not supported)".to_owned(),
        ))
    }

    fn tuple_variant<V: Visitor<'c>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(DeError::Message(
            "a plain name (variants with data are not supported)".to_owned(),
        ))
    }

    fn struct_variant<V: Visitor<'c>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(DeError::Message(
            "a plain name (variants with data are not supported)".to_owned(),
        ))
    }
}
