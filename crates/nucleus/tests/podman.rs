//! podman (with conmon, as Debian packages them) runs containers with nucleus as its OCI
//! runtime: `podman --runtime nucleus`. Each flow runs in a private mount namespace of its own
//! (podman's overlay mounts go with it), with podman's state in a temporary directory and its
//! cgroups under a parent this test removes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::{Command, Stdio};

const PARENT: &str = "nucleus-podman-test";

fn podman_script(t: &TempDir, body: &str) -> (String, String) {
    podman_script_in(t, body, false)
}

/// With `private_net`: in a network namespace of its own too (lo up), where podman's netavark
/// makes its bridge, veths and port forwarding rules, none of them on the host.
fn podman_script_in(t: &TempDir, body: &str, private_net: bool) -> (String, String) {
    assert!(
        Command::new("podman")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "podman is required (scripts/test.sh installs it); refusing to skip silently"
    );
    let d = t.s();
    let script = format!(
        r#"set -u
P="podman --root {d}/root --runroot {d}/run --tmpdir {d}/tmp --network-config-dir {d}/net --cgroup-manager cgroupfs --events-backend file --runtime {bin}"
R="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --cgroup-parent /{PARENT} --network none"
$P import -q {d}/rootfs.tar bb >/dev/null || exit 90
{body}
$P rm -af -t 0 >/dev/null 2>&1
"#,
        bin = bin().display()
    );
    let script = if private_net {
        format!("ip link set lo up\n{script}")
    } else {
        script
    };
    let mut c = Command::new("unshare");
    let ns: &[&str] = if private_net { &["-m", "-n"] } else { &["-m"] };
    c.args(ns)
        .args(["--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null());
    let o = output_within(&mut c, DEADLINE);
    // The parent podman made in every hierarchy, with the leaf it keeps for conmon.
    remove_cgroup_parent(PARENT);
    (stdout(&o), stderr(&o))
}

fn image(t: &TempDir) {
    let root = busybox_image_tar(
        t,
        &[
            "sh", "sleep", "id", "cat", "touch", "grep", "hostname", "tr", "httpd", "ip", "mkdir",
        ],
    );
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello-from-container\n").unwrap();
    tar_rootfs(t);
}

#[test]
fn podman_runs_execs_limits_and_removes_containers_with_nucleus() {
    let _g = serial();
    let t = TempDir::new("podman");
    image(&t);
    let vol = t.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("f"), "from-host\n").unwrap();
    // podman runs the runtime without --root: its records go to /run/nucleus, and go with rm.
    let records = || {
        std::fs::read_dir("/run/nucleus")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !store_own(n) && n != "net")
                    .count()
            })
            .unwrap_or(0)
    };
    let before = records();
    let (out, err) = leaves_nothing(|| {
        podman_script(
            &t,
            &format!(
                r#"
echo "run: $($P run --rm $R bb sh -c 'echo -n "hello "; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status | tr -d "\t" | tr "\n" " "')"
$P run -d $R --memory 64m --name web bb sleep 1000 >/dev/null; echo "run-d: $?"
echo "ps: $($P ps --format '{{{{.Names}}}} {{{{.State}}}}')"
echo "exec: $($P exec web sh -c 'echo in-exec')"
$P exec web sh -c 'exit 7'; echo "exec-status: $?"
# With a terminal (script gives podman one): the container's own pty, relayed by conmon.
# (Once in a while under load conmon's attach loses the output of a command this short: tried
# again, at most three times; an empty result every time still fails.)
it() {{ for i in 1 2 3; do o=$(script -qec "$1" /dev/null </dev/null | tr -d '\r' | sed 's/\^@//g' | tr '\n' ' '); [ -n "$o" ] && break; sleep 0.5; done; printf '%s' "$o"; }}
echo "exec-it: $(it "$P exec -it web sh -c 'busybox tty; echo y=\$((6*7))'")"
echo "run-it: $(it "$P run --rm -it $R bb sh -c 'busybox tty; echo x=\$((6*7))'")"
echo "inspect: $($P inspect web --format '{{{{.State.Status}}}}')"
$P pause web >/dev/null; echo "pause: $? $($P inspect web --format '{{{{.State.Status}}}}')"
$P unpause web >/dev/null; echo "unpause: $? $($P inspect web --format '{{{{.State.Status}}}}')"
$P update --memory 96m web >/dev/null; echo "update: $? $($P exec web sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max')"
$P kill web >/dev/null; echo "kill: $?"
$P wait web >/dev/null
echo "after-kill: $($P inspect web --format '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}')"
$P rm web >/dev/null; echo "rm: $?"
echo "memory: $($P run --rm $R --memory 64m bb sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max')"
echo "user: $($P run --rm $R --user 1000:1000 bb id -u)"
echo "read-only: $($P run --rm $R --read-only bb sh -c 'touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp-rw')" | tr '\n' ' '; echo
echo "volume: $($P run --rm $R -v {vol}:/data bb cat /data/f)"
echo "cap-drop: $($P run --rm $R --cap-drop all bb grep CapEff /proc/self/status | tr -d '\t')"
echo "cap-add: $($P run --rm $R --cap-drop all --cap-add NET_RAW bb grep CapEff /proc/self/status | tr -d '\t')"
echo "limits: $($P run --rm $R --cpus 0.5 --pids-limit 33 bb sh -c 'cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max' | tr '\n' ' ')"
printf '{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}}]}}' > {d}/deny-mkdir.json
echo "seccomp: $($P run --rm $R --security-opt seccomp={d}/deny-mkdir.json bb sh -c 'mkdir /tmp/x 2>/dev/null && echo made || echo denied')"
$P run -d $R --name lg bb sh -c 'echo to-the-log; sleep 1000' >/dev/null
for i in $(seq 50); do $P logs lg 2>/dev/null | grep -q to-the-log && break; sleep 0.1; done
echo "logs: $($P logs lg)"
$P stop -t 1 lg >/dev/null; echo "stop: $? $($P inspect lg --format '{{{{.State.Status}}}}')"
$P rm lg >/dev/null
echo "uidmap: $($P run --rm $R --uidmap 0:100000:65536 --gidmap 0:100000:65536 bb sh -c 'tr -s " " < /proc/self/uid_map; id -u')" | tr '\n' ' '; echo
# --userns=auto takes a range from the subordinate ids of the user "containers": given here in
# this private mount namespace only (bound over the host's files, which stay as they are).
printf 'containers:200000:655360\n' > {d}/subid
mount --bind {d}/subid /etc/subuid && mount --bind {d}/subid /etc/subgid
echo "auto: $($P run --rm $R --userns=auto bb sh -c 'tr -s " " < /proc/self/uid_map')"
"#,
                vol = vol.display(),
                d = t.s()
            ),
        )
    });
    let line = |k: &str| output_line(&out, &err, k);
    // podman's own seccomp profile, compiled by nucleus, is the container's filter.
    assert_eq!(line("run"), "hello NoNewPrivs:0 Seccomp:2 ", "{err}");
    assert_eq!(line("run-d"), "0", "{err}");
    assert!(line("ps").starts_with("web Up"), "{}", line("ps"));
    assert_eq!(line("exec"), "in-exec");
    assert_eq!(line("exec-status"), "7");
    assert_eq!(line("exec-it"), "/dev/pts/0 y=42 ", "{err}");
    assert_eq!(line("run-it"), "/dev/pts/0 x=42 ", "{err}");
    assert_eq!(line("inspect"), "running");
    assert_eq!(line("pause"), "0 paused", "{err}");
    assert_eq!(line("unpause"), "0 running", "{err}");
    assert_eq!(line("update"), "0 100663296", "{err}");
    assert_eq!(line("kill"), "0");
    assert_eq!(line("after-kill"), "exited 137");
    assert_eq!(line("rm"), "0");
    assert_eq!(line("memory"), "67108864");
    assert_eq!(line("user"), "1000");
    assert_eq!(line("read-only"), "ro tmp-rw ");
    assert_eq!(line("volume"), "from-host");
    assert_eq!(line("cap-drop"), "CapEff:0000000000000000");
    // CAP_NET_RAW (13) alone.
    assert_eq!(line("cap-add"), "CapEff:0000000000002000", "{err}");
    // The pids limit, then the quota (v1: per 100 ms; v2: "quota period").
    let limits = line("limits");
    assert!(
        limits == "33 50000 " || limits == "33 50000 100000 ",
        "{limits}\n{err}"
    );
    assert_eq!(line("seccomp"), "denied", "{err}");
    assert_eq!(line("logs"), "to-the-log", "{err}");
    assert_eq!(line("stop"), "0 exited", "{err}");
    // A user namespace with the maps podman gives (explicit, and a range --userns=auto took).
    assert_eq!(line("uidmap"), " 0 100000 65536 0 ", "{err}");
    assert!(line("auto").starts_with(" 0 2"), "{}\n{err}", line("auto"));
    assert_eq!(
        records(),
        before,
        "records podman's rm left in /run/nucleus"
    );
}

