//! `nucleus compose` (#22) end to end, each test inside a network and mount namespace of its
//! own (the topology's bridges, veths and tables are made there, never on the host): the
//! validation lines, wave order with health waits, reconcile (only the changed service
//! restarts; a killed one is healed), a failed dependency, two `up` at once, and `down`
//! leaving nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};

/// Run `body` (bash) in a fresh network and mount namespace with lo up (it must leave nothing
/// on the host: checked); $N is nucleus with a
/// state root of the test's own, $W the test's directory (the topology is $W/compose.toml).
fn world(t: &TempDir, topology: &str, body: &str) -> (String, String) {
    std::fs::write(t.path().join("compose.toml"), topology).unwrap();
    let script = format!(
        "set -u\nip link set lo up\nW={w}\nN=\"{bin} --root $W/state\"\ncd $W\n{body}",
        w = t.s(),
        bin = bin().display()
    );
    let mut c = Command::new("unshare");
    c.args([
        "-n",
        "-m",
        "--propagation",
        "private",
        "bash",
        "-c",
        &script,
    ])
    .stdin(Stdio::null());
    // Host state (cgroups, id ranges, mounts, links of the host's namespaces) as before.
    let o = leaves_nothing(|| output_within(&mut c, DEADLINE));
    (stdout(&o), stderr(&o))
}

const LEFTOVERS: &str = r#"
# A removed sandbox's namespace, and with it its veth, is torn down by the kernel
# asynchronously (milliseconds; longer on a loaded machine).
for i in $(seq 250); do ip -o link | grep -q ': nv[0-9a-f]*-[0-9a-f]*' || break; sleep 0.02; done
echo "links: $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')"
echo "tables: $(nft list tables | wc -l)"
echo "records: $($N ps -a -q | wc -l)"
echo "state: $(ls $W/state/compose 2>/dev/null | tr '\n' ' ')$(ls $W/state/net 2>/dev/null | grep '^nc' | tr '\n' ' ')"
"#;

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

const TOPOLOGY: &str = r#"
name = "tc"
[volume.data]
[service.db]
command = ["sh", "-c", "sleep 1; touch /tmp/ok; echo db up; exec sleep 100000"]
health_cmd = "test -e /tmp/ok"
health_interval = "200ms"
volume = ["data:/data"]
[service.app]
depends_on = { db = "healthy" }
command = ["sleep", "100000"]
[service.worker]
depends_on = ["db"]
replicas = 2
env = ["MODE=one"]
command = ["sleep", "100000"]
"#;

