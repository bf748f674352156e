//! A fast path for `nucleus run`'s usual command lines (issue #28): building clap's parser for
//! run's ~90 flags was most of the runtime's own work before the clone (0.7 ms, about 150 fresh
//! heap pages). The common shape, `nucleus run [FLAG]... -- COMMAND...` with flags from
//! [`FLAGS`], is read here into the same `RunArgs`: the flags' values are put over run's
//! defaults ([`DEFAULTS`]) by their serde names, as a `--config` file's keys are.
//!
//! It never decides anything clap would decide differently: anything else (another verb,
//! global flags, a flag not in the table, `-xVALUE` or joined short flags, a value that starts
//! with `-` or is empty, a flag given twice that clap takes once, no `--`, a value serde does
//! not take, an environment variable a flag reads other than the state root's, which is read
//! as clap reads it) returns None and clap parses the command line, errors and help included.
//! The tests hold it to that: the table against clap's own description of each flag, the
//! defaults against clap's, and thousands of generated command lines, each parsed both ways.
//! The end-to-end tests set NUCLEUS_ROOT, so their runs go through it too.

use crate::cli::{Cli, Command, LogFormat, RunArgs};

/// How a flag takes its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A switch (`--rm`).
    Switch,
    /// One value, given at most once (`--name N`).
    One,
    /// A value, repeatable (`-e K=V`).
    Many,
}

use Kind::{Many, One, Switch};

/// run's flags the fast path reads: (long name, short name, kind). Checked against clap's
/// definition by the tests; a flag left out is simply parsed by clap.
pub(crate) const FLAGS: &[(&str, Option<char>, Kind)] = &[
    ("detach", Some('d'), Switch),
    ("name", None, One),
    ("rm", None, Switch),
    ("restart", None, One),
    ("timeout", None, One),
    ("supervisor", None, One),
    ("console-socket", None, One),
    ("service-mode", None, One),
    ("network", None, One),
    ("runtime", None, One),
    ("publish", Some('p'), Many),
    ("dns", None, Many),
    ("egress-allow", None, Many),
    ("egress-domain", None, Many),
    ("egress-tcp-port", None, Many),
    ("egress-udp-port", None, Many),
    ("attach", None, Many),
    ("bridge", None, One),
    ("subnet", None, One),
    ("rootfs", None, One),
    ("sd-notify", None, Switch),
    ("readiness-exec", None, One),
    ("secret", None, Many),
    ("hostname", None, One),
    ("workdir", Some('w'), One),
    ("env", Some('e'), Many),
    ("env-file", None, Many),
    ("user", Some('u'), One),
    ("group", None, One),
    ("additional-group", None, Many),
    ("ulimit", None, Many),
    ("context", None, One),
    ("context-mode", None, One),
    ("workspace", None, One),
    ("workspace-mode", None, One),
    ("workspace-max-size", None, One),
    ("log-max-size", None, One),
    ("volume", Some('v'), Many),
    ("tmpfs", None, Many),
    ("provider-config-ro", None, Many),
    ("tty", Some('t'), Switch),
    ("proc-rw", None, Switch),
    ("checkpointable", None, Switch),
    ("seccomp-allow", None, Many),
    ("seccomp-profile", None, One),
    ("seccomp-log-denied", None, Switch),
    ("landlock-policy", None, One),
    ("memory", Some('m'), One),
    ("memory-swap", None, One),
    ("cpus", None, One),
    ("cpu-weight", None, One),
    ("pids", None, One),
    ("io-limit", None, Many),
    ("sync-cleanup", None, Switch),
    ("dry-run", None, Switch),
];

/// The environment variables clap reads for run's flags and the global ones (checked against
/// clap's definition by the tests). [`ROOT_ENV`] is read here as clap reads it; when another
/// one is set, clap parses.
pub(crate) const ENV: &[&str] = &[
    ROOT_ENV,
    "NUCLEUS_RUNSC",
    "NUCLEUS_ROOTFS_CACHE",
    "NUCLEUS_CGROUP_ROOT",
];

/// The state root's variable (the global `--root`).
const ROOT_ENV: &str = "NUCLEUS_ROOT";

/// `RunArgs` with no flag given, as clap makes it, in its serde form (the tests compare it
/// with clap's and print the new text when a default changes).
pub(crate) const DEFAULTS: &str = include_str!("fastargs_defaults.json");

