//! Supervision by systemd: with systemd as PID 1, a detached sandbox's monitor runs as a
//! transient service (`nucleus-ID.service`) and `nucleus logs` reads the journal. This machine's
//! PID 1 is not systemd, so the test boots a Debian root filesystem with systemd
//! (scripts/systemd-rootfs.sh, built once with debootstrap) under systemd-nspawn, with a
//! throw-away overlay, runs a script there as a oneshot unit and checks what it printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"#!/bin/sh
exec > /opt/nt/out.txt 2>&1
N=/opt/nt/nucleus
unit_pid() { systemctl show -p MainPID --value "$1"; }
rec_monitor() { sed 's/.*"monitor":{"pid":\([0-9]*\).*/\1/' /run/nucleus/$1/state.json; }

echo "pid1: $(cat /proc/1/comm)"
id=$($N run -d --name web -e SECRET=topsecret -- sh -c 'echo hello-from-journal; echo second-line; sleep 1000')
echo "web: rc=$? id=$id"
echo "web unit: $(systemctl is-active nucleus-$id.service)"
[ "$(unit_pid nucleus-$id.service)" = "$(rec_monitor $id)" ] && echo "web: the unit's main process is the record's monitor"
grep -q topsecret /proc/$(unit_pid nucleus-$id.service)/cmdline && echo "web: SECRET ON A COMMAND LINE"
systemctl show -p ExecStart nucleus-$id.service | grep -q topsecret && echo "web: SECRET IN THE UNIT"
$N ps | grep -q "web .*up" && echo "web: ps up"
sleep 0.5
$N logs web | sed 's/^/logs: /'
$N logs -n 1 web | sed 's/^/tail: /'
systemctl stop nucleus-$id.service
echo "web after systemctl stop: $($N ps -a | grep web | awk '{print $3}')"
echo "web unit after stop: $(systemctl is-active nucleus-$id.service)"
$N rm web && echo "web: removed"

$N create --name job -- sh -c 'echo started-job' >/dev/null && $N start job
sleep 0.5
$N logs job | sed 's/^/job: /'
$N rm job

$N run -d -- no-such-command; echo "missing: rc=$?"

id=$($N run -d --name mon -- sleep 1000)
kill -9 $(unit_pid nucleus-$id.service); sleep 0.5
echo "mon after kill -9 of the monitor: $($N ps -a | grep mon | awk '{print $3}')"
$N ps -a --format json | grep -o '"error":"[^"]*"' | sed 's/^/mon: /'
echo "mon unit after kill -9: $(systemctl list-units --all --plain --no-legend "nucleus-$id.service" | wc -l)"
$N rm mon && echo "mon: removed"

id=$($N run -d --supervisor monitor --name plain -- sleep 1000)
echo "plain: units $(systemctl list-units --all --plain --no-legend "nucleus-$id.service" | wc -l)"
$N rm -f plain >/dev/null

echo "units left: $(systemctl list-units --all --plain --no-legend 'nucleus-*' | wc -l)"
echo "records left: $($N ps -aq | wc -l)"
echo DONE
"#;

const UNIT: &str = "[Unit]
Description=nucleus systemd supervision test
Requires=basic.target
After=basic.target dbus.socket
[Service]
Type=oneshot
ExecStart=/opt/nt/test.sh
ExecStopPost=/bin/systemctl poweroff --no-block
";