#[test]
fn up_waits_reconciles_heals_and_down_leaves_nothing() {
    let _g = serial();
    let t = TempDir::new("compose-up");
    let (out, err) = world(
        &t,
        TOPOLOGY,
        &format!(
            r#"
$N compose plan
$N compose up -d || echo "up failed"
$N compose ps --format json > $W/ps1.json
echo "db-started: $($N inspect tc.db.1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["started"])')"
echo "app-created: $($N inspect tc.app.1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["created"])')"
echo "logs: $($N compose logs db | tr '\n' ' ')"
echo "exec: $($N compose exec --index 2 worker -- sh -c 'echo $MODE $(hostname)')"
$N compose exec db -- sh -c 'echo kept > /data/f'
# Only the worker's configuration changes: only its two replicas restart.
sed -i 's/MODE=one/MODE=two/' compose.toml
$N compose up -d
$N compose ps --format json > $W/ps2.json
echo "exec2: $($N compose exec worker -- sh -c 'echo $MODE')"
# A killed service (its monitor and workload, SIGKILL) is seen, and healed by up.
id=$($N inspect tc.app.1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
kill -9 $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["monitor"]["pid"], r["workload"]["pid"])' $W/state/$id/state.json)
sleep 0.5
echo "killed: $($N compose ps --format json | python3 -c 'import json,sys; print([r["status"] for r in json.load(sys.stdin) if r["service"]=="app"][0])')"
$N compose up -d
echo "healed: $($N compose ps --format json | python3 -c 'import json,sys; print([r["status"] for r in json.load(sys.stdin) if r["service"]=="app"][0])')"
$N compose down
echo "volume-kept: $(cat $W/state/compose/tc/volumes/data/f)"
$N compose down --volumes
{LEFTOVERS}
"#
        ),
    );
    assert!(!out.contains("up failed"), "{out}\n{err}");
    assert!(
        out.contains("wave 1:\n  db: tc.db.1\nwave 2:\n  app: tc.app.1 after db healthy\n  worker: tc.worker.1, tc.worker.2 after db started\n"),
        "{out}"
    );
    let ps = |f: &str| -> Vec<Value> {
        serde_json::from_str(&std::fs::read_to_string(t.path().join(f)).unwrap()).unwrap()
    };
    let (p1, p2) = (ps("ps1.json"), ps("ps2.json"));
    assert_eq!(p1.len(), 4, "{p1:?}");
    assert!(p1.iter().all(|r| r["status"] == "running"), "{p1:?}");
    assert_eq!(
        p1.iter().find(|r| r["service"] == "db").unwrap()["health"],
        "healthy"
    );
    // The app was made after the database had been up for its health check to pass (>= 1 s).
    let ms = |s: &str| {
        let t = s.trim();
        let secs: f64 = t[17..23].parse().unwrap();
        let mins: f64 = t[14..16].parse().unwrap();
        mins * 60.0 + secs
    };
    let (db, app) = (
        ms(line(&out, "db-started: ")),
        ms(line(&out, "app-created: ")),
    );
    assert!(
        app - db >= 0.9,
        "app made {:.2} s after db started",
        app - db
    );
    assert!(line(&out, "logs: ").contains("tc.db.1 | db up"), "{out}");
    assert!(
        line(&out, "exec: ").starts_with("one tc.worker.2")
            || line(&out, "exec: ").starts_with("one nucleus-"),
        "{out}"
    );
    // Reconcile: db and app kept their processes, the workers have new ones with the new env.
    let pid = |p: &[Value], n: &str| p.iter().find(|r| r["name"] == n).unwrap()["pid"].clone();
    for n in ["tc.db.1", "tc.app.1"] {
        assert_eq!(pid(&p1, n), pid(&p2, n), "{n} restarted");
    }
    for n in ["tc.worker.1", "tc.worker.2"] {
        assert_ne!(pid(&p1, n), pid(&p2, n), "{n} not restarted");
    }
    assert_eq!(line(&out, "exec2: "), "two");
    assert_ne!(line(&out, "killed: "), "running", "{out}");
    assert_eq!(line(&out, "healed: "), "running", "{out}\n{err}");
    assert_eq!(
        line(&out, "volume-kept: "),
        "kept",
        "named volumes outlive down"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "tables: "), "0", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
    assert_eq!(line(&out, "state: "), "", "{out}");
}

