//! Model-based test of the real binary (#25): random sequences of verbs, and of SIGKILLs from
//! outside (a monitor, a workload), drive `nucleus` on a few names. After every step the
//! command's result is checked against the verb table (`nucleus_model::verbs`), and the
//! listing and the host against the model: `ps -a --format json` (each name's status), the
//! records and name links in the state root, each live sandbox's monitor and cgroups, and that
//! a removed sandbox's cgroups and processes are gone. Then several callers at once, with
//! launchers killed at random moments: afterwards each name is listed at most once, every name
//! link leads to its record, a record's status agrees with its monitor, and `rm -f` of every
//! sandbox plus `gc` leaves nothing on the host.
//!
//! Seeded: the seed is printed, and `NUCLEUS_MODEL_SEED=N cargo test --test model` repeats a
//! run. `NUCLEUS_MODEL_STEPS` (default 120) and `NUCLEUS_MODEL_CALLERS` (default 4) scale it:
//! scripts/soak.sh runs it long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use nucleus_model::verbs::{apply, Status, Verb, VERBS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const NAMES: [&str; 3] = ["mb0", "mb1", "mb2"];

/// xorshift64*: enough randomness for choosing steps, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `NUCLEUS_MODEL_SEED`, else one from the clock.
fn seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    env_num("NUCLEUS_MODEL_SEED", now | 1)
}

fn nuc(root: &Path, args: &[&str]) -> Output {
    let mut a = vec!["--root", root.to_str().unwrap()];
    a.extend_from_slice(args);
    output_within(nucleus(&a).stdin(Stdio::null()), DEADLINE)
}

/// `ps -a --format json` as name -> (status, id).
fn listing(root: &Path) -> BTreeMap<String, (String, String)> {
    let o = nuc(root, &["ps", "-a", "--format", "json"]);
    assert!(o.status.success(), "ps: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                (
                    r["status"].as_str().unwrap_or("").to_string(),
                    r["id"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn record(root: &Path, id: &str) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(root.join(id).join("state.json")).ok()?).ok()
}

/// Whether the process a record names (pid and start time) is alive.
fn alive(p: &Value) -> bool {
    let (Some(pid), Some(start)) = (p["pid"].as_i64(), p["start"].as_u64()) else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 22 (start time), counted after the command's closing parenthesis; a zombie is dead.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.first() != Some(&"Z") && f.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(start)
}

fn cgroups_of(rec: &Value) -> Vec<PathBuf> {
    rec["cgroups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The sandbox directories of a state root (not the store's own entries, not staging ones).
fn sandbox_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && !store_own(n))
                .collect()
        })
        .unwrap_or_default()
}

fn name_links(root: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(root.join("names"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let t = std::fs::read_link(e.path()).ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        t.to_string_lossy().into_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where the sandboxes of a state root append their events (`--events-jsonl`).
fn events_file(root: &Path) -> String {
    format!("{}.events.jsonl", root.display())
}

/// With `net`: sandboxes on the bridge (in the test's own network namespace).
fn args(verb: Verb, name: &str, root: &Path, net: bool) -> Vec<String> {
    let ev = events_file(root);
    let n: &[&str] = if net {
        &[
            "--network",
            "bridge",
            "--subnet6",
            "none",
            "--dns",
            "127.0.0.1",
        ]
    } else {
        &[]
    };
    let make = |v: &'static str| -> Vec<&str> {
        let mut a = vec![v];
        if v == "run" {
            a.push("-d");
        }
        a.extend(["--events-jsonl", ev.as_str(), "--name", name]);
        a.extend(n);
        a.extend(["--", "sleep", "100000"]);
        a
    };
    let v: Vec<&str> = match verb {
        Verb::RunD => make("run"),
        Verb::Create => make("create"),
        Verb::Start => vec!["start", name],
        Verb::Exec => vec!["exec", name, "--", "true"],
        Verb::Stop => vec!["stop", "-t", "2", name],
        Verb::Kill { term: false } => vec!["kill", name],
        Verb::Kill { term: true } => vec!["kill", name, "TERM"],
        Verb::Rm => vec!["rm", name],
        Verb::RmF => vec!["rm", "-f", name],
        Verb::Pause => vec!["pause", name],
        Verb::Unpause => vec!["unpause", name],
        Verb::Restart => vec!["restart", "-t", "2", name],
        Verb::Gc => vec!["gc"],
        Verb::KillMonitor | Verb::KillWorkload => vec![],
    };
    v.into_iter().map(String::from).collect()
}

/// Processes (pid, sandbox id) holding a file under `root`'s sandbox directories: monitors.
fn orphans_of(root: &Path) -> Vec<(i32, String)> {
    let prefix = format!("{}/", root.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let t = std::fs::read_link(fd.path()).unwrap_or_default();
            let t = t.to_string_lossy();
            if let Some(rest) = t.strip_prefix(&prefix) {
                let id = rest.split('/').next().unwrap_or("").to_string();
                if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.push((pid, id));
                    break;
                }
            }
        }
    }
    out
}