/// Boot the systemd root filesystem under systemd-nspawn (a throw-away overlay), with `w`
/// at /opt/nt holding `test.sh` (which writes out.txt there) and the nucleus binary, run as
/// a oneshot unit before poweroff. `unified`: systemd in a pure cgroup-v2 tree (this host's
/// v1 controllers are not in it). Returns out.txt with nspawn's own output after it.
fn boot(w: &TempDir, script: &str, unified: bool) -> (String, String) {
    let root = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/systemd-rootfs.sh"
    ))
    .stderr(Stdio::inherit())
    .output()
    .unwrap();
    assert!(
        root.status.success(),
        "scripts/systemd-rootfs.sh could not build the systemd root filesystem; refusing to skip"
    );
    let rootfs = stdout(&root).trim().to_string();
    std::fs::copy(bin(), w.path().join("nucleus")).unwrap();
    std::fs::write(w.path().join("test.sh"), script).unwrap();
    std::fs::write(w.path().join("nt-runner.service"), UNIT).unwrap();
    std::fs::set_permissions(
        w.path().join("test.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = Command::new("timeout");
    c.args(["300", "systemd-nspawn", "-q", "-D", &rootfs])
        // A throw-away overlay: the cached root filesystem is never changed.
        .args(["--volatile=overlay", "-b", "--register=no", "--keep-unit"])
        .args(["--private-network", "--capability=all"])
        .arg("--system-call-filter=@mount @privileged @raw-io @module keyctl bpf perf_event_open")
        .arg(format!("--bind={}:/opt/nt", w.s()))
        .arg(format!(
            "--bind-ro={}:/etc/systemd/system/nt-runner.service",
            w.path().join("nt-runner.service").display()
        ))
        .args(["--", "systemd.unit=nt-runner.service"])
        .stdin(Stdio::null());
    if unified {
        c.env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1");
    }
    let o = c.output().unwrap();
    let out = std::fs::read_to_string(w.path().join("out.txt")).unwrap_or_default();
    let all = format!("{out}\n--- nspawn:\n{}{}", stdout(&o), stderr(&o));
    (out, all)
}

#[test]
fn with_systemd_as_pid1_detached_sandboxes_are_transient_units_logging_to_the_journal() {
    require_root();
    let w = TempDir::new("systemd");
    let (out, all) = boot(&w, SCRIPT, false);
    assert!(out.contains("DONE"), "{all}");
    assert!(out.contains("pid1: systemd"), "{all}");
    assert!(out.contains("web: rc=0"), "{all}");
    assert!(out.contains("web unit: active"), "{all}");
    assert!(
        out.contains("web: the unit's main process is the record's monitor"),
        "{all}"
    );
    assert!(!out.contains("SECRET"), "{all}");
    assert!(out.contains("web: ps up"), "{all}");
    // The journal has the workload's output, and only the unit's own lines.
    assert!(
        out.contains("logs: hello-from-journal\nlogs: second-line\n"),
        "{all}"
    );
    assert!(!out.contains("logs: Started"), "{all}");
    assert!(
        out.contains("tail: second-line\n") && !out.contains("tail: hello"),
        "{all}"
    );
    // Stopping the unit stops the sandbox the normal way; the record keeps its exit.
    assert!(out.contains("web after systemctl stop: exited"), "{all}");
    assert!(!out.contains("web unit after stop: active"), "{all}");
    assert!(out.contains("web: removed"), "{all}");
    assert!(out.contains("job: started-job"), "{all}");
    assert!(out.contains("missing: rc=127"), "{all}");
    // The sandbox dies with its monitor; the record says so (ps: "lost (runtime killed)").
    assert!(
        out.contains("mon after kill -9 of the monitor: lost"),
        "{all}"
    );
    assert!(
        out.contains("mon: \"error\":\"") && out.contains("monitor"),
        "{all}"
    );
    assert!(out.contains("mon unit after kill -9: 0"), "{all}");
    assert!(out.contains("mon: removed"), "{all}");
    assert!(out.contains("plain: units 0"), "{all}");
    assert!(out.contains("units left: 0"), "{all}");
    assert!(out.contains("records left: 0"), "{all}");
}

const OCI_SCRIPT: &str = r#"#!/bin/sh
exec > /opt/nt/out.txt 2>&1
N=/opt/nt/nucleus
S=/sys/fs/cgroup/system.slice/nt-c1.scope
echo "pid1: $(cat /proc/1/comm), cgroup fs: $(stat -fc %T /sys/fs/cgroup)"
$N --systemd-cgroup create --bundle /opt/nt/b c1 </dev/null; echo "create: rc=$?"
echo "unit: $(systemctl is-active nt-c1.scope)"
pid=$($N state c1 | tr -d ' \n' | sed 's/.*"pid":\([0-9]*\).*/\1/')
echo "cgroup of the container: $(grep '^0::' /proc/$pid/cgroup)"
echo "procs: $(cat $S/cgroup.procs | tr '\n' ' ')"
[ "$(cat $S/cgroup.procs)" = "$pid" ] && echo "only the container is in the scope"
echo "slice: $(systemctl show -p Slice --value nt-c1.scope)"
echo "delegate: $(systemctl show -p Delegate --value nt-c1.scope)"
echo "tasksmax: $(systemctl show -p TasksMax --value nt-c1.scope)"
$N --systemd-cgroup start c1; echo "start: rc=$?"
$N --systemd-cgroup kill c1 KILL; sleep 0.5
$N --systemd-cgroup delete c1; echo "delete: rc=$?"
sleep 0.5
echo "unit after delete: $(systemctl is-active nt-c1.scope)"
[ -e $S ] || echo "the scope's cgroup is gone"
$N --systemd-cgroup create --bundle /opt/nt/bad c2 </dev/null; echo "bad: rc=$?"
echo "scopes left: $(systemctl list-units --all --plain --no-legend 'nt-c*.scope' | wc -l)"
echo DONE
"#;

/// `--systemd-cgroup` (podman's and Kubernetes' systemd cgroup manager): the container's
/// cgroup is the transient scope runc's `slice:prefix:name` path names, made by systemd
/// (asked over its private D-Bus socket), holding the container and nothing else; it goes
/// with the container. systemd runs on a pure cgroup-v2 tree here (nspawn's unified mode).
#[test]
fn the_systemd_cgroup_driver_puts_the_container_in_a_scope_systemd_made() {
    require_root();
    let w = TempDir::new("systemd-oci");
    for (dir, path) in [("b", "system.slice:nt:c1"), ("bad", "/plain/path")] {
        let root = w.path().join(dir).join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox-static is required (scripts/test.sh installs it)");
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../nucleus-spec/tests/oci/runc-spec.json"
        ))
        .unwrap();
        let mut c: serde_json::Value = serde_json::from_str(&spec).unwrap();
        c["process"]["terminal"] = serde_json::json!(false);
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "1000"]);
        c["linux"]["cgroupsPath"] = serde_json::json!(path);
        std::fs::write(w.path().join(dir).join("config.json"), c.to_string()).unwrap();
    }
    let (out, all) = boot(&w, OCI_SCRIPT, true);
    assert!(out.contains("DONE"), "{all}");
    assert!(out.contains("pid1: systemd, cgroup fs: cgroup2fs"), "{all}");
    assert!(out.contains("create: rc=0"), "{all}");
    assert!(out.contains("unit: active"), "{all}");
    assert!(
        out.contains("cgroup of the container: 0::/system.slice/nt-c1.scope\n"),
        "{all}"
    );
    assert!(out.contains("only the container is in the scope"), "{all}");
    assert!(out.contains("slice: system.slice"), "{all}");
    assert!(out.contains("delegate: yes"), "{all}");
    // The limits as unit properties (no pids limit: infinity, not systemd's default).
    assert!(out.contains("tasksmax: infinity"), "{all}");
    assert!(out.contains("start: rc=0"), "{all}");
    assert!(out.contains("delete: rc=0"), "{all}");
    assert!(!out.contains("unit after delete: active"), "{all}");
    assert!(out.contains("the scope's cgroup is gone"), "{all}");
    assert!(
        out.contains("linux.cgroupsPath") && out.contains("bad: rc=125"),
        "{all}"
    );
    assert!(out.contains("scopes left: 0"), "{all}");
}