#[test]
fn a_failed_dependency_stops_its_dependants_and_says_why() {
    let _g = serial();
    let t = TempDir::new("compose-fail");
    let (out, err) = world(
        &t,
        r#"
[service.sick]
command = ["sleep", "100000"]
health_cmd = "false"
health_interval = "200ms"
[service.after]
depends_on = { sick = "healthy" }
command = ["sleep", "100000"]
[service.once]
command = ["sh", "-c", "exit 3"]
[service.then]
depends_on = { once = "completed_successfully" }
command = ["sleep", "100000"]
[service.free]
command = ["sleep", "100000"]
"#,
        &format!(
            r#"
$N compose -p tf up -d --timeout 2s; echo "status: $?"
$N compose -p tf ps
$N compose -p tf down
{LEFTOVERS}
"#
        ),
    );
    assert_eq!(line(&out, "status: "), "1", "{out}\n{err}");
    assert!(
        err.contains("compose: after: not started: sick was not healthy within 2 s"),
        "{err}"
    );
    assert!(
        err.contains("compose: then: not started: tf.once.1 ended with status 3"),
        "{err}"
    );
    assert!(
        out.contains("tf.free.1") && out.contains("running"),
        "independent services start: {out}"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
}

#[test]
fn two_ups_at_once_start_each_sandbox_once() {
    let _g = serial();
    let t = TempDir::new("compose-race");
    let (out, err) = world(
        &t,
        "[service.a]\ncommand = [\"sleep\", \"100000\"]\nreplicas = 3\n[service.b]\ncommand = [\"sleep\", \"100000\"]\n",
        &format!(
            r#"
$N compose -p tr up -d 2>$W/e1 & $N compose -p tr up -d 2>$W/e2; wait
cat $W/e1 $W/e2
echo "running: $($N ps -q | wc -l)"
$N compose -p tr down
{LEFTOVERS}
"#
        ),
    );
    assert_eq!(line(&out, "running: "), "4", "{out}\n{err}");
    assert!(
        out.contains("(4 sandboxes started") && out.contains("(0 sandboxes started"),
        "{out}"
    );
    assert_eq!(line(&out, "records: "), "0", "{out}");
}

#[test]
fn topology_problems_are_one_line_each_and_touch_nothing() {
    let _g = serial();
    let t = TempDir::new("compose-bad");
    for (topology, says) in [
        (
            "[service.a]\ndepends_on = [\"b\"]\n[service.b]\ndepends_on = [\"a\"]\n",
            "service.a.depends_on: a dependency cycle: a -> b -> a",
        ),
        (
            "[service.a]\ndepends_on = [\"ghost\"]\n",
            "service.a.depends_on.ghost: no service \"ghost\" (services: a)",
        ),
        (
            "[service.a]\nmemroy = \"1g\"\n",
            "service.a.memroy: unknown key",
        ),
        (
            "[service.a]\nmemory = [1]\n",
            "service.a.memory: invalid type",
        ),
        (
            "[service.a]\npublish = [\"8080:80\"]\n[service.b]\npublish = [\"8080:81\"]\n",
            "service.b.publish[0]: host port 8080 is also published by service.a.publish[0]",
        ),
    ] {
        std::fs::write(t.path().join("compose.toml"), topology).unwrap();
        for verb in ["validate", "up"] {
            let o = run(&[
                "--root",
                &t.path().join("state").to_string_lossy(),
                "compose",
                "-f",
                &t.path().join("compose.toml").to_string_lossy(),
                verb,
            ]);
            assert_eq!(o.status.code(), Some(125), "{topology}: {}", stderr(&o));
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains(says), "{says} not in {e}");
        }
        assert!(
            !t.path().join("state/compose").exists(),
            "nothing made for a bad topology"
        );
    }
    let o = run(&["compose", "schema"]);
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        s["properties"]["service"]["additionalProperties"]["properties"]["health_cmd"].is_object()
    );
    assert!(s["properties"]["service"]["additionalProperties"]["properties"]["name"].is_null());
}

