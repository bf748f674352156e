//! What one verb does to one named sandbox, by its status: the expectation the model-based
//! test of the real binary (`crates/nucleus/tests/model.rs`) checks after every step, and
//! what docs/lifecycle.md says. `None` is "no such sandbox".

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// As `ps --format json` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `run -d --name N -- sleep`.
    RunD,
    /// `create --name N -- sleep`.
    Create,
    Start,
    /// `exec N -- true`.
    Exec,
    Stop,
    /// `kill N` (SIGKILL) or `kill N TERM`.
    Kill {
        term: bool,
    },
    Rm,
    RmF,
    Pause,
    Unpause,
    Restart,
    Gc,
    /// SIGKILL of the sandbox's monitor, from outside.
    KillMonitor,
    /// SIGKILL of its workload, from outside (not while paused: a frozen v1 task waits).
    KillWorkload,
}

pub const VERBS: &[Verb] = &[
    Verb::RunD,
    Verb::Create,
    Verb::Start,
    Verb::Exec,
    Verb::Stop,
    Verb::Kill { term: false },
    Verb::Kill { term: true },
    Verb::Rm,
    Verb::RmF,
    Verb::Pause,
    Verb::Unpause,
    Verb::Restart,
    Verb::Gc,
    Verb::KillMonitor,
    Verb::KillWorkload,
];

impl Verb {
    /// An action of the environment rather than a command (the test does it itself).
    pub fn external(self) -> bool {
        matches!(self, Self::KillMonitor | Self::KillWorkload)
    }
    /// Whether the step can be taken at all (the environment's kills need a live process).
    pub fn enabled(self, s: Option<Status>) -> bool {
        match self {
            Self::KillMonitor => {
                matches!(s, Some(Status::Created | Status::Running | Status::Paused))
            }
            Self::KillWorkload => s == Some(Status::Running),
            _ => true,
        }
    }
}

/// The command's result: whether it succeeds (exit 0; a refusal is exit 125 with one line),
/// and the sandbox's status after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub next: Option<Status>,
}

pub fn apply(s: Option<Status>, v: Verb) -> Outcome {
    use Status::*;
    use Verb::*;
    let ok = |next| Outcome { ok: true, next };
    let refused = Outcome { ok: false, next: s };
    match (s, v) {
        (_, Gc) => ok(s),
        (None, RunD) | (Some(Stopped | Created | Running | Paused), Restart) => ok(Some(Running)),
        (None, Create) => ok(Some(Created)),
        (None, _) => refused,
        (Some(_), RunD | Create) => refused,
        (Some(Created), Start) => ok(Some(Running)),
        (Some(Running), Exec) => ok(s),
        (Some(_), Stop) => ok(Some(Stopped)),
        (Some(Created | Running | Paused), Kill { .. } | KillMonitor) => ok(Some(Stopped)),
        (Some(Running), KillWorkload) => ok(Some(Stopped)),
        (Some(Stopped), Rm) | (Some(_), RmF) => ok(None),
        (Some(Running), Pause) => ok(Some(Paused)),
        (Some(Paused), Unpause) => ok(Some(Running)),
        _ => refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's shape: from every status some verb leads to each other status, and only
    /// `rm`/`rm -f` make a sandbox disappear.
    #[test]
    fn every_status_is_reachable_and_only_rm_removes() {
        let all = [
            None,
            Some(Status::Created),
            Some(Status::Running),
            Some(Status::Paused),
            Some(Status::Stopped),
        ];
        for from in all {
            for v in VERBS {
                let o = apply(from, *v);
                if from.is_some() && o.next.is_none() {
                    assert!(matches!(v, Verb::Rm | Verb::RmF), "{v:?} removed {from:?}");
                }
                if !o.ok {
                    assert_eq!(o.next, from, "{v:?} refused yet changed {from:?}");
                }
            }
        }
        for to in all {
            assert!(
                all.iter()
                    .any(|f| VERBS.iter().any(|v| apply(*f, *v).next == to && *f != to)),
                "{to:?} unreachable"
            );
        }
    }
}