/// podman's own network stack (netavark: a bridge, the container's network namespace made by
/// podman and joined by nucleus through `namespaces[].path`, podman's sysctls written in it)
/// and a published port, all inside a private network world.
#[test]
fn podman_networks_and_publishes_a_port_with_nucleus() {
    let _g = serial();
    let t = TempDir::new("podman-net");
    image(&t);
    let (out, err) = leaves_nothing(|| {
        podman_script_in(
            &t,
            r#"
R2="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --cgroup-parent /nucleus-podman-test"
$P run -d $R2 -p 8080:80 --name web bb httpd -f -p 80 -h /www >/dev/null; echo "run-d: $?"
echo "addr: $($P exec web ip -4 addr show eth0 | grep -c 'inet 10\.')"
for i in $(seq 50); do busybox wget -q -O - http://127.0.0.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
echo "published: $(busybox wget -q -O - http://127.0.0.1:8080/ 2>&1)"
echo "direct: $(busybox wget -q -O - http://$($P inspect web --format '{{.NetworkSettings.IPAddress}}'):80/ 2>&1)"
$P rm -f -t 0 web >/dev/null; echo "rm: $?"
"#,
            true,
        )
    });
    let line = |k: &str| output_line(&out, &err, k);
    assert_eq!(line("run-d"), "0", "{err}");
    assert_eq!(line("addr"), "1", "{err}");
    assert_eq!(line("published"), "hello-from-container", "{err}");
    assert_eq!(line("direct"), "hello-from-container", "{err}");
    assert_eq!(line("rm"), "0");
}