/// The run command line in `args` (with the program name first) if it is one the fast path
/// reads; None: let clap parse it.
pub(crate) fn parse(args: &[String]) -> Option<Cli> {
    let mut it = args.iter().skip(1);
    if it.next()? != "run" || ENV[1..].iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    // (An empty value: clap's to read.)
    let root = match std::env::var_os(ROOT_ENV) {
        Some(r) if r.is_empty() => return None,
        r => r.map(std::path::PathBuf::from),
    };
    let serde_json::Value::Object(mut v) = serde_json::from_str(DEFAULTS).ok()? else {
        return None;
    };
    let mut given: Vec<&str> = Vec::new();
    let command = loop {
        let a = it.next()?;
        if a == "--" {
            break it.cloned().collect::<Vec<String>>();
        }
        let (flag, inline) = match a.strip_prefix("--") {
            Some(l) => match l.split_once('=') {
                Some((f, x)) => (long(f)?, Some(x)),
                None => (long(l)?, None),
            },
            None => {
                let mut c = a.strip_prefix('-')?.chars();
                let (Some(s), None) = (c.next(), c.next()) else {
                    return None;
                };
                (short(s)?, None)
            }
        };
        let (name, _, kind) = *flag;
        let key = name.replace('-', "_");
        if kind != Many && given.contains(&name) {
            return None;
        }
        given.push(name);
        if kind == Switch {
            if inline.is_some() {
                return None;
            }
            v.insert(key, serde_json::Value::Bool(true));
            continue;
        }
        let value = match inline {
            Some(x) => x,
            None => it.next()?.as_str(),
        };
        if value.is_empty() || value.starts_with('-') {
            return None;
        }
        let value = serde_json::Value::String(value.to_string());
        match kind {
            Many => match v.get_mut(&key)? {
                serde_json::Value::Array(a) => a.push(value),
                _ => return None,
            },
            _ => {
                v.insert(key, value);
            }
        }
    };
    v.insert("command".into(), command.into());
    let run: RunArgs = serde_json::from_value(serde_json::Value::Object(v)).ok()?;
    Some(Cli {
        log_format: LogFormat::Text,
        root,
        log: None,
        systemd_cgroup: false,
        debug: false,
        command: Command::Run(Box::new(run)),
    })
}

fn long(name: &str) -> Option<&'static (&'static str, Option<char>, Kind)> {
    FLAGS.iter().find(|f| f.0 == name)
}

