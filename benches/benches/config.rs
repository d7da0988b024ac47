//! seaworthy-config: loading a 100-field struct from a 1,000-variable
//! environment (100 of them in the prefix), beside envy on the same
//! variables (which stops at the first error and has no sources, secrets or
//! `_FILE`).
//!
//! `cargo bench -p seaworthy-benches --bench config`; results in
//! `docs/benchmarks.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use seaworthy::config::Loader;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Hundred {
    field_000: u32,
    field_001: String,
    field_002: bool,
    field_003: u16,
    field_004: u32,
    field_005: String,
    field_006: bool,
    field_007: u16,
    field_008: u32,
    field_009: String,
    field_010: bool,
    field_011: u16,
    field_012: u32,
    field_013: String,
    field_014: bool,
    field_015: u16,
    field_016: u32,
    field_017: String,
    field_018: bool,
    field_019: u16,
    field_020: u32,
    field_021: String,
    field_022: bool,
    field_023: u16,
    field_024: u32,
    field_025: String,
    field_026: bool,
    field_027: u16,
    field_028: u32,
    field_029: String,
    field_030: bool,
    field_031: u16,
    field_032: u32,
    field_033: String,
    field_034: bool,
    field_035: u16,
    field_036: u32,
    field_037: String,
    field_038: bool,
    field_039: u16,
    field_040: u32,
    field_041: String,
    field_042: bool,
    field_043: u16,
    field_044: u32,
    field_045: String,
    field_046: bool,
    field_047: u16,
    field_048: u32,
    field_049: String,
    field_050: bool,
    field_051: u16,
    field_052: u32,
    field_053: String,
    field_054: bool,
    field_055: u16,
    field_056: u32,
    field_057: String,
    field_058: bool,
    field_059: u16,
    field_060: u32,
    field_061: String,
    field_062: bool,
    field_063: u16,
    field_064: u32,
    field_065: String,
    field_066: bool,
    field_067: u16,
    field_068: u32,
    field_069: String,
    field_070: bool,
    field_071: u16,
    field_072: u32,
    field_073: String,
    field_074: bool,
    field_075: u16,
    field_076: u32,
    field_077: String,
    field_078: bool,
    field_079: u16,
    field_080: u32,
    field_081: String,
    field_082: bool,
    field_083: u16,
    field_084: u32,
    field_085: String,
    field_086: bool,
    field_087: u16,
    field_088: u32,
    field_089: String,
    field_090: bool,
    field_091: u16,
    field_092: u32,
    field_093: String,
    field_094: bool,
    field_095: u16,
    field_096: u32,
    field_097: String,
    field_098: bool,
    field_099: u16,
}

fn variables() -> Vec<(String, String)> {
    let mut variables = Vec::new();
    for i in 0..100 {
        let value = match i % 4 {
            0 => "123456".to_owned(),
            1 => format!("value number {i}"),
            2 => "true".to_owned(),
            _ => "8080".to_owned(),
        };
        variables.push((format!("APP_FIELD_{i:03}"), value));
    }
    for i in 0..900 {
        variables.push((
            format!("OTHER_VARIABLE_{i}"),
            format!("/usr/local/bin:/usr/bin:{i}"),
        ));
    }
    variables
}

fn load(c: &mut Criterion) {
    let variables = variables();
    let loader = Loader::new("APP_").from_iter(variables.clone());
    assert!(loader.load::<Hundred>().is_ok());
    let mut group = c.benchmark_group("100 fields from 1000 variables");
    group.bench_function("seaworthy-config Loader::load", |b| {
        b.iter(|| loader.load::<Hundred>().unwrap());
    });
    group.bench_function("envy::prefixed(..).from_iter", |b| {
        b.iter(|| {
            envy::prefixed("APP_")
                .from_iter::<_, Hundred>(variables.clone())
                .unwrap()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = seaworthy_benches::criterion();
    targets = load
}
criterion_main!(benches);