/// A user of this machine's for the rootless test, removed (with its home and processes)
/// when dropped.
struct TestUser(&'static str);

impl TestUser {
    fn create(name: &'static str, home: &std::path::Path) -> TestUser {
        // An account left by an earlier, killed run goes first.
        let _ = Command::new("userdel").args(["-r", "-f", name]).output();
        let o = Command::new("useradd")
            .args([
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--home-dir",
            ])
            .arg(home)
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "useradd: {}", stderr(&o));
        let u = TestUser(name);
        // Subordinate ids for its user namespace (newuidmap reads /etc/subuid).
        let o = Command::new("usermod")
            .args([
                "--add-subuids",
                "400000-465535",
                "--add-subgids",
                "400000-465535",
                name,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "usermod: {}", stderr(&o));
        u
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes (podman's pause process keeps its user namespace) are this test's.
        let _ = Command::new("pkill").args(["-KILL", "-U", self.0]).output();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = Command::new("userdel").args(["-r", "-f", self.0]).output();
    }
}

/// Rootless podman (a plain user, its own user namespace from /etc/subuid, its storage in
/// its home) with nucleus as the runtime: podman calls nucleus as uid 0 of that namespace,
/// without --root, so nucleus keeps its records under the user's XDG_RUNTIME_DIR (as runc
/// and crun), binds device nodes instead of making them, and runs a container that asks for
/// no resources without a cgroup where the user has none to make (this host's v1
/// hierarchies are root's; runc does the same).
#[test]
fn rootless_podman_runs_containers_with_nucleus() {
    let _g = serial();
    require_root();
    for tool in ["newuidmap", "useradd", "runuser"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is required (scripts/test.sh installs it); refusing to skip silently"
        );
    }
    let t = TempDir::new("podman-rootless");
    image(&t);
    // The user reads the image and the binary and keeps its runtime directory here.
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::copy(bin(), t.path().join("nucleus")).unwrap();
    for f in ["nucleus", "rootfs.tar"] {
        let mode = if f == "nucleus" { 0o755 } else { 0o644 };
        std::fs::set_permissions(
            t.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
    }
    let home = t.path().join("home");
    let user = TestUser::create("nucleus-rootless", &home);
    let uid = std::fs::metadata(&home)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    // (Short: podman's cleanup refuses a run root, XDG_RUNTIME_DIR/containers, over 50
    // characters.)
    let x = TempDir::new("rl");
    let xdg = x.path().join("x");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let d = t.s();
    let script = format!(
        r#"set -u
export HOME={home} XDG_RUNTIME_DIR={xdg}
P="podman --cgroup-manager cgroupfs --events-backend file --runtime {d}/nucleus"
R="--network none"
$P import -q {d}/rootfs.tar bb >/dev/null || exit 90
echo "whoami: $(id -u)"
echo "run: $($P run --rm $R bb sh -c 'echo -n "hello "; id -u; grep -E "^Seccomp:" /proc/self/status | tr -d "\t"' | tr '\n' ' ')"
$P run -d $R --name web bb sleep 1000 >/dev/null; echo "run-d: $?"
echo "ps: $($P ps --format '{{{{.Names}}}} {{{{.State}}}}')"
echo "exec: $($P exec web sh -c 'echo in-exec')"
echo "inspect: $($P inspect web --format '{{{{.State.Status}}}}')"
$P kill web >/dev/null; echo "kill: $?"
$P wait web >/dev/null
$P rm web >/dev/null; echo "rm: $?"
echo "user: $($P run --rm $R --user 1000:1000 bb id -u)"
echo "read-only: $($P run --rm $R --read-only bb sh -c 'touch /x 2>/dev/null || echo ro')"
mkdir -p $HOME/vol && echo from-home > $HOME/vol/f
echo "volume: $($P run --rm $R -v $HOME/vol:/data bb cat /data/f)"
echo "cap-drop: $($P run --rm $R --cap-drop all bb grep CapEff /proc/self/status | tr -d '\t')"
echo "keep-id: $($P run --rm $R --userns=keep-id bb id -u)"
echo "records: $(find $XDG_RUNTIME_DIR/nucleus -mindepth 1 -maxdepth 1 -type d ! -name names | wc -l)"
$P rm -af -t 0 >/dev/null 2>&1
"#,
        home = home.display(),
        xdg = xdg.display()
    );
    let root_records = || {
        std::fs::read_dir("/run/nucleus")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = root_records();
    let o = output_within(
        Command::new("runuser")
            .args(["-u", user.0, "--", "sh", "-c", &script])
            .current_dir(t.path())
            .stdin(Stdio::null()),
        DEADLINE,
    );
    let (out, err) = (stdout(&o), stderr(&o));
    let line = |k: &str| output_line(&out, &err, k);
    assert_ne!(line("whoami"), "0");
    assert_eq!(line("run"), "hello 0 Seccomp:2 ", "{err}");
    assert_eq!(line("run-d"), "0", "{err}");
    assert!(line("ps").starts_with("web Up"), "{}", line("ps"));
    assert_eq!(line("exec"), "in-exec", "{err}");
    assert_eq!(line("inspect"), "running");
    assert_eq!(line("kill"), "0");
    assert_eq!(line("rm"), "0");
    assert_eq!(line("user"), "1000");
    assert_eq!(line("read-only"), "ro");
    assert_eq!(line("volume"), "from-home");
    assert_eq!(line("cap-drop"), "CapEff:0000000000000000");
    // keep-id: the user's own uid inside.
    assert_eq!(line("keep-id"), uid.to_string(), "{err}");
    // Its records were the user's, and are gone; none went to root's store.
    assert_eq!(line("records"), "0", "{err}");
    assert_eq!(root_records(), before);
}
