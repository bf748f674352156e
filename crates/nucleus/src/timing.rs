//! `NUCLEUS_TRACE_TIMINGS=1` (see `nucleus_sys::trace`, which also records the sandbox's own
//! stages).

pub(crate) use nucleus_sys::trace::{mark, report};
