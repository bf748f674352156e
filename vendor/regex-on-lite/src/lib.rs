//! `regex`, as oci-spec uses it, on `regex-lite` (the regex crate's own small sibling, same
//! API for what oci-spec calls: `Regex::new`, `RegexBuilder`, `is_match`, `captures`).
//!
//! Why: oci-spec validates one field (`process.execCPUAffinity`, `^(\d+(-\d+)?)(,\d+(-\d+)?)*$`)
//! with the full regex crate, whose Unicode tables are ~50 pages of pointers the static-PIE
//! binary relocates, copy-on-write, at the start of every process it runs (`nucleus run`
//! included: docs/benchmarks.md, session 23). regex-lite has no Unicode classes: `\d` is ASCII
//! digits, which is what a CPU list is made of.
//!
//! The workspace's `[patch.crates-io]` puts this crate in place of crates.io's `regex` (and
//! fuzz/'s); no crate of ours uses regex directly. It declares none of regex's features on
//! purpose: a new dependency that asks for one (`unicode`, `perf`…) fails to resolve rather
//! than silently getting regex-lite. nucleus-spec's `process_tuning_is_the_kernels_values`
//! checks that the patch applies.
pub use regex_lite::*;
