//! The sandbox lifecycle as state machines, for exhaustive checking (stateright) and as the
//! oracle of the model-based tests of the real binary.
//!
//! - [`store`]: the state store's protocol under concurrency (launchers, monitors, `start`,
//!   `rm`, SIGKILLs, pid reuse), every interleaving explored.
//! - [`verbs`]: what one caller's verb does to one sandbox, status by status: the expectation
//!   `tests/model.rs` checks the real binary against after every step.
//! - [`compose`]: the start order of every dependency graph of a few services, through the
//!   real `nucleus_spec::compose`.

pub mod compose;
pub mod store;
pub mod verbs;
