//! End-to-end: cgroup limits are enforced by the kernel, reported, and removed afterwards.
//! Runs on this hybrid (v1) host and, by `scripts/vm-test.sh`, inside a pure cgroup-v2 kernel.
//! Workloads are the probe only (no python/coreutils), so the same binary runs in the VM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn is_v2_host() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Run the probe with `flags`, JSON logs on; returns (exit code, probe JSON or Null, log lines).
fn probe_limited(flags: &[&str], probe_args: &[&str]) -> (i32, Value, Vec<Value>) {
    let probe = probe();
    let vol = format!("{}:/probe:ro", probe.display());
    let mut args: Vec<&str> = vec!["--log-format", "json", "run", "-v", &vol];
    args.extend_from_slice(flags);
    args.push("--");
    args.push("/probe");
    args.extend_from_slice(probe_args);
    let o = run(&args);
    let logs: Vec<Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let out = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), out, logs)
}

fn exit_event(logs: &[Value]) -> &Value {
    logs.iter()
        .find(|l| l["event"] == "exited")
        .unwrap_or_else(|| panic!("no exit event in {logs:?}"))
}

#[test]
fn memory_limit_oom_kill_is_reported_as_such() {
    let _g = serial();
    let (code, _, logs) = leaves_nothing(|| {
        probe_limited(
            &["--memory", "32M", "--memory-swap", "32M"],
            &["alloc_mib=256"],
        )
    });
    assert_eq!(code, 137, "{logs:?}");
    let errors: Vec<&Value> = logs.iter().filter(|l| l["level"] == "error").collect();
    assert_eq!(errors.len(), 1, "one error line: {logs:?}");
    let msg = errors[0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("out of memory") && msg.contains("32M"),
        "{msg}"
    );
    let ev = exit_event(&logs);
    assert_eq!(ev["oom_killed"], true);
    assert_eq!(ev["status"], 137);
    assert!(ev["usage"]["oom_kills"].as_u64().unwrap() >= 1);
}

/// An OOM kill of a child does not decide the sandbox's exit code: the workload's own exit
/// stays its own (it used to become 137 for every non-zero exit after an OOM kill), and the
/// OOM kill is reported as what it is.
#[test]
fn an_oom_killed_child_leaves_the_workloads_exit_code_alone() {
    let _g = serial();
    let (code, out, logs) = leaves_nothing(|| {
        probe_limited(
            &["--memory", "32M", "--memory-swap", "32M"],
            &["child=alloc_mib=256", "exit=3"],
        )
    });
    assert_eq!(out["child=alloc_mib=256"], "signal 9", "{out}");
    assert_eq!(code, 3, "{logs:?}");
    let ev = exit_event(&logs);
    assert_eq!(ev["status"], 3);
    assert_eq!(ev["oom_killed"], true);
    assert!(logs.iter().any(|l| l["msg"]
        .as_str()
        .is_some_and(|m| m.contains("out of memory"))));
}