fn short(c: char) -> Option<&'static (&'static str, Option<char>, Kind)> {
    FLAGS.iter().find(|f| f.1 == Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};
    use std::sync::Mutex;

    /// The tests that parse (both ways read the environment) run one at a time.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    fn clap_parse(args: &[String]) -> Option<Cli> {
        let m = Cli::command().try_get_matches_from(args).ok()?;
        Cli::from_arg_matches(&m).ok()
    }

    fn argv(rest: &[&str]) -> Vec<String> {
        std::iter::once("nucleus")
            .chain(rest.iter().copied())
            .map(String::from)
            .collect()
    }

    /// The fast path either declines or agrees with clap (which must then accept it).
    fn agrees(args: &[String]) {
        if let Some(fast) = parse(args) {
            let slow = clap_parse(args).unwrap_or_else(|| panic!("clap refuses {args:?}"));
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{args:?}");
        }
    }

    fn run_command() -> clap::Command {
        let mut c = Cli::command();
        c.build();
        c.find_subcommand("run").cloned().unwrap()
    }

    #[test]
    fn the_defaults_are_clap_s() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let slow = clap_parse(&argv(&["run", "--", "x"])).unwrap();
        let Command::Run(a) = &slow.command else {
            panic!()
        };
        let mut want = serde_json::to_value(a).unwrap();
        want.as_object_mut().unwrap().remove("command");
        let have: serde_json::Value = serde_json::from_str(DEFAULTS).unwrap();
        assert_eq!(
            have,
            want,
            "crates/nucleus/src/fastargs_defaults.json is stale; it should be:\n{}",
            serde_json::to_string_pretty(&want).unwrap()
        );
        assert!(parse(&argv(&["run", "--", "x"])).is_some());
        agrees(&argv(&["run", "--", "x"]));
    }

    #[test]
    fn the_table_is_clap_s() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let run = run_command();
        for (name, short, kind) in FLAGS {
            let a = run
                .get_arguments()
                .find(|a| a.get_long() == Some(name))
                .unwrap_or_else(|| panic!("--{name} is not a flag of run"));
            assert_eq!(a.get_short(), *short, "--{name}");
            let want = match a.get_action() {
                clap::ArgAction::SetTrue => Switch,
                clap::ArgAction::Set => One,
                clap::ArgAction::Append => Many,
                other => panic!("--{name}: {other:?}"),
            };
            assert_eq!(*kind, want, "--{name}");
            assert!(a.get_env().is_none(), "--{name} reads the environment");
            assert!(
                run.get_arg_conflicts_with(a).is_empty(),
                "--{name} conflicts with other flags"
            );
            // Alone, each is accepted by clap (no flag it requires).
            let sample: Vec<String> = match kind {
                Switch => argv(&["run", &format!("--{name}"), "--", "x"]),
                _ => argv(&["run", &format!("--{name}"), &value_for(a, 0), "--", "x"]),
            };
            assert!(clap_parse(&sample).is_some(), "{sample:?}");
            assert!(parse(&sample).is_some(), "{sample:?}");
            agrees(&sample);
        }
        // Every variable clap reads, for run's flags and the global ones, is in ENV.
        let mut envs: Vec<String> = run
            .get_arguments()
            .chain(Cli::command().get_arguments())
            .filter_map(|a| Some(a.get_env()?.to_string_lossy().into_owned()))
            .collect();
        envs.sort();
        envs.dedup();
        let mut ours: Vec<String> = ENV.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(envs, ours);
    }

    /// A value clap accepts for `a` (one of its possible values when it has some).
    fn value_for(a: &clap::Arg, i: usize) -> String {
        let pv = a.get_possible_values();
        if !pv.is_empty() {
            return pv[i % pv.len()].get_name().to_string();
        }
        ["a", "1", "x=y", "/some/path", "a b", "8m", "ü", "-1", "a,b"][i % 9].to_string()
    }

    #[test]
    fn generated_command_lines_parse_as_clap_parses_them() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let run = run_command();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut taken = 0;
        for _ in 0..4000 {
            let mut args = vec!["run".to_string()];
            for _ in 0..next(6) {
                let (name, short, kind) = FLAGS[next(FLAGS.len())];
                let a = run
                    .get_arguments()
                    .find(|a| a.get_long() == Some(name))
                    .unwrap();
                let flag = match (short, next(3)) {
                    (Some(s), 0) => format!("-{s}"),
                    _ => format!("--{name}"),
                };
                match kind {
                    Switch => args.push(flag),
                    _ => {
                        let v = value_for(a, next(9));
                        if next(2) == 0 && flag.starts_with("--") {
                            args.push(format!("{flag}={v}"));
                        } else {
                            args.push(flag);
                            args.push(v);
                        }
                    }
                }
            }
            // Now and then something only clap reads.
            match next(12) {
                0 => args.push("--config-fd=3".into()),
                1 => args.push("-dt".into()),
                2 => args.push("--memory=-1".into()),
                3 => args.push("--name=".into()),
                _ => {}
            }
            if next(10) != 0 {
                args.push("--".into());
                args.extend(["sh", "-c", "echo -- x"].map(String::from));
            }
            let full = argv(&args.iter().map(String::as_str).collect::<Vec<_>>());
            agrees(&full);
            taken += usize::from(parse(&full).is_some());
        }
        // Most are the fast path's (the rest: repeats, values clap or serde refuse, no `--`).
        assert!(taken > 1000, "{taken}");
    }

    #[test]
    fn anything_else_is_clap_s() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for rest in [
            &["run"][..],
            &["--root", "/x", "run", "--", "x"],
            &["run", "--root", "/x", "--", "x"],
            &["run", "--config", "c.toml", "--", "x"],
            &["run", "--health-interval", "1s", "--", "x"],
            &["run", "-dt", "--", "x"],
            &["run", "-e=A", "--", "x"],
            &["run", "-eA=1", "--", "x"],
            &["run", "--name", "a", "--name", "b", "--", "x"],
            &["run", "--rm", "--rm", "--", "x"],
            &["run", "--rm=true", "--", "x"],
            &["run", "--memory", "-1", "--", "x"],
            &["run", "--name", "--", "x"],
            &["run", "--help"],
            &["run", "x"],
            &["create", "--", "x"],
            &["run", "--network", "nonsense", "--", "x"],
        ] {
            assert!(parse(&argv(rest)).is_none(), "{rest:?}");
        }
    }

    /// The state root's variable is read as clap reads it; the others, and an empty root,
    /// leave the command line to clap.
    #[test]
    fn the_environment_is_read_as_clap_reads_it() {
        let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let args = argv(&["run", "--rm", "--", "x"]);
        // SAFETY (set_var): the tests that read the environment hold ENV_LOCK.
        std::env::set_var(ROOT_ENV, "/some/root");
        let fast = parse(&args);
        agrees(&args);
        std::env::set_var(ROOT_ENV, "");
        let empty = parse(&args);
        std::env::remove_var(ROOT_ENV);
        assert!(format!("{fast:?}").contains("/some/root"), "{fast:?}");
        assert!(empty.is_none());
        for v in &ENV[1..] {
            std::env::set_var(v, "/x");
            let p = parse(&args);
            std::env::remove_var(v);
            assert!(p.is_none(), "{v}");
        }
    }
}
