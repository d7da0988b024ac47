//! Benchmarks for seaworthy; see `benches/` and `docs/benchmarks.md`.