#[test]
fn memory_below_the_limit_runs_and_peak_is_reported() {
    let _g = serial();
    let (code, out, logs) = probe_limited(&["--memory", "128M"], &["alloc_mib=24"]);
    assert_eq!(code, 0, "{logs:?}");
    assert_eq!(out["alloc_mib=24"], 24);
    let ev = exit_event(&logs);
    assert_eq!(ev["oom_killed"], false);
    let peak = ev["usage"]["memory_peak"].as_u64().unwrap();
    assert!(
        (24 << 20..128 << 20).contains(&peak),
        "memory peak {peak} should cover the 24 MiB allocated and stay under the limit"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb_and_defaults_to_512() {
    let _g = serial();
    let (code, out, logs) = leaves_nothing(|| probe_limited(&["--pids", "16"], &["forks=64"]));
    assert_eq!(code, 0, "{logs:?}");
    let f = &out["forks=64"];
    // init + probe + children ≤ 16.
    assert!(f["ok"].as_u64().unwrap() <= 14, "{f}");
    assert!(f["failed"].as_u64().unwrap() >= 50, "{f}");
    assert!(
        exit_event(&logs)["usage"]["pids_limit_hits"]
            .as_u64()
            .unwrap()
            >= 50
    );
    // The default applies without any flag.
    let (code, out, _) = probe_limited(&[], &["forks=600"]);
    assert_eq!(code, 0);
    let f = &out["forks=600"];
    assert!(f["ok"].as_u64().unwrap() <= 510, "default --pids 512: {f}");
    assert!(f["failed"].as_u64().unwrap() >= 90, "{f}");
}

#[test]
fn cpu_quota_throttles() {
    let _g = serial();
    let (code, out, logs) = probe_limited(&["--cpus", "0.25"], &["spin_ms=1200"]);
    assert_eq!(code, 0, "{logs:?}");
    let cpu = out["spin_ms=1200"]["cpu_ms"].as_u64().unwrap();
    // 0.25 CPU for 1.2 s is 300 ms; allow a period of slack either way.
    assert!(cpu <= 450, "--cpus 0.25 got {cpu} ms of CPU in 1.2 s");
    let (_, out, _) = probe_limited(&[], &["spin_ms=1200"]);
    let free = out["spin_ms=1200"]["cpu_ms"].as_u64().unwrap();
    assert!(
        free >= 2 * cpu,
        "unlimited got {free} ms, limited {cpu} ms: the quota made no difference"
    );
}

/// Start a sandbox that waits on stdin; return it with its cgroup leaf directories. The
/// caller waits for it (a failed assertion here ends the test process anyway).
#[allow(clippy::zombie_processes)]
fn start_waiting(flags: &[&str]) -> (Child, Vec<String>) {
    let before = nucleus_cgroups();
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", "read x || true"]);
    let child = nucleus(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<String> = nucleus_cgroups()
            .into_iter()
            .filter(|c| !before.contains(c))
            .filter(|c| {
                Path::new(c)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| {
                        n.len() == 16
                            && n.bytes().all(|b| b.is_ascii_hexdigit())
                            && Path::new(c).join("cgroup.procs").exists()
                    })
            })
            .collect();
        let populated = new.iter().all(|c| {
            !std::fs::read_to_string(Path::new(c).join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()
        });
        if !new.is_empty() && populated {
            return (child, new);
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox cgroup never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(dir: &str, file: &str) -> String {
    std::fs::read_to_string(Path::new(dir).join(file))
        .unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn limits_are_written_under_the_chosen_parent_and_removed() {
    let _g = serial();
    let parent = format!("nucleus-test-{}", std::process::id());
    leaves_nothing(|| {
        let (mut child, dirs) = start_waiting(&[
            "--cgroup-parent",
            &parent,
            "--memory",
            "96M",
            "--memory-swap",
            "128M",
            "--cpus",
            "1.5",
            "--cpu-weight",
            "200",
            "--pids",
            "77",
        ]);
        assert!(
            dirs.iter().all(|d| d.contains(&format!("/{parent}/"))),
            "{dirs:?} not under {parent}"
        );
        let find = |f: &str| {
            dirs.iter()
                .find(|d| Path::new(d).join(f).exists())
                .unwrap_or_else(|| panic!("no cgroup with {f} among {dirs:?}"))
                .clone()
        };
        if is_v2_host() {
            let d = find("memory.max");
            assert_eq!(read(&d, "memory.max"), (96u64 << 20).to_string());
            assert_eq!(read(&d, "memory.swap.max"), (32u64 << 20).to_string());
            assert_eq!(read(&d, "cpu.max"), "150000 100000");
            assert_eq!(read(&d, "cpu.weight"), "200");
            assert_eq!(read(&d, "pids.max"), "77");
        } else {
            let m = find("memory.limit_in_bytes");
            assert_eq!(read(&m, "memory.limit_in_bytes"), (96u64 << 20).to_string());
            if Path::new(&m).join("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(
                    read(&m, "memory.memsw.limit_in_bytes"),
                    (128u64 << 20).to_string()
                );
            }
            let c = find("cpu.cfs_quota_us");
            assert_eq!(read(&c, "cpu.cfs_quota_us"), "150000");
            assert_eq!(read(&c, "cpu.shares"), "2048");
            assert_eq!(read(&find("pids.max"), "pids.max"), "77");
        }
        drop(child.stdin.take());
        assert!(wait_within(&mut child, DEADLINE, "child").success());
    });
}

#[test]
fn sandbox_sees_itself_at_the_root_of_its_cgroup_namespace() {
    let _g = serial();
    let (code, out, _) = probe_limited(&["--memory", "64M"], &["read=/proc/self/cgroup"]);
    assert_eq!(code, 0);
    let text = out["read=/proc/self/cgroup"].as_str().unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(line.ends_with(":/"), "cgroup path leaks the host's: {line}");
    }
}

/// Limits are visible inside, where programs look for them: the sandbox's own cgroup at
/// /sys/fs/cgroup (read-only), and as many CPUs to run on as `--cpus` allows.
#[test]
fn the_sandbox_sees_its_own_limits() {
    let _g = serial();
    let (mem, quota) = if is_v2_host() {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max")
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        )
    };
    let read_mem = format!("read={mem}");
    let read_quota = format!("read={quota}");
    let write_mem = format!("write={mem}");
    let (code, out, logs) = leaves_nothing(|| {
        probe_limited(
            &["--memory", "64M", "--cpus", "1"],
            &[&read_mem, &read_quota, &write_mem, "read=/proc/self/status"],
        )
    });
    assert_eq!(code, 0, "{logs:?}");
    assert_eq!(
        out[&read_mem].as_str().map(str::trim),
        Some("67108864"),
        "{out}"
    );
    let q = out[&read_quota]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(q == "100000" || q.starts_with("100000 "), "{out}");
    assert_eq!(out[&write_mem], "EROFS", "{out}");
    // Cpus_allowed_list: one CPU (of however many the host has).
    let status = out["read=/proc/self/status"].as_str().unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    assert!(
        !list.contains(',') && !list.contains('-'),
        "--cpus 1 runs on one CPU: {list}"
    );
}

#[test]
fn agent_warns_and_strict_refuses_when_no_cgroup_can_be_made() {
    let _g = serial();
    // A parent under a regular file cannot be created on any host.
    let bad = "/cgroup.procs/x";
    let o = leaves_nothing(|| run(&["run", "--cgroup-parent", bad, "--", "true"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resource limits are NOT applied"),
        "{}",
        stderr(&o)
    );
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--service-mode",
            "strict-agent",
            "--cgroup-parent",
            bad,
            "--",
            "true",
        ])
    });
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cgroup") && err.contains("refuse"), "{err}");
}

#[test]
fn cgroups_of_a_killed_runtime_are_collected_and_live_ones_kept() {
    let _g = serial();
    leaves_nothing(|| {
        let (mut live, live_dirs) = start_waiting(&[]);
        // (--sync-cleanup: no clean-up helper, which would remove a killed runtime's cgroup
        // itself; isolation.rs tests that.)
        let (mut dead, dead_dirs) = start_waiting(&["--sync-cleanup"]);
        dead.kill().unwrap();
        wait_within(&mut dead, DEADLINE, "dead");
        // The sandbox dies with its runtime (parent-death signal), its cgroup stays behind.
        assert!(dead_dirs.iter().all(|d| Path::new(d).exists()));
        let o = run(&["gc"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let deadline = Instant::now() + Duration::from_secs(5);
        while dead_dirs.iter().any(|d| Path::new(d).exists()) {
            assert!(Instant::now() < deadline, "gc left {dead_dirs:?}");
            run(&["gc"]);
        }
        assert!(
            live_dirs.iter().all(|d| Path::new(d).exists()),
            "gc removed a live sandbox's cgroup"
        );
        drop(live.stdin.take());
        assert!(wait_within(&mut live, DEADLINE, "live").success());
    });
}

/// The default parent (`…/nucleus` in each hierarchy) is made once and kept for the next run
/// (making and removing it cost every run two cgroup mkdirs and rmdirs on v1); `nucleus gc`
/// removes it once no sandbox is under it, never while one is.
#[test]
fn the_default_parent_is_kept_for_the_next_run_and_gc_removes_it_empty() {
    let _g = serial();
    let (mut live, dirs) = start_waiting(&[]);
    let parents: Vec<PathBuf> = dirs
        .iter()
        .map(|d| Path::new(d).parent().unwrap().to_path_buf())
        .collect();
    assert!(
        parents.iter().all(|p| p.file_name().unwrap() == "nucleus"),
        "{dirs:?} not under default parents"
    );
    // In use: gc keeps it.
    assert!(run(&["gc"]).status.success());
    assert!(parents.iter().all(|p| p.is_dir()), "gc removed {parents:?}");
    drop(live.stdin.take());
    assert!(wait_within(&mut live, DEADLINE, "live").success());
    // The run's clean-up (its helper) removes the leaf, not the parent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dirs.iter().any(|d| Path::new(d).exists()) || clean_up_helpers() > 0 {
        assert!(Instant::now() < deadline, "leaves {dirs:?} stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        parents.iter().all(|p| p.is_dir()),
        "the run removed its default parent: {parents:?}"
    );
    // Empty: gc removes it. (Every test of this file takes `serial()`; a sandbox of someone
    // else's under the same parent would keep it, and is named if it does.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while parents.iter().any(|p| p.exists()) {
        let others: Vec<String> = nucleus_cgroups()
            .into_iter()
            .filter(|c| {
                parents
                    .iter()
                    .any(|p| Path::new(c).parent() == Some(p.as_path()))
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "gc left {parents:?} (under them: {others:?})"
        );
        assert!(run(&["gc"]).status.success());
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the next run makes it again, with its limits.
    let o = run(&["run", "--pids", "64", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("NOT applied"), "{}", stderr(&o));
    assert!(
        parents.iter().all(|p| p.is_dir()),
        "{parents:?} not made again"
    );
}

/// The block device holding `dir` (MAJ:MIN), when it is a real one.
fn block_device_of(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let id = format!("{maj}:{min}");
    let sys = Path::new("/sys/dev/block").join(&id);
    if sys.join("partition").exists() {
        // Limits apply to the whole disk holding the partition.
        return Some(
            std::fs::read_to_string(sys.join("../dev"))
                .ok()?
                .trim()
                .to_string(),
        );
    }
    sys.exists().then_some(id)
}

#[test]
fn io_limit_throttles_direct_writes() {
    let _g = serial();
    let dir = TempDir::new("io");
    let dev = block_device_of(dir.path()).unwrap_or_else(|| {
        panic!(
            "{} is not on a block device; run the tests with TMPDIR on a disk",
            dir.s()
        )
    });
    let vol = format!("{}:/vol", dir.s());
    let limit = format!("{dev} wbps=2M");
    // 3 MiB at 2 MiB/s: at least about a second (plus the first burst).
    let (code, out, logs) = probe_limited(
        &["-v", &vol, "--io-limit", &limit],
        &["direct_write=/vol/f:3072"],
    );
    assert_eq!(code, 0, "{logs:?}");
    let ms = out["direct_write=/vol/f:3072"]["ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ms >= 700, "3 MiB at wbps=2M took only {ms} ms");
}

/// `update` changes a running sandbox's limits in its cgroup (and what `inspect` shows); a limit
/// whose controller it lacks is one line naming the flag.
#[test]
fn update_changes_the_limits_of_a_running_sandbox() {
    let _g = serial();
    leaves_nothing(|| {
        let (mut child, dirs) = start_waiting(&["--memory", "64M", "--pids", "40"]);
        let id = Path::new(&dirs[0])
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // Every hierarchy's leaf of this sandbox (the first scan may have caught only some:
        // a CI run once found the memory leaf without the pids one).
        let dirs: Vec<String> = nucleus_cgroups()
            .into_iter()
            .filter(|c| c.ends_with(&format!("/{id}")))
            .collect();
        let o = run(&["update", "--memory", "96M", "--pids", "50", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let (mem_file, pids_file) = if is_v2_host() {
            ("memory.max", "pids.max")
        } else {
            ("memory.limit_in_bytes", "pids.max")
        };
        let find = |f: &str| {
            dirs.iter()
                .find_map(|d| std::fs::read_to_string(Path::new(d).join(f)).ok())
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        assert_eq!(find(mem_file), "100663296");
        assert_eq!(find(pids_file), "50");
        let v: Value = serde_json::from_slice(&run(&["inspect", &id]).stdout).unwrap();
        assert!(
            v["config"]["limits"].to_string().contains("100663296"),
            "{v}"
        );
        let o = run(&["update", "--memory", "1k", &id]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("--memory"), "{}", stderr(&o));
        let o = run(&["update", &id]);
        assert_eq!(o.status.code(), Some(125));
        if !is_v2_host() {
            // v1: no cpu hierarchy was made for it.
            let o = run(&["update", "--cpus", "0.5", &id]);
            assert_eq!(o.status.code(), Some(125));
            assert!(stderr(&o).contains("--cpus"), "{}", stderr(&o));
        }
        drop(child.stdin.take());
        assert!(wait_within(&mut child, DEADLINE, "child").success());
    });
}

/// `pause` freezes every process of the sandbox (its CPU time stops), `unpause` thaws it; a
/// paused sandbox is listed as such and `rm -f` still ends it, leaving nothing (v1: the
/// freezer cgroup the pause made goes too).
#[test]
fn pause_freezes_and_unpause_thaws() {
    let _g = serial();
    leaves_nothing(|| {
        let vol = format!("{}:/probe:ro", probe().display());
        let o = run(&["run", "-d", "-v", &vol, "--", "/probe", "spin_ms=60000"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let cpu = || -> u64 {
            let o = run(&["stats", "--format", "json", &id]);
            let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap_or(Value::Null);
            v["usage"]["cpu_usec"].as_u64().unwrap_or(0)
        };
        std::thread::sleep(Duration::from_millis(300));
        let o = run(&["pause", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let ps: Value = serde_json::from_slice(&run(&["ps", "--format", "json"]).stdout).unwrap();
        let me = ps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap();
        assert_eq!(me["status"], "paused", "{me}");
        let a = cpu();
        std::thread::sleep(Duration::from_millis(500));
        let b = cpu();
        assert!(b - a < 50_000, "paused, it still ran {} us", b - a);
        let o = run(&["pause", &id]);
        assert_eq!(o.status.code(), Some(125), "paused twice");
        // No exec into a frozen sandbox (on v2 it would hang, on v1 run outside the freeze).
        let o = run(&["exec", &id, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "exec while paused");
        assert!(
            stderr(&o).contains("is paused; unpause it first"),
            "{}",
            stderr(&o)
        );
        let o = run(&["unpause", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::thread::sleep(Duration::from_millis(500));
        let c = cpu();
        assert!(c - b > 100_000, "unpaused, it ran only {} us", c - b);
        run(&["pause", &id]);
        let o = run(&["rm", "-f", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        // A sandbox whose monitor is killed while it is paused is lost; rm thaws what is left
        // frozen (on v1 its init's parent-death SIGKILL waits for that) and leaves nothing.
        // Its health checks are not run while it is paused (they would fail: exec refuses).
        let o = run(&[
            "run",
            "-d",
            "--health-cmd",
            "true",
            "--health-interval",
            "100ms",
            "--health-retries",
            "1",
            "--",
            "sleep",
            "100000",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let health = || -> String {
            let o = run(&["inspect", &id]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            v["health"].as_str().unwrap_or("").to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while health() != "healthy" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(health(), "healthy");
        assert!(run(&["pause", &id]).status.success());
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(health(), "healthy", "checked while paused");
        let rec: Value = serde_json::from_slice(
            &std::fs::read(state_root().join(&id).join("state.json")).unwrap(),
        )
        .unwrap();
        let monitor = rec["monitor"]["pid"].as_i64().unwrap() as i32;
        // SAFETY: kill(2) of the monitor this test started.
        unsafe { libc::kill(monitor, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = || -> String {
            let o = run(&["inspect", &id]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            v["status"].as_str().unwrap_or("").to_string()
        };
        while status() != "stopped" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // `stop` of it thaws it: its processes end (they had their SIGKILL pending).
        let o = run(&["stop", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let procs = || -> usize {
            rec["cgroups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    std::fs::read_to_string(format!("{}/cgroup.procs", c.as_str().unwrap()))
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while procs() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(procs(), 0, "a stopped sandbox kept frozen processes");
        let o = run(&["rm", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
    });
}

#[test]
fn stats_reads_a_running_sandbox_by_id_prefix() {
    let _g = serial();
    leaves_nothing(|| {
        let vol = format!("{}:/probe:ro", probe().display());
        let (mut child, dirs) = start_waiting(&["--memory", "64M", "-v", &vol]);
        let id = Path::new(&dirs[0])
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The cgroup exists before the workload is forked (and before its record says
        // running): wait for both.
        let deadline = Instant::now() + Duration::from_secs(5);
        let v = loop {
            let o = run(&["stats", "--json", &id[..8]]);
            if !o.status.success()
                && stderr(&o).contains("is creating")
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            assert!(o.status.success(), "{}", stderr(&o));
            let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
            if v["usage"]["pids_current"].as_u64() >= Some(2) || Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(v["id"], id.as_str());
        // init, sh (and maybe nothing else): at least two tasks, some memory in use.
        assert!(v["usage"]["pids_current"].as_u64().unwrap() >= 2, "{v}");
        assert!(v["usage"]["memory_current"].as_u64().unwrap() > 0, "{v}");
        assert!(v["usage"]["cpu_usec"].as_u64().is_some(), "{v}");
        // The CPU time of a finished exec counts (on v1 it was lost: reaped outside).
        let before = v["usage"]["cpu_usec"].as_u64().unwrap();
        let o = run(&["exec", &id, "--", "/probe", "spin_ms=1500"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(&["stats", "--format", "json", &id]);
        let after: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let spent = after["usage"]["cpu_usec"].as_u64().unwrap() - before;
        assert!(
            spent >= 1_000_000,
            "an exec spinning 1.5 s added {spent} us"
        );
        // The table lists it too.
        let o = run(&["stats"]);
        assert!(
            stdout(&o).lines().any(|l| l.starts_with(&id)),
            "{}",
            stdout(&o)
        );
        drop(child.stdin.take());
        assert!(wait_within(&mut child, DEADLINE, "child").success());
        // Gone: asking for it is one clear error.
        let o = run(&["stats", &id]);
        assert_eq!(o.status.code(), Some(125));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("no such sandbox"), "{}", stderr(&o));
    });
}
