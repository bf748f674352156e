//! `NUCLEUS_TRACE_TIMINGS=1`: where a run's time goes, stage by stage, on stderr at exit
//! (milliseconds since the process started, and the step from the previous stage). The
//! sandbox's own setup runs in the child between `go sent` and `workload applied`. Each stage
//! also shows the runtime process's page faults in it (`pf`): on a VM a fault can cost ~10 us,
//! and the runtime, its forked init and the workload's pre-exec setup take hundreds.

use std::sync::{Mutex, OnceLock};

static MARKS: Mutex<Vec<(&'static str, u64, u64)>> = Mutex::new(Vec::new());

/// Minor page faults of this process so far.
fn faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_minflt as u64
}

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("NUCLEUS_TRACE_TIMINGS").is_some_and(|v| v != "0"))
}

/// Record that `stage` is done now.
pub fn mark(stage: &'static str) {
    if enabled() {
        if let Ok(mut m) = MARKS.lock() {
            m.push((stage, crate::telemetry::now_ns(), faults()));
        }
    }
}

/// Print the stages (from `t0`, the process start) to stderr.
pub fn report(t0: u64) {
    if !enabled() {
        return;
    }
    let Ok(m) = MARKS.lock() else { return };
    let mut prev = t0;
    let mut prev_pf = 0;
    let mut out = String::from("nucleus: timings (ms since start, +step, page faults):");
    for (stage, t, pf) in m.iter() {
        out.push_str(&format!(
            " {stage} {:.2} (+{:.2}, {}pf);",
            t.saturating_sub(t0) as f64 / 1e6,
            t.saturating_sub(prev) as f64 / 1e6,
            pf.saturating_sub(prev_pf)
        ));
        prev = *t;
        prev_pf = *pf;
    }
    eprintln!("{}", out.trim_end_matches(';'));
}