/// Removes every sandbox of a state root when dropped, also when the test fails (before the
/// root's TempDir goes: a monitor whose record vanished would run on, out of reach).
struct Sweep(PathBuf);

impl Drop for Sweep {
    fn drop(&mut self) {
        for id in sandbox_dirs(&self.0) {
            let _ = nuc(&self.0, &["rm", "-f", &id]);
        }
        let _ = nuc(&self.0, &["gc"]);
    }
}

struct Run {
    root: PathBuf,
    rng: Rng,
    seed: u64,
    model: BTreeMap<&'static str, Option<Status>>,
    /// Every sandbox id seen, with its cgroups: checked gone once it is removed.
    seen: BTreeMap<String, (&'static str, Vec<PathBuf>, Value)>,
    trail: Vec<String>,
    made: u64,
    /// Sandboxes on the bridge: their veths and address claims are checked too.
    net: bool,
    /// Names lost with their monitor and not removed yet (their address claim stays until
    /// `rm`).
    lost: std::collections::BTreeSet<&'static str>,
    /// Of those, the ones lost while paused: frozen, their init (and so their network
    /// namespace and veth) lives on until `stop` or `rm` thaws them.
    frozen: std::collections::BTreeSet<&'static str>,
}

impl Run {
    fn fail(&self, why: String) -> ! {
        let tail: Vec<&String> = self.trail.iter().rev().take(12).rev().collect();
        panic!(
            "{why}\nseed {} (repeat: NUCLEUS_MODEL_SEED={} cargo test --test model); last steps:\n{}",
            self.seed,
            self.seed,
            tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        )
    }

    /// One step: the command (or the kill), its result against the table, then the state.
    fn step(&mut self, name: &'static str, verb: Verb) {
        let before = self.model[name];
        let want = apply(before, verb);
        self.trail
            .push(format!("{name} {verb:?} ({before:?} -> {:?})", want.next));
        let ok = if verb.external() {
            let id = listing(&self.root)
                .get(name)
                .map(|(_, id)| id.clone())
                .unwrap_or_default();
            let rec = record(&self.root, &id).unwrap_or(Value::Null);
            let p = if verb == Verb::KillMonitor {
                &rec["monitor"]
            } else {
                &rec["workload"]
            };
            match p["pid"].as_i64() {
                Some(pid) if alive(p) => {
                    // SAFETY: kill(2) of a process of this test's own sandbox (start time checked).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    true
                }
                _ => self.fail(format!("{name}: no live {verb:?} target in {rec}")),
            }
        } else {
            let a = args(verb, name, &self.root, self.net);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let o = nuc(&self.root, &a);
            let err = stderr(&o);
            match o.status.code() {
                Some(0) => true,
                Some(125) if err.trim().lines().count() == 1 => false,
                c => self.fail(format!("{name} {verb:?}: exit {c:?}, stderr {err:?}")),
            }
        };
        if ok != want.ok {
            self.fail(format!(
                "{name} {verb:?} from {before:?}: {} where the model says {}",
                if ok { "succeeded" } else { "was refused" },
                if want.ok {
                    "it succeeds"
                } else {
                    "it is refused"
                }
            ));
        }
        if matches!(verb, Verb::RunD | Verb::Create | Verb::Restart) && ok {
            self.made += 1;
        }
        self.model.insert(name, want.next);
        match verb {
            Verb::KillMonitor => {
                self.lost.insert(name);
                if before == Some(Status::Paused) {
                    self.frozen.insert(name);
                }
            }
            Verb::Rm | Verb::RmF | Verb::Restart if ok => {
                self.lost.remove(name);
                self.frozen.remove(name);
            }
            // `stop`, and `kill` KILL/TERM even when it then finds nothing to signal, thaw a
            // paused sandbox first: a lost one's pending SIGKILL ends it.
            Verb::Stop | Verb::Kill { .. } => {
                self.frozen.remove(name);
            }
            _ => {}
        }
        self.check();
    }

