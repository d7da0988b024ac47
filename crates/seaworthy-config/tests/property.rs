//! Property test: k broken variables (missing or invalid, mixed) give
//! exactly k problems in one load, each naming its variable.

use proptest::prelude::*;
use seaworthy_config::{Loader, ProblemKind};

#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Mode {
    Fast,
    Slow,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Fifty {
    field_00: u16,
    field_01: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_02: std::time::Duration,
    field_03: std::net::IpAddr,
    field_04: Mode,
    field_05: u16,
    field_06: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_07: std::time::Duration,
    field_08: std::net::IpAddr,
    field_09: Mode,
    field_10: u16,
    field_11: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_12: std::time::Duration,
    field_13: std::net::IpAddr,
    field_14: Mode,
    field_15: u16,
    field_16: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_17: std::time::Duration,
    field_18: std::net::IpAddr,
    field_19: Mode,
    field_20: u16,
    field_21: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_22: std::time::Duration,
    field_23: std::net::IpAddr,
    field_24: Mode,
    field_25: u16,
    field_26: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_27: std::time::Duration,
    field_28: std::net::IpAddr,
    field_29: Mode,
    field_30: u16,
    field_31: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_32: std::time::Duration,
    field_33: std::net::IpAddr,
    field_34: Mode,
    field_35: u16,
    field_36: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_37: std::time::Duration,
    field_38: std::net::IpAddr,
    field_39: Mode,
    field_40: u16,
    field_41: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_42: std::time::Duration,
    field_43: std::net::IpAddr,
    field_44: Mode,
    field_45: u16,
    field_46: bool,
    #[serde(with = "seaworthy_config::duration")]
    field_47: std::time::Duration,
    field_48: std::net::IpAddr,
    field_49: Mode,
}