/// `nucleus systemd install`: the rendered unit (Type=notify) is `active` only once the
/// workload says READY=1 (and, for another, once its port accepts), gets its LoadCredential
/// secret at /run/secrets and nowhere else, logs to the journal, is restarted on failure with
/// systemd's back-off, and `systemctl stop` leaves nothing.
const UNIT_SCRIPT: &str = r#"#!/bin/sh
exec > /opt/nt/out.txt 2>&1
N=/opt/nt/nucleus
echo "pid1: $(cat /proc/1/comm)"
secret="s3cr3t-$(cat /proc/sys/kernel/random/uuid)"
printf %s "$secret" > /etc/web-key; chmod 600 /etc/web-key
t0=$(date +%s%N)
$N systemd install --now web --nucleus $N --sd-notify --restart on-failure --secret /etc/web-key:api_key -- \
  sh -c 'echo web-starting; sleep 2; test "$(cat /run/secrets/api_key)" && echo web-has-its-secret; systemd-notify --ready --status=serving; echo web-ready; exec sleep 1000'
echo "install: rc=$? after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
echo "web: $(systemctl is-active nucleus-web.service) status=$(systemctl show -p StatusText --value nucleus-web.service)"
systemctl cat nucleus-web.service | grep -E '^(Type|Restart|LoadCredential|Delegate)=' | sed 's/^/unit: /'
sleep 0.3
journalctl -u nucleus-web.service -o cat --no-pager | grep -E '^web-' | sed 's/^/journal: /'
# The secret: in the sandbox's /run/secrets only.
journalctl -o cat --no-pager | grep -c "$secret" | sed 's/^/secret in the journal: /'
grep -l -F -f /etc/web-key /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | wc -l | sed 's/^/secret in environments and command lines: /'
grep -rl "$secret" /run/nucleus /etc/systemd/system 2>/dev/null | wc -l | sed 's/^/secret in records and units: /'
# A failure: systemd starts it again.
main=$(systemctl show -p MainPID --value nucleus-web.service)
$N kill web KILL
sleep 4
echo "web after a kill: $(systemctl is-active nucleus-web.service) restarts=$(systemctl show -p NRestarts --value nucleus-web.service) new main: $( [ "$(systemctl show -p MainPID --value nucleus-web.service)" != "$main" ] && echo yes)"
systemctl stop nucleus-web.service
echo "web after stop: $(systemctl is-active nucleus-web.service)"
echo "records left: $($N ps -aq | wc -l)"
echo "sandbox cgroups left: $(find /sys/fs/cgroup -path '*nucleus-web.service/*' -type d | wc -l)"
echo "nucleus mounts left: $(awk '$5 ~ /nucleus/' /proc/self/mountinfo | wc -l)"
# Readiness by TCP: active once the port accepts, 2 s in.
t0=$(date +%s%N)
$N systemd install --now db --nucleus $N --readiness-tcp 5432 -- \
  sh -c 'sleep 2; exec perl -MIO::Socket::INET -e "\$s = IO::Socket::INET->new(LocalAddr => q(127.0.0.1:5432), Listen => 5, ReuseAddr => 1) or die; sleep 1000"'
