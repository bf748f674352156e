//! Where a start failed, and the exit status that says so: the steps of making a sandbox
//! (125: nucleus could not) and of starting its workload (126: the command could not be run;
//! 127: it does not exist), as docker, podman and the shell report them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A step of a start that can fail. Its name is what messages and records show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    // The sandbox (its init, or the process `exec` makes).
    JoinCgroup,
    JoinNamespaces,
    JoinTimeNamespace,
    UserNamespace,
    Dumpable,
    ParentDeathSignal,
    TimeNamespace,
    Hostname,
    NetworkNamespace,
    Network,
    EgressPolicy,
    Mounts,
    SwitchRoot,
    Tty,
    CgroupNamespace,
    Capabilities,
    Init,
    ForkWorkload,
    ExecSync,
    /// The runtime could not hand the terminal to `--console-socket`.
    ConsoleSocket,
    // The workload process, after its sandbox was made.
    Rlimits,
    Identity,
    Workdir,
    NoNewPrivs,
    Landlock,
    Descriptors,
    Seccomp,
    Exec,
    /// A created sandbox (`create`) was killed before `start`.
    Start,
    /// An OCI hook failed.
    Hooks,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Self::JoinCgroup => "join cgroup",
            Self::JoinNamespaces => "join namespaces",
            Self::JoinTimeNamespace => "join time namespace",
            Self::UserNamespace => "user namespace",
            Self::Dumpable => "dumpable",
            Self::ParentDeathSignal => "set parent-death signal",
            Self::TimeNamespace => "time namespace",
            Self::Hostname => "hostname",
            Self::NetworkNamespace => "network namespace",
            Self::Network => "network",
            Self::EgressPolicy => "egress policy",
            Self::Mounts => "mounts",
            Self::SwitchRoot => "switch root",
            Self::Tty => "tty",
            Self::CgroupNamespace => "cgroup namespace",
            Self::Capabilities => "capabilities",
            Self::Init => "init",
            Self::ForkWorkload => "fork workload",
            Self::ExecSync => "exec sync",
            Self::ConsoleSocket => "console socket",
            Self::Rlimits => "rlimits",
            Self::Identity => "identity",
            Self::Workdir => "workdir",
            Self::NoNewPrivs => "no_new_privs",
            Self::Landlock => "landlock",
            Self::Descriptors => "descriptors",
            Self::Seccomp => "seccomp",
            Self::Exec => "exec",
            Self::Start => "start",
            Self::Hooks => "hooks",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A start that failed: where, why, and whether the command was missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartFailure {
    pub stage: Stage,
    pub error: String,
    /// The command does not exist (the shell's 127).
    #[serde(default)]
    pub not_found: bool,
    /// Already said on the workload's stderr (by gVisor's runsc, whose errors go there): a
    /// foreground run does not say it twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub said: bool,
}

impl StartFailure {
    pub fn new(stage: Stage, error: impl Into<String>) -> Self {
        Self {
            stage,
            error: error.into(),
            not_found: false,
            said: false,
        }
    }

    /// `exec` found no such command.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self {
            not_found: true,
            ..Self::new(Stage::Exec, error)
        }
    }

    /// The status a start that failed so ends with: 127 the command does not exist, 126 it
    /// could not be run (`exec`, `workdir`), 137 a created sandbox was killed before `start`
    /// (128 + SIGKILL), 125 nucleus could not make the sandbox.
    pub fn exit_code(&self) -> u8 {
        match self.stage {
            Stage::Exec if self.not_found => 127,
            Stage::Exec | Stage::Workdir => 126,
            Stage::Start => 137,
            _ => 125,
        }
    }
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_and_docker() {
        assert_eq!(
            StartFailure::not_found("x: command not found").exit_code(),
            127
        );
        assert_eq!(
            StartFailure::new(Stage::Exec, "x: permission denied").exit_code(),
            126
        );
        assert_eq!(
            StartFailure::new(Stage::Workdir, "/w: gone").exit_code(),
            126
        );
        assert_eq!(StartFailure::new(Stage::Start, "killed").exit_code(), 137);
        for s in [
            Stage::Mounts,
            Stage::Seccomp,
            Stage::Landlock,
            Stage::ConsoleSocket,
        ] {
            assert_eq!(StartFailure::new(s, "e").exit_code(), 125);
        }
        assert_eq!(
            StartFailure::new(Stage::NoNewPrivs, "EPERM").to_string(),
            "no_new_privs: EPERM"
        );
    }
}