    /// The listing matches the model (waiting for what settles asynchronously: a monitor
    /// recording an exit), and the host matches the listing.
    fn check(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let list = loop {
            let l = listing(&self.root);
            let same = NAMES
                .iter()
                .all(|n| l.get(*n).map(|(s, _)| s.as_str()) == self.model[n].map(Status::as_str));
            if same {
                break l;
            }
            if Instant::now() > deadline {
                self.fail(format!("listing {l:?}, model {:?}", self.model));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Records and name links: exactly the listed sandboxes.
        let mut dirs = sandbox_dirs(&self.root);
        dirs.sort();
        let mut ids: Vec<String> = list.values().map(|(_, id)| id.clone()).collect();
        ids.sort();
        if dirs != ids {
            self.fail(format!("records {dirs:?}, listed {ids:?}"));
        }
        let links = name_links(&self.root);
        let want: BTreeMap<String, String> = list
            .iter()
            .map(|(n, (_, id))| (n.clone(), id.clone()))
            .collect();
        if links != want {
            self.fail(format!("name links {links:?}, listed {want:?}"));
        }
        // A live sandbox: its monitor alive and its cgroups there. A stopped one: its monitor
        // dead, and its cgroups gone unless it was lost with its monitor (rm removes those).
        for (name, (status, id)) in &list {
            let mut rec = record(&self.root, id).unwrap_or(Value::Null);
            let live = status != "stopped";
            // A monitor writes the final record, then cleans up and exits: give it a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !live && alive(&rec["monitor"]) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                rec = record(&self.root, id).unwrap_or(Value::Null);
            }
            if alive(&rec["monitor"]) != live {
                self.fail(format!("{name} is {status}, its monitor alive: {}", !live));
            }
            let mut cgs = cgroups_of(&rec);
            if live && cgs.iter().any(|c| !c.exists()) {
                self.fail(format!("{name} is {status} without its cgroups {cgs:?}"));
            }
            // The v1 freezer leaf a pause made (its path is the file's first line).
            if let Ok(f) = std::fs::read_to_string(self.root.join(id).join("freezer")) {
                cgs.extend(f.lines().next().map(PathBuf::from));
            }
            let n = NAMES.iter().find(|x| *x == name).copied().unwrap_or("?");
            self.seen.insert(id.clone(), (n, cgs, rec));
        }
        if self.net {
            self.check_net(&list);
        }
        // Removed sandboxes (and restarted ones' earlier cgroups): nothing of them is left.
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|id| !ids.contains(id))
            .cloned()
            .collect();
        for id in gone {
            let (name, cgs, rec) = self.seen.remove(&id).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while (cgs.iter().any(|c| c.exists()) || alive(&rec["monitor"]) || alive(&rec["init"]))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(c) = cgs.iter().find(|c| c.exists()) {
                self.fail(format!(
                    "{name} ({id}) was removed, its cgroup {} is left",
                    c.display()
                ));
            }
            if alive(&rec["monitor"]) || alive(&rec["init"]) {
                self.fail(format!(
                    "{name} ({id}) was removed, a process of it lives on"
                ));
            }
        }
    }
}

impl Run {
    /// On the bridge: one veth per live sandbox (a dead one's goes with its namespace, which
    /// the kernel tears down asynchronously), one address claim per live or lost one.
    fn check_net(&self, list: &BTreeMap<String, (String, String)>) {
        let live = list.values().filter(|(s, _)| s != "stopped").count();
        let lost = self
            .lost
            .iter()
            .filter(|n| self.model[*n].is_some())
            .count();
        let frozen = self
            .frozen
            .iter()
            .filter(|n| self.model[*n].is_some())
            .count();
        // (This thread's network namespace: /sys/class/net shows the one sysfs was mounted in.)
        let veths = || {
            std::fs::read_to_string("/proc/thread-self/net/dev")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.trim_start().starts_with("nv"))
                .count()
        };
        let claims = || {
            std::fs::read_dir(self.root.join("net").join("nucleus0"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .count()
                })
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let want = (live + frozen, live + lost);
        while (veths(), claims()) != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if (veths(), claims()) != want {
            self.fail(format!(
                "{live} live and {lost} lost ({frozen} of them frozen) sandboxes on the bridge, {} veths and {} address claims",
                veths(),
                claims()
            ));
        }
    }