echo "db install: rc=$? after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
echo "db: $(systemctl is-active nucleus-db.service)"
systemctl disable --now nucleus-db.service nucleus-web.service 2>/dev/null
echo "units left: $(systemctl list-units --all --plain --no-legend 'nucleus-*' | grep -c active)"
echo DONE
"#;

#[test]
fn a_rendered_unit_is_ready_on_ready_gets_its_credential_restarts_and_stops_clean() {
    require_root();
    let w = TempDir::new("systemd-unit");
    let (out, all) = boot(&w, UNIT_SCRIPT, false);
    assert!(out.contains("DONE"), "{all}");
    assert!(out.contains("pid1: systemd"), "{all}");
    let ms = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|l| l.split(" after ").nth(1))
            .and_then(|l| l.trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("no {key} line: {all}"))
    };
    // `systemctl start` returned only once the workload said READY=1, 2 s in.
    assert!(out.contains("install: rc=0"), "{all}");
    assert!(ms("install: ") >= 2000, "{all}");
    assert!(out.contains("web: active status=serving"), "{all}");
    for l in [
        "unit: Type=notify",
        "unit: Restart=on-failure",
        "unit: LoadCredential=api_key:/etc/web-key",
        "unit: Delegate=yes",
        "journal: web-starting",
        "journal: web-has-its-secret",
        "journal: web-ready",
        "secret in the journal: 0",
        "secret in environments and command lines: 0",
        "secret in records and units: 0",
        "web after a kill: active restarts=1 new main: yes",
        "web after stop: inactive",
        "records left: 0",
        "sandbox cgroups left: 0",
        "nucleus mounts left: 0",
        "db install: rc=0",
        "db: active",
        "units left: 0",
    ] {
        assert!(out.contains(l), "{l}: {all}");
    }
    assert!(ms("db install: ") >= 2000, "{all}");
}