/// Each field: its name, a good value, a bad value.
const FIELDS: [(&str, &str, &str); 50] = [
    ("field_00", "8080", "abc"),
    ("field_01", "yes", "maybe"),
    ("field_02", "30s", "soon"),
    ("field_03", "10.0.0.1", "nope"),
    ("field_04", "fast", "medium"),
    ("field_05", "8080", "abc"),
    ("field_06", "yes", "maybe"),
    ("field_07", "30s", "soon"),
    ("field_08", "10.0.0.1", "nope"),
    ("field_09", "fast", "medium"),
    ("field_10", "8080", "abc"),
    ("field_11", "yes", "maybe"),
    ("field_12", "30s", "soon"),
    ("field_13", "10.0.0.1", "nope"),
    ("field_14", "fast", "medium"),
    ("field_15", "8080", "abc"),
    ("field_16", "yes", "maybe"),
    ("field_17", "30s", "soon"),
    ("field_18", "10.0.0.1", "nope"),
    ("field_19", "fast", "medium"),
    ("field_20", "8080", "abc"),
    ("field_21", "yes", "maybe"),
    ("field_22", "30s", "soon"),
    ("field_23", "10.0.0.1", "nope"),
    ("field_24", "fast", "medium"),
    ("field_25", "8080", "abc"),
    ("field_26", "yes", "maybe"),
    ("field_27", "30s", "soon"),
    ("field_28", "10.0.0.1", "nope"),
    ("field_29", "fast", "medium"),
    ("field_30", "8080", "abc"),
    ("field_31", "yes", "maybe"),
    ("field_32", "30s", "soon"),
    ("field_33", "10.0.0.1", "nope"),
    ("field_34", "fast", "medium"),
    ("field_35", "8080", "abc"),
    ("field_36", "yes", "maybe"),
    ("field_37", "30s", "soon"),
    ("field_38", "10.0.0.1", "nope"),
    ("field_39", "fast", "medium"),
    ("field_40", "8080", "abc"),
    ("field_41", "yes", "maybe"),
    ("field_42", "30s", "soon"),
    ("field_43", "10.0.0.1", "nope"),
    ("field_44", "fast", "medium"),
    ("field_45", "8080", "abc"),
    ("field_46", "yes", "maybe"),
    ("field_47", "30s", "soon"),
    ("field_48", "10.0.0.1", "nope"),
    ("field_49", "fast", "medium"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn k_broken_variables_give_exactly_k_problems(
        broken in proptest::sample::subsequence((0..50_usize).collect::<Vec<_>>(), 1..=50),
        missing_mask in proptest::collection::vec(any::<bool>(), 50),
    ) {
        let mut variables = Vec::new();
        let mut expected = Vec::new();
        for (index, (name, good, bad)) in FIELDS.iter().enumerate() {
            let variable = format!("APP_{}", name.to_uppercase());
            if broken.contains(&index) {
                if missing_mask[index] {
                    expected.push((variable, true));
                } else {
                    variables.push((variable.clone(), (*bad).to_owned()));
                    expected.push((variable, false));
                }
            } else {
                variables.push((variable, (*good).to_owned()));
            }
        }
        let err = Loader::new("APP_").from_iter(variables).load::<Fifty>().unwrap_err();
        let problems = err.problems();
        prop_assert_eq!(problems.len(), broken.len(), "{}", err);
        expected.sort();
        for (problem, (variable, missing)) in problems.iter().zip(&expected) {
            prop_assert_eq!(problem.variable(), variable.as_str());
            if *missing {
                prop_assert_eq!(problem.kind(), &ProblemKind::Missing);
            } else {
                prop_assert!(matches!(problem.kind(), ProblemKind::Invalid(_)), "{}", problem);
            }
        }
    }
}

#[test]
fn all_good_loads() {
    let variables: Vec<_> = FIELDS
        .iter()
        .map(|(name, good, _)| (format!("APP_{}", name.to_uppercase()), (*good).to_owned()))
        .collect();
    let fifty: Fifty = Loader::new("APP_").from_iter(variables).load().unwrap();
    assert_eq!(fifty.field_00, 8080);
    assert!(fifty.field_01);
}

/// A type of the user's own that no stand-in value parses as.
#[derive(Debug)]
#[allow(dead_code)]
struct Rate(u32);

impl Default for Rate {
    fn default() -> Self {
        Rate(10)
    }
}

impl std::str::FromStr for Rate {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_suffix("/s")
            .and_then(|count| count.parse().ok())
            .filter(|&count| count > 0)
            .map(Rate)
            .ok_or("a rate like 10/s")
    }
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Db {
    url: String,
    pool: u16,
}

/// Every kind of field that fails differently: parsed here (numbers,
/// bools, enums, lists), by the type's own visitor (addresses), by a
/// `with` module, by `FromStr` (which no stand-in fits: such a field needs
/// a default for the load to look past it, see the crate docs), a nested
/// struct.
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Mixed {
    port: u16,
    flag: bool,
    #[serde(with = "seaworthy_config::duration")]
    wait: std::time::Duration,
    host: std::net::IpAddr,
    mode: Mode,
    #[serde(with = "seaworthy_config::from_str", default)]
    rate: Rate,
    #[serde(with = "seaworthy_config::from_str", default)]
    burst_rate: Rate,
    list: Vec<u16>,
    db: Db,
}

/// Name, good value, bad value (`None`: this one can only be missing), and
/// whether it has a default (then missing is no problem).
const MIXED: [(&str, &str, Option<&str>, bool); 10] = [
    ("APP_PORT", "8080", Some("http"), false),
    ("APP_FLAG", "on", Some("perhaps"), false),
    ("APP_WAIT", "5s", Some("later"), false),
    ("APP_HOST", "::1", Some("localhost:x"), false),
    ("APP_MODE", "slow", Some("medium"), false),
    ("APP_RATE", "10/s", Some("0/s"), true),
    ("APP_BURST_RATE", "5/s", Some("lots"), true),
    ("APP_LIST", "1,2", Some("1,x"), false),
    ("APP_DB__URL", "postgres://db", None, false),
    ("APP_DB__POOL", "4", Some("many"), false),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever mix of kinds fails, every problem survives: one per broken
    /// variable, named, and a misspelled variable's "did you mean" too.
    #[test]
    fn every_problem_survives_any_mix_of_failing_field_kinds(
        broken in proptest::sample::subsequence((0..MIXED.len()).collect::<Vec<_>>(), 1..=MIXED.len()),
        missing_mask in proptest::collection::vec(any::<bool>(), MIXED.len()),
        misspelled in any::<bool>(),
    ) {
        let mut variables = Vec::new();
        let mut expected = Vec::new();
        for (index, (name, good, bad, default)) in MIXED.iter().enumerate() {
            if !broken.contains(&index) {
                variables.push(((*name).to_owned(), (*good).to_owned()));
                continue;
            }
            match bad.filter(|_| !missing_mask[index]) {
                Some(bad) => {
                    variables.push(((*name).to_owned(), (*bad).to_owned()));
                    expected.push((*name).to_owned());
                }
                None if *default => {}
                None => expected.push((*name).to_owned()),
            }
        }
        if misspelled {
            variables.push(("APP_PROT".to_owned(), "1".to_owned()));
            expected.push("APP_PROT".to_owned());
        }
        if expected.is_empty() {
            prop_assert!(Loader::new("APP_").from_iter(variables).load::<Mixed>().is_ok());
            return Ok(());
        }
        let err = Loader::new("APP_").from_iter(variables).load::<Mixed>().unwrap_err();
        let mut named: Vec<String> =
            err.problems().iter().map(|problem| problem.variable().to_owned()).collect();
        named.sort();
        expected.sort();
        prop_assert_eq!(&named, &expected, "{}", err);
        if misspelled {
            prop_assert!(err.to_string().contains("did you mean APP_PORT"), "{}", err);
        }
        // Never a value, and never a garbled expectation.
        let text = err.to_string();
        for secret in ["perhaps", "localhost:x", "lots", "many"] {
            prop_assert!(!text.contains(secret), "{}", text);
        }
        prop_assert!(!text.contains("[redacted]"), "{}", text);
    }
}