    /// The events stream agrees with what happened: every sandbox removed by `rm` has its
    /// `removed` event and nothing after it; every `exited` follows a `started` (or a
    /// `created` that `start` released) of the same sandbox.
    fn check_events(&self) {
        let text = std::fs::read_to_string(events_file(&self.root)).unwrap_or_default();
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in text.lines() {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| self.fail(format!("an event line is not JSON ({e}): {l}")));
            by_id
                .entry(v["id"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(v["event"].as_str().unwrap_or("").to_string());
        }
        if by_id.is_empty() && self.made > 0 {
            self.fail("no events were written".into());
        }
        for (id, kinds) in &by_id {
            if let Some(i) = kinds.iter().position(|k| k == "removed") {
                if i + 1 != kinds.len() {
                    self.fail(format!("{id}: events after `removed`: {kinds:?}"));
                }
            }
            let mut up = false;
            for k in kinds {
                match k.as_str() {
                    "started" | "created" => up = true,
                    "exited" if !up => {
                        self.fail(format!("{id}: `exited` before a start: {kinds:?}"))
                    }
                    _ => {}
                }
            }
        }
        // Every sandbox the test saw is gone by now: each has its `removed` (rm or rm -f).
        let removed = by_id
            .values()
            .filter(|k| k.last().is_some_and(|k| k == "removed"))
            .count();
        if removed != by_id.len() {
            let open: Vec<(&String, &Vec<String>)> = by_id
                .iter()
                .filter(|(_, k)| k.last().is_none_or(|k| k != "removed"))
                .collect();
            self.fail(format!("sandboxes without their `removed` event: {open:?}"));
        }
        println!("model: events of {} sandboxes consistent", by_id.len());
    }
}

/// One caller's steps, one after another, each checked.
#[test]
fn random_verbs_match_the_model_and_the_host() {
    let _g = serial();
    random_steps(false);
}

/// The same on the bridge, in a network namespace of the test's own: also each sandbox's veth
/// and address claim.
#[test]
fn random_verbs_on_the_bridge_match_the_model_and_the_host() {
    let _g = serial();
    // This thread (and the commands it starts) in a network namespace of its own.
    // SAFETY: unshare(2) of the calling thread's network namespace; no memory arguments.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    random_steps(true);
}

fn random_steps(net: bool) {
    let seed = seed();
    let steps = env_num("NUCLEUS_MODEL_STEPS", 120);
    println!(
        "model: seed {seed}, {steps} steps{}",
        if net { ", on the bridge" } else { "" }
    );
    let t = TempDir::new(if net { "model-net" } else { "model" });
    let _sweep = Sweep(t.path().join("state"));
    let mut r = Run {
        root: t.path().join("state"),
        rng: Rng(seed),
        seed,
        model: NAMES.iter().map(|n| (*n, None)).collect(),
        seen: BTreeMap::new(),
        trail: vec![],
        made: 0,
        net,
        lost: Default::default(),
        frozen: Default::default(),
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    leaves_nothing(|| {
        for _ in 0..steps {
            let name = NAMES[r.rng.below(NAMES.len())];
            let enabled: Vec<Verb> = VERBS
                .iter()
                .copied()
                .filter(|v| v.enabled(r.model[name]))
                .collect();
            // Half the steps on an absent name make it (most other verbs are refusals there).
            let verb = if r.model[name].is_none() && r.rng.below(2) == 0 {
                [Verb::RunD, Verb::Create][r.rng.below(2)]
            } else {
                enabled[r.rng.below(enabled.len())]
            };
            *counts.entry(format!("{verb:?}")).or_default() += 1;
            r.step(name, verb);
        }
        for n in NAMES {
            if r.model[n].is_some() {
                r.step(n, Verb::RmF);
            }
        }
        r.step(NAMES[0], Verb::Gc);
        r.check_events();
        if net {
            // The bridge and its tables are kept (as by podman and Docker), here in the
            // test's own namespace: removed before the host is compared.
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "nucleus0"])
                .status();
            for fam in ["inet", "bridge"] {
                let _ = std::process::Command::new("nft")
                    .args(["delete", "table", fam, "nucleus-bridge-nucleus0"])
                    .status();
            }
        }
    });
    println!(
        "model: {} steps, {} sandboxes made, all as the model says; verbs {counts:?}",
        steps, r.made
    );
}

/// Several callers at once on the same names, launchers killed at random moments; then the
/// store's invariants, and everything collected.
#[test]
fn concurrent_callers_and_killed_launchers_leave_a_consistent_store() {
    let _g = serial();
    let seed = seed();
    let callers = env_num("NUCLEUS_MODEL_CALLERS", 4);
    let steps = env_num("NUCLEUS_MODEL_STEPS", 120);
    println!("model (concurrent): seed {seed}, {callers} callers, {steps} steps each");
    let t = TempDir::new("model-conc");
    let root = t.path().join("state");
    let _sweep = Sweep(root.clone());
    leaves_nothing(|| {
        let made = std::sync::atomic::AtomicU64::new(0);
        let odd: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(vec![]);
        std::thread::scope(|s| {
            for c in 0..callers {
                let (root, made, odd) = (&root, &made, &odd);
                s.spawn(move || {
                    let mut rng = Rng(seed.wrapping_add(c.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                    for _ in 0..steps {
                        let name = NAMES[rng.below(NAMES.len())];
                        // One step in eight: a launcher killed at a random moment of its work.
                        if rng.below(8) == 0 {
                            let mut a = vec!["--root", root.to_str().unwrap()];
                            a.extend(["run", "-d", "--name", name, "--", "sleep", "100000"]);
                            let mut child = nucleus(&a)
                                .stdin(Stdio::null())
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap();
                            std::thread::sleep(Duration::from_micros(rng.below(40_000) as u64));
                            let _ = child.kill();
                            let _ = wait_within(&mut child, DEADLINE, "killed launcher");
                            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            continue;
                        }
                        let verbs: Vec<Verb> =
                            VERBS.iter().copied().filter(|v| !v.external()).collect();
                        let verb = verbs[rng.below(verbs.len())];
                        let a = args(verb, name, root, false);
                        let a: Vec<&str> = a.iter().map(String::as_str).collect();
                        let o = nuc(root, &a);
                        match o.status.code() {
                            Some(0) => {
                                if matches!(verb, Verb::RunD | Verb::Create | Verb::Restart) {
                                    made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            Some(125) if stderr(&o).trim().lines().count() == 1 => {}
                            // The sandbox was killed under a running exec (another caller's
                            // kill, stop or rm -f): the exec'd process died of the signal.
                            // (So is a start's workload killed before it was released.)
                            Some(c) if matches!(verb, Verb::Exec | Verb::Start) && c > 128 => {}
                            code => odd
                                .lock()
                                .unwrap()
                                .push(format!("{name} {verb:?}: exit {code:?}, {:?}", stderr(&o))),
                        }
                    }
                });
            }
        });
        let odd = odd.into_inner().unwrap();
        assert!(odd.is_empty(), "seed {seed}: {odd:#?}");
        // gc first: the record of a launcher killed before its monitor took over is a
        // half-made sandbox (gc's, like a staging directory), and may carry a name it never
        // claimed.
        let o = nuc(&root, &["gc"]);
        assert!(o.status.success(), "{}", stderr(&o));
        // Settled: nothing is being set up any more.
        let deadline = Instant::now() + Duration::from_secs(60);
        let list = loop {
            let l = listing(&root);
            if l.values().all(|(s, _)| s != "creating") || Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let o = nuc(&root, &["ps", "-a", "--format", "json"]);
        let all: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        // Each name at most once; every name link leads to the record of that name; a
        // record's status agrees with its monitor.
        for n in NAMES {
            let holders = all.iter().filter(|r| r["name"] == n).count();
            assert!(
                holders <= 1,
                "seed {seed}: {n} is listed {holders} times: {all:#?}"
            );
        }
        for (n, id) in name_links(&root) {
            let rec = record(&root, &id)
                .unwrap_or_else(|| panic!("seed {seed}: names/{n} -> {id}, which has no record"));
            assert_eq!(rec["name"], n.as_str(), "seed {seed}");
        }
        for (n, (status, id)) in &list {
            let rec = record(&root, id).unwrap();
            assert_eq!(
                alive(&rec["monitor"]),
                status != "stopped",
                "seed {seed}: {n} is {status}: {rec}"
            );
        }
        for id in sandbox_dirs(&root) {
            let o = nuc(&root, &["rm", "-f", &id]);
            assert!(
                o.status.success(),
                "seed {seed}: rm -f {id}: {}",
                stderr(&o)
            );
        }
        let o = nuc(&root, &["gc"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rest: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !store_own(n))
            .collect();
        assert!(
            rest.is_empty(),
            "seed {seed}: left in the state root: {rest:?}"
        );
        assert!(name_links(&root).is_empty(), "seed {seed}");
        // No monitor of this root runs on without a record (out of reach of ps and rm): each
        // found is killed, and the audit trail of its id shown.
        let orphans = orphans_of(&root);
        if !orphans.is_empty() {
            let audit = std::fs::read_to_string(root.join("audit.jsonl")).unwrap_or_default();
            let mut why = vec![];
            for (pid, id) in &orphans {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default();
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let ppid = status
                    .lines()
                    .find(|l| l.starts_with("PPid:"))
                    .unwrap_or("")
                    .to_string();
                let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|d| {
                        d.flatten()
                            .filter_map(|f| std::fs::read_link(f.path()).ok())
                            .map(|t| t.display().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                eprintln!("orphan {pid} ({cmd}; {ppid}) holds {held:?}");
                // SAFETY: kill(2) of a monitor this test's commands started (its fds are in
                // the test's own state root).
                unsafe { libc::kill(*pid, libc::SIGKILL) };
                let trail: Vec<&str> = audit.lines().filter(|l| l.contains(id.as_str())).collect();
                why.push(format!(
                    "monitor {pid} of {id} runs without a record; audit:\n{}",
                    trail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
            let _ = nuc(&root, &["gc"]);
            panic!("seed {seed}: {}", why.join("\n"));
        }
        println!(
            "model (concurrent): {} sandboxes made or attempted by {callers} callers; store consistent, all collected",
            made.load(std::sync::atomic::Ordering::Relaxed)
        );
    });
}