#[test]
fn services_find_each_other_by_name_and_nothing_else() {
    let _g = serial();
    let t = TempDir::new("compose-names");
    std::fs::write(
        t.path().join("other.toml"),
        "name = \"to\"\n[service.secret]\ncommand = [\"sleep\", \"100000\"]\n",
    )
    .unwrap();
    let (out, err) = world(
        &t,
        r#"
name = "tn"
[service.db]
command = ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/etc"]
readiness_tcp = 8000
[service.app]
depends_on = ["db"]
command = ["sleep", "100000"]
# Its own egress rules: the topology's network stays reachable, nothing else is added.
egress_allow = ["192.0.2.1"]
[service.worker]
replicas = 2
command = ["sleep", "100000"]
"#,
        &format!(
            r#"
$N compose up -d || echo "up failed"
$N compose -f other.toml up -d || echo "up failed"
x() {{ $N compose exec app -- sh -c "$1"; }}
echo "db: $(x 'getent hosts db' | awk '{{print $1}}')"
echo "worker: $(x 'getent ahostsv4 worker' | awk '{{print $1}}' | sort -u | wc -l)"
echo "worker-2: $(x 'getent hosts worker-2' | wc -l)"
echo "full-name: $(x 'getent hosts tn.db.1 || echo none')"
echo "other-topology: $(x 'getent hosts secret || echo none')"
echo "http: $(x 'python3 -c "import urllib.request as u; print(u.urlopen(\"http://db:8000/hostname\", timeout=5).status)"' 2>&1)"
echo "outside: $(x 'python3 -c "import socket; s=socket.socket(); s.settimeout(2); s.connect((\"192.0.2.9\", 80))" 2>&1 | tail -1')"
# The host's own address on the bridge (the gateway) is not a peer: a server of this world
# listening there stays out of reach of a service with its own egress rules.
gw=$(x 'getent hosts db' | awk '{{split($1, a, "."); print a[1]"."a[2]"."a[3]".1"}}')
python3 -m http.server 9999 --bind 0.0.0.0 >/dev/null 2>&1 & HS=$!
sleep 0.5
echo "gateway: $(x "python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect((\"$gw\", 9999)); print(\"reached\")'" 2>&1 | tail -1)"
echo "gateway-from-free: $($N compose exec worker -- python3 -c "import socket; s=socket.socket(); s.settimeout(2); s.connect((\"$gw\", 9999)); print(\"reached\")" 2>&1 | tail -1)"
kill $HS
$N compose down
$N compose -f other.toml down
{LEFTOVERS}
"#
        ),
    );
    assert!(!out.contains("up failed"), "{out}\n{err}");
    let db = line(&out, "db: ");
    assert!(db.starts_with("10.213."), "{out}\n{err}");
    assert_eq!(line(&out, "worker: "), "2", "{out}");
    assert_eq!(line(&out, "worker-2: "), "1", "{out}");
    assert_eq!(line(&out, "full-name: "), "none", "{out}");
    assert_eq!(
        line(&out, "other-topology: "),
        "none",
        "names of other topologies do not resolve: {out}"
    );
    assert_eq!(line(&out, "http: "), "200", "{out}\n{err}");
    assert!(
        line(&out, "outside: ").contains("Error"),
        "egress outside the allow list fails: {out}"
    );
    // The world's server is reachable from a service without egress rules (the check works)
    // and not from one with them.
    assert_eq!(line(&out, "gateway-from-free: "), "reached", "{out}\n{err}");
    assert!(
        line(&out, "gateway: ").contains("Error"),
        "the gateway is not a peer: {out}"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "tables: "), "0", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
}

/// A service on two networks (front and back): eth0 on the first, eth1 on the second; it
/// finds and reaches the services of both by name, under its own egress rules (both networks'
/// peers are allowed); a service on front alone neither resolves the one on back nor reaches
/// its address (topology networks are isolated from each other).
#[test]
fn a_service_on_two_networks_reaches_both_and_they_stay_apart() {
    let _g = serial();
    let t = TempDir::new("compose-nets");
    let (out, err) = world(
        &t,
        r#"
name = "tm"
[network.front]
[network.back]
subnet = "10.214.9.0/24"
[service.db]
networks = ["back"]
command = ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/etc"]
readiness_tcp = 8000
[service.web]
networks = ["front"]
command = ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/etc"]
readiness_tcp = 8000
[service.app]
networks = ["front", "back"]
depends_on = ["db", "web"]
command = ["sleep", "100000"]
egress_allow = ["192.0.2.1"]
"#,
        &format!(
            r#"
$N compose up -d || echo "up failed"
x() {{ s=$1; shift; $N compose exec $s -- sh -c "$1"; }}
get='import sys, urllib.request as u; print(u.urlopen("http://%s:8000/hostname" % sys.argv[1], timeout=3).status)'
echo "app-db: $(x app 'getent hosts db' | awk '{{print $1}}')"
echo "app-web: $(x app 'getent hosts web' | awk '{{print $1}}')"
echo "app-ifaces: $(x app 'ip -o -4 addr show' | awk '{{print $2"="$4}}' | tr '\n' ' ')"
echo "app-routes: $(x app 'ip route show default')"
echo "app-http-db: $($N compose exec app -- python3 -c "$get" db 2>&1 | tail -1)"
echo "app-http-web: $($N compose exec app -- python3 -c "$get" web 2>&1 | tail -1)"
db=$(x app 'getent hosts db' | awk '{{print $1}}')
echo "web-db-name: $(x web 'getent hosts db || echo none')"
echo "web-db-addr: $($N compose exec web -- python3 -c "$get" $db 2>&1 | tail -1)"
$N compose down
{LEFTOVERS}
"#
        ),
    );
    assert!(!out.contains("up failed"), "{out}\n{err}");
    let db = line(&out, "app-db: ");
    let web = line(&out, "app-web: ");
    assert!(db.starts_with("10.214.9."), "{out}");
    assert!(web.starts_with("10.213."), "{out}");
    let ifaces = line(&out, "app-ifaces: ");
    let web_net = &web[..web.rfind('.').unwrap() + 1];
    assert!(ifaces.contains(&format!("eth0={web_net}")), "{out}");
    assert!(ifaces.contains("eth1=10.214.9."), "{out}");
    assert!(line(&out, "app-routes: ").contains("dev eth0"), "{out}");
    assert_eq!(line(&out, "app-http-db: "), "200", "{out}\n{err}");
    assert_eq!(line(&out, "app-http-web: "), "200", "{out}\n{err}");
    assert_eq!(line(&out, "web-db-name: "), "none", "{out}");
    assert!(
        line(&out, "web-db-addr: ").contains("Error"),
        "front reaches back: {out}"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "tables: "), "0", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
    assert_eq!(line(&out, "state: "), "", "{out}");
}

/// Debian's PostgreSQL: its bin directory and the postgres user's ids.
fn postgres() -> (String, String, String) {
    let o = Command::new("sh")
        .arg("-c")
        .arg("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; id -u postgres; id -g postgres")
        .output()
        .unwrap();
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert!(
        l.len() == 3 && !l[0].is_empty(),
        "PostgreSQL is required (scripts/test.sh installs Debian's postgresql): {out}"
    );
    (l[0].into(), l[1].into(), l[2].into())
}

const APP: &str = r#"
import http.server, subprocess
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = "select count(*) || ' hits from ' || count(distinct who) || ' workers' from hits"
        r = subprocess.run(["psql", "-h", "db", "-U", "postgres", "-At", "-c", q], capture_output=True, text=True)
        body = (r.stdout or r.stderr).encode()
        self.send_response(200 if r.returncode == 0 else 500)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
"#;

#[test]
fn postgres_an_app_and_workers_by_name_with_a_data_volume() {
    let _g = serial();
    let (pgbin, uid, gid) = postgres();
    let t = TempDir::new("compose-pg");
    std::fs::create_dir_all(t.path().join("app")).unwrap();
    std::fs::write(t.path().join("app/app.py"), APP).unwrap();
    let topology = format!(
        r#"
name = "pg"
[volume.pgdata]
owner = "{uid}:{gid}"
[service.db]
user = "{uid}"
volume = ["pgdata:/pg"]
env = ["LANG=C"]
command = ["sh", "-c", "[ -s /pg/data/PG_VERSION ] || {{ {pgbin}/initdb -D /pg/data --auth=trust -U postgres -E UTF8 --locale=C >/dev/null && echo 'host all all 0.0.0.0/0 trust' >> /pg/data/pg_hba.conf; }}; exec {pgbin}/postgres -D /pg/data -k /tmp -c listen_addresses='*' -c max_connections=20"]
health_cmd = "{pgbin}/pg_isready -q -h 127.0.0.1 -U postgres"
health_interval = "300ms"
[service.schema]
depends_on = {{ db = "healthy" }}
command = ["psql", "-h", "db", "-U", "postgres", "-c", "create table if not exists hits (who text)"]
[service.app]
depends_on = {{ db = "healthy", schema = "completed_successfully" }}
volume = ["./app:/app:ro"]
publish = ["8080:8000"]
command = ["python3", "/app/app.py"]
readiness_tcp = 8000
egress_allow = ["192.0.2.1"]
[service.worker]
depends_on = {{ schema = "completed_successfully" }}
replicas = 2
command = ["sh", "-c", "psql -q -h db -U postgres -c \"insert into hits values ('$(hostname)')\" && exec sleep 100000"]
"#
    );
    let (out, err) = world(
        &t,
        &topology,
        &format!(
            r#"
$N compose up -d --timeout 60s || echo "up failed"
get() {{ python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:8080/", timeout=10).read().decode().strip())'; }}
for i in $(seq 50); do [ "$(get 2>/dev/null)" = "2 hits from 2 workers" ] && break; sleep 0.2; done
echo "answer: $(get 2>&1)"
echo "outside: $($N compose exec app -- python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect(("192.0.2.9", 80))' 2>&1 | tail -1)"
echo "other-name: $($N compose exec app -- sh -c 'getent hosts example.org || echo none')"
$N compose down
echo "kept: $(ls $W/state/compose/pg/volumes/pgdata/data/PG_VERSION)"
# Up again on the kept volume: the data is still there (the workers add two more).
$N compose up -d --timeout 60s || echo "up failed"
for i in $(seq 50); do [ "$(get 2>/dev/null)" = "4 hits from 4 workers" ] && break; sleep 0.2; done
echo "again: $(get 2>&1)"
$N compose down --volumes
{LEFTOVERS}
"#
        ),
    );
    assert!(!out.contains("up failed"), "{out}\n{err}");
    assert_eq!(
        line(&out, "answer: "),
        "2 hits from 2 workers",
        "{out}\n{err}"
    );
    assert!(line(&out, "outside: ").contains("Error"), "{out}");
    assert_eq!(line(&out, "other-name: "), "none", "{out}");
    assert!(line(&out, "kept: ").ends_with("PG_VERSION"), "{out}");
    assert_eq!(
        line(&out, "again: "),
        "4 hits from 4 workers",
        "{out}\n{err}"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "tables: "), "0", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
    assert_eq!(line(&out, "state: "), "", "{out}");
}

#[test]
fn up_in_the_foreground_follows_the_output_and_sigterm_stops_it() {
    let _g = serial();
    let t = TempDir::new("compose-fg");
    let (out, err) = world(
        &t,
        "name = \"tf\"\n[service.talk]\nreplicas = 2\ncommand = [\"sh\", \"-c\", \"echo hello from $(hostname); exec sleep 100000\"]\n",
        &format!(
            r#"
$N compose up > $W/out 2>$W/err & P=$!
for i in $(seq 100); do [ "$(grep -c hello $W/out)" = 2 ] && break; sleep 0.1; done
kill -TERM $P; wait $P; echo "status: $?"
sed 's/^/out: /' $W/out
echo "after: $($N compose ps --format json | python3 -c 'import json,sys; print(sorted(r["status"] for r in json.load(sys.stdin)))')"
$N compose down
{LEFTOVERS}
"#
        ),
    );
    assert_eq!(line(&out, "status: "), "0", "{out}\n{err}");
    for n in ["tf.talk.1", "tf.talk.2"] {
        assert!(out.contains(&format!("out: {n} | hello from ")), "{out}");
    }
    assert_eq!(line(&out, "after: "), "['stopped', 'stopped']", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
}

/// A bridge is never made on a range another interface already routes (the traffic would go
/// there): `run` refuses it with one line, and compose names the network before starting.
#[test]
fn a_range_routed_elsewhere_is_refused() {
    let _g = serial();
    let t = TempDir::new("compose-routed");
    let (out, err) = world(
        &t,
        "name = \"tr2\"\n[network.default]\nsubnet = \"10.99.0.0/24\"\n[service.a]\ncommand = [\"sleep\", \"100000\"]\n",
        &format!(
            r#"
ip link add taken0 type veth peer name taken1 && ip addr add 10.99.0.1/24 dev taken0 && ip link set taken0 up
$N run --network bridge --bridge nbtaken --subnet 10.99.0.0/24 -- true 2>$W/e1; echo "run: $?"
echo "run-says: $(cat $W/e1)"
$N compose up -d 2>$W/e2; echo "up: $?"
echo "up-says: $(cat $W/e2)"
ip link del taken0
{LEFTOVERS}
"#
        ),
    );
    assert_eq!(line(&out, "run: "), "125", "{out}\n{err}");
    assert!(
        line(&out, "run-says: ").contains("routed through taken0"),
        "{out}"
    );
    assert_eq!(line(&out, "up: "), "125", "{out}");
    assert!(
        line(&out, "up-says: ").contains("network.default")
            && line(&out, "up-says: ").contains("taken0"),
        "{out}"
    );
    assert_eq!(line(&out, "links: "), "lo ", "{out}");
    assert_eq!(line(&out, "records: "), "0", "{out}");
}
