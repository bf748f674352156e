//! `NUCLEUS_TRACE_TIMINGS=1`: where a run's time goes, stage by stage, on stderr at exit
//! (milliseconds since the runtime's `main`, the step from the previous stage, and the page
//! faults of the process that did the step: a few microseconds each on this VM). Stages of the
//! sandbox's own setup (`sandbox:`) and of the workload before its exec (`workload:`) are
//! recorded in those processes and sent to the runtime with the workload's report, so one
//! timeline shows all three.

use serde::{Deserialize, Serialize};
use std::sync::{Mutex, OnceLock};

/// One stage: who did it, what, when (ns since the epoch), and that process's faults so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mark {
    pub who: String,
    pub stage: String,
    pub at_ns: u64,
    pub faults: u64,
}

static MARKS: Mutex<Vec<Mark>> = Mutex::new(Vec::new());

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("NUCLEUS_TRACE_TIMINGS").is_some_and(|v| v != "0"))
}

/// Wall-clock nanoseconds since the epoch (timelines and telemetry spans).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Minor page faults of this process so far (they start from zero in a forked child).
fn faults() -> u64 {
    crate::raw::rusage(false).map_or(0, |ru| ru.ru_minflt as u64)
}

/// Record that `stage` is done now, in the runtime (`who` empty) or a sandbox process.
pub fn mark_as(who: &str, stage: &str) {
    if enabled() {
        if let Ok(mut m) = MARKS.lock() {
            m.push(Mark {
                who: who.into(),
                stage: stage.into(),
                at_ns: now_ns(),
                faults: faults(),
            });
        }
    }
}

pub fn mark(stage: &str) {
    mark_as("", stage)
}

/// This process's marks (a sandbox process sends them to the runtime).
pub fn take() -> Vec<Mark> {
    MARKS
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default()
}

/// Marks from a sandbox process, into the runtime's timeline.
pub fn merge(marks: Vec<Mark>) {
    if let Ok(mut m) = MARKS.lock() {
        m.extend(marks);
    }
}

/// Print the timeline (from `t0`, the runtime's start) to stderr.
pub fn report(t0: u64) {
    if !enabled() {
        return;
    }
    let Ok(mut m) = MARKS.lock() else { return };
    m.sort_by_key(|k| k.at_ns);
    let mut prev = t0;
    let mut prev_pf: Vec<(&str, u64)> = Vec::new();
    let mut out = String::from("nucleus: timings (ms since start, +step, page faults):");
    for k in m.iter() {
        let before = prev_pf
            .iter()
            .find(|(w, _)| *w == k.who)
            .map_or(0, |(_, f)| *f);
        let who = if k.who.is_empty() {
            String::new()
        } else {
            format!("{}: ", k.who)
        };
        out.push_str(&format!(
            " {who}{} {:.2} (+{:.2}, {}pf);",
            k.stage,
            k.at_ns.saturating_sub(t0) as f64 / 1e6,
            k.at_ns.saturating_sub(prev) as f64 / 1e6,
            k.faults.saturating_sub(before)
        ));
        prev = k.at_ns;
        match prev_pf.iter_mut().find(|(w, _)| *w == k.who) {
            Some(e) => e.1 = k.faults,
            None => prev_pf.push((&k.who, k.faults)),
        }
    }
    eprintln!("{}", out.trim_end_matches(';'));
}
