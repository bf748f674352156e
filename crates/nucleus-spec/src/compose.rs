//! `nucleus compose`: a topology of services (one TOML file) as decisions: parsed with the
//! path of every problem, validated (dependencies, cycles, ports, names, networks, volumes,
//! secrets), ordered into waves that may start in parallel, and each service's effective
//! configuration digested so that `up` restarts only what changed. A service's own keys are
//! `nucleus run`'s `--config` keys; the binary checks those against its typed launch
//! configuration (the `run` map here is kept as the file gave it).

use crate::config::single_line;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// One problem, at a path in the file (`service.app.depends_on.db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

/// When a dependant may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's sandboxes run (and are ready, when it has a readiness check).
    Started,
    /// Its health check passed.
    Healthy,
    /// It ran to completion with status 0 (a one-shot: migrations, seeding).
    CompletedSuccessfully,
}

impl Condition {
    fn parse(s: &str) -> Option<Condition> {
        Some(match s {
            "started" => Condition::Started,
            "healthy" => Condition::Healthy,
            "completed_successfully" => Condition::CompletedSuccessfully,
            _ => return None,
        })
    }
}

/// A secret of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// A host file (relative to the topology file's directory).
    File(String),
    /// A systemd credential of the calling service.
    SystemdCredential(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub depends_on: BTreeMap<String, Condition>,
    pub replicas: u32,
    /// The topology networks it is on (default: `default`).
    pub networks: Vec<String>,
    /// Topology secrets it gets as /run/secrets/NAME.
    pub secrets: Vec<String>,
    /// Its `nucleus run` keys, as the file gave them.
    pub run: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// IPv4 range of its bridge (None: the runtime picks one per topology).
    pub subnet: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// The project's name (`name = …`, else the caller's choice).
    pub name: Option<String>,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    /// Named volumes, with the owner their directory gets (uid, gid; default root).
    pub volumes: BTreeMap<String, (u32, u32)>,
    pub secrets: BTreeMap<String, SecretSource>,
}

/// The most replicas a service may ask for.
pub const MAX_REPLICAS: u32 = 64;

/// A service, network, volume or secret name: 1-32 of [a-z0-9_-], starting with a letter or
/// digit (it becomes part of sandbox and bridge names, and a DNS label).
pub fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn name_problem(path: &str, n: &str) -> Option<Problem> {
    (!name_ok(n)).then(|| {
        problem(
            path,
            format!(
                "{:?} is not a name: 1-32 of a-z, 0-9, - and _, starting with a letter or digit",
                single_line(n)
            ),
        )
    })
}

/// Keys of a service that are compose's, not `nucleus run`'s.
pub const SERVICE_KEYS: &[&str] = &["depends_on", "replicas", "networks", "secrets"];
/// `nucleus run` keys a service may not set: compose owns them.
pub const OWNED_RUN_KEYS: &[&str] = &[
    "detach",
    "name",
    "network",
    "bridge",
    "subnet",
    "subnet6",
    "attach",
    "tty",
    "console_socket",
    "dry_run",
    "rm",
    "events_fd",
    "names_file",
    "config",
    "config_fd",
];

fn table<'a>(v: &'a toml::Value, path: &str, out: &mut Vec<Problem>) -> Option<&'a toml::Table> {
    match v.as_table() {
        Some(t) => Some(t),
        None => {
            out.push(problem(path, "a table is expected"));
            None
        }
    }
}

fn strings(v: &toml::Value, path: &str, out: &mut Vec<Problem>) -> Vec<String> {
    match v.as_array() {
        Some(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    out.push(problem(format!("{path}[{i}]"), "a string is expected"));
                    None
                }
            })
            .collect(),
        None => {
            out.push(problem(path, "an array of strings is expected"));
            vec![]
        }
    }
}

/// The topology in `text`, or every problem found (each with its path).
pub fn parse(text: &str) -> Result<Topology, Vec<Problem>> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| {
        let c = crate::config::toml_error("topology", text, &e);
        vec![problem("topology", c.message)]
    })?;
    let mut out = vec![];
    let mut t = Topology {
        name: None,
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    for (k, v) in &doc {
        match k.as_str() {
            "name" => match v.as_str() {
                Some(n) => {
                    out.extend(name_problem("name", n));
                    t.name = Some(n.to_string());
                }
                None => out.push(problem("name", "a string is expected")),
            },
            "service" => {
                let Some(services) = table(v, "service", &mut out) else {
                    continue;
                };
                for (name, sv) in services {
                    let path = format!("service.{name}");
                    out.extend(name_problem(&path, name));
                    if let Some(s) = table(sv, &path, &mut out) {
                        t.services.insert(name.clone(), service(s, &path, &mut out));
                    }
                }
            }
            "network" => {
                let Some(nets) = table(v, "network", &mut out) else {
                    continue;
                };
                for (name, nv) in nets {
                    let path = format!("network.{name}");
                    out.extend(name_problem(&path, name));
                    let Some(n) = table(nv, &path, &mut out) else {
                        continue;
                    };
                    let mut net = Network { subnet: None };
                    for (k, v) in n {
                        match (k.as_str(), v.as_str()) {
                            ("subnet", Some(s)) => {
                                if let Err(e) = crate::net::Cidr::parse(s, "subnet") {
                                    out.push(problem(format!("{path}.subnet"), e.message));
                                }
                                net.subnet = Some(s.to_string());
                            }
                            ("subnet", None) => {
                                out.push(problem(format!("{path}.subnet"), "a string is expected"))
                            }
                            _ => out.push(problem(
                                format!("{path}.{k}"),
                                "unknown key (a network has: subnet)",
                            )),
                        }
                    }
                    t.networks.insert(name.clone(), net);
                }
            }
            "volume" => {
                let Some(vols) = table(v, "volume", &mut out) else {
                    continue;
                };
                for (name, vv) in vols {
                    let path = format!("volume.{name}");
                    out.extend(name_problem(&path, name));
                    let mut owner = (0, 0);
                    if let Some(vt) = table(vv, &path, &mut out) {
                        for (k, v) in vt {
                            let p = format!("{path}.{k}");
                            match (k.as_str(), v.as_str().and_then(parse_owner)) {
                                ("owner", Some(o)) => owner = o,
                                ("owner", None) => out.push(problem(
                                    p,
                                    "\"UID\" or \"UID:GID\" (numbers, as the sandbox sees them)",
                                )),
                                _ => out.push(problem(p, "unknown key (a volume has: owner)")),
                            }
                        }
                    }
                    t.volumes.insert(name.clone(), owner);
                }
            }
            "secret" => {
                let Some(secs) = table(v, "secret", &mut out) else {
                    continue;
                };
                for (name, sv) in secs {
                    let path = format!("secret.{name}");
                    out.extend(name_problem(&path, name));
                    let Some(st) = table(sv, &path, &mut out) else {
                        continue;
                    };
                    let src = match (
                        st.get("file").map(|v| v.as_str()),
                        st.get("systemd_credential").map(|v| v.as_str()),
                    ) {
                        (Some(Some(f)), None) => Some(SecretSource::File(f.to_string())),
                        (None, Some(Some(c))) => {
                            Some(SecretSource::SystemdCredential(c.to_string()))
                        }
                        _ => {
                            out.push(problem(
                                &path,
                                "give one of file = \"PATH\" or systemd_credential = \"NAME\"",
                            ));
                            None
                        }
                    };
                    for k in st.keys() {
                        if k != "file" && k != "systemd_credential" {
                            out.push(problem(
                                format!("{path}.{k}"),
                                "unknown key (a secret has: file, systemd_credential)",
                            ));
                        }
                    }
                    if let Some(s) = src {
                        t.secrets.insert(name.clone(), s);
                    }
                }
            }
            other => out.push(problem(
                other,
                "unknown key (a topology has: name, service, network, volume, secret)",
            )),
        }
    }
    if t.services.is_empty() && out.is_empty() {
        out.push(problem("service", "no services (`[service.NAME]`)"));
    }
    t.networks
        .entry("default".into())
        .or_insert(Network { subnet: None });
    out.extend(validate(&t));
    if out.is_empty() {
        Ok(t)
    } else {
        Err(out)
    }
}

/// `UID[:GID]` (GID defaults to UID).
fn parse_owner(s: &str) -> Option<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    Some((u.parse().ok()?, g.parse().ok()?))
}

fn service(s: &toml::Table, path: &str, out: &mut Vec<Problem>) -> Service {
    let mut sv = Service {
        depends_on: BTreeMap::new(),
        replicas: 1,
        networks: vec!["default".into()],
        secrets: vec![],
        run: Map::new(),
    };
    for (k, v) in s {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "depends_on" => {
                let deps: Vec<(String, Option<String>)> = match v {
                    toml::Value::Table(d) => d
                        .iter()
                        .map(|(n, c)| (n.clone(), c.as_str().map(String::from)))
                        .collect(),
                    toml::Value::Array(_) => strings(v, &p, out)
                        .into_iter()
                        .map(|n| (n, Some("started".into())))
                        .collect(),
                    _ => {
                        out.push(problem(
                            &p,
                            "a table { NAME = \"started\" | \"healthy\" | \"completed_successfully\" } or an array of names",
                        ));
                        vec![]
                    }
                };
                for (n, c) in deps {
                    match c.as_deref().and_then(Condition::parse) {
                        Some(c) => {
                            sv.depends_on.insert(n, c);
                        }
                        None => out.push(problem(
                            format!("{p}.{n}"),
                            "started, healthy or completed_successfully",
                        )),
                    }
                }
            }
            "replicas" => match v.as_integer() {
                Some(n) if (1..=MAX_REPLICAS as i64).contains(&n) => sv.replicas = n as u32,
                _ => out.push(problem(&p, format!("an integer from 1 to {MAX_REPLICAS}"))),
            },
            "networks" => sv.networks = strings(v, &p, out),
            "secrets" => sv.secrets = strings(v, &p, out),
            k if OWNED_RUN_KEYS.contains(&k) => out.push(problem(
                &p,
                "set by compose (names, networks and detaching are the topology's)",
            )),
            _ => match serde_json::to_value(v) {
                Ok(j) => {
                    sv.run.insert(k.to_string(), j);
                }
                Err(e) => out.push(problem(&p, e.to_string())),
            },
        }
    }
    sv
}

/// Problems across services: references, cycles, ports, health checks.
fn validate(t: &Topology) -> Vec<Problem> {
    let mut out = vec![];
    let names = |m: &mut dyn Iterator<Item = &String>| m.cloned().collect::<Vec<_>>().join(", ");
    let mut ports: BTreeMap<(String, u16), String> = BTreeMap::new();
    for (name, s) in &t.services {
        let path = format!("service.{name}");
        for (dep, cond) in &s.depends_on {
            let p = format!("{path}.depends_on.{dep}");
            match t.services.get(dep) {
                None => out.push(problem(
                    p,
                    format!(
                        "no service {:?} (services: {})",
                        single_line(dep),
                        names(&mut t.services.keys())
                    ),
                )),
                Some(_) if dep == name => out.push(problem(p, "a service cannot depend on itself")),
                Some(d) if *cond == Condition::Healthy && !d.run.contains_key("health_cmd") => out
                    .push(problem(
                        p,
                        format!("{dep} has no health_cmd, so it is never healthy"),
                    )),
                Some(_) => {}
            }
        }
        for (i, n) in s.networks.iter().enumerate() {
            if s.networks[..i].contains(n) {
                out.push(problem(
                    format!("{path}.networks[{i}]"),
                    format!("{:?} is listed twice", single_line(n)),
                ));
            } else if !t.networks.contains_key(n) {
                out.push(problem(
                    format!("{path}.networks[{i}]"),
                    format!(
                        "no network {:?} (networks: {})",
                        single_line(n),
                        names(&mut t.networks.keys())
                    ),
                ));
            }
        }
        if s.networks.is_empty() {
            out.push(problem(format!("{path}.networks"), "at least one network"));
        }
        for (i, n) in s.secrets.iter().enumerate() {
            if !t.secrets.contains_key(n) {
                out.push(problem(
                    format!("{path}.secrets[{i}]"),
                    format!("no secret {:?} (`[secret.NAME]`)", single_line(n)),
                ));
            }
        }
        if let Some(Value::Array(vols)) = s.run.get("volume") {
            for (i, v) in vols.iter().enumerate() {
                let Some(src) = v.as_str().and_then(|v| v.split(':').next()) else {
                    continue;
                };
                if !src.contains('/') && !src.starts_with('.') && !t.volumes.contains_key(src) {
                    out.push(problem(
                        format!("{path}.volume[{i}]"),
                        format!(
                            "no volume {:?} (a named volume is declared as `[volume.NAME]`; a host path has a /)",
                            single_line(src)
                        ),
                    ));
                }
            }
        }
        if let Some(Value::Array(ps)) = s.run.get("publish") {
            for (i, p) in ps.iter().enumerate() {
                let Some(spec) = p.as_str() else { continue };
                let pp = format!("{path}.publish[{i}]");
                match crate::net::PortMap::parse(spec) {
                    Err(e) => out.push(problem(pp, e.message)),
                    Ok(m) => {
                        if s.replicas > 1 {
                            out.push(problem(
                                &pp,
                                format!(
                                    "{} replicas cannot all publish host port {}",
                                    s.replicas, m.host_port
                                ),
                            ));
                        }
                        let key = (format!("{:?}", m.proto), m.host_port);
                        if let Some(other) = ports.insert(key, pp.clone()) {
                            out.push(problem(
                                pp,
                                format!("host port {} is also published by {other}", m.host_port),
                            ));
                        }
                    }
                }
            }
        }
    }
    // A replica's DNS name (SERVICE-N) must not be another service's name.
    for (name, s) in &t.services {
        for i in 1..=s.replicas {
            let alias = format!("{}-{i}", name.replace('_', "-"));
            if let Some(other) = t.services.keys().find(|o| o.replace('_', "-") == alias) {
                out.push(problem(
                    format!("service.{other}"),
                    format!("its name is also the name of {name}'s replica {i}"),
                ));
            }
        }
    }
    if let Err(cycle) = waves(t) {
        out.push(problem(
            format!("service.{}.depends_on", cycle[0]),
            format!("a dependency cycle: {}", cycle.join(" -> ")),
        ));
    }
    out
}

/// The start order: waves of services whose dependencies are all in earlier waves (each wave
/// may start in parallel). A cycle comes back as its path (`a -> b -> a`).
pub fn waves(t: &Topology) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = vec![];
    while done.len() < t.services.len() {
        let wave: Vec<String> = t
            .services
            .iter()
            .filter(|(n, _)| !done.contains(n.as_str()))
            .filter(|(_, s)| {
                s.depends_on
                    .keys()
                    .all(|d| done.contains(d.as_str()) || !t.services.contains_key(d))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if wave.is_empty() {
            return Err(cycle(t, &done));
        }
        for n in &wave {
            done.insert(
                t.services
                    .get_key_value(n)
                    .map(|(k, _)| k.as_str())
                    .unwrap_or(""),
            );
        }
        out.push(wave);
    }
    Ok(out)
}

/// A cycle among the services not `done`, as a path from one service back to itself.
fn cycle(t: &Topology, done: &BTreeSet<&str>) -> Vec<String> {
    let Some(start) = t.services.keys().find(|n| !done.contains(n.as_str())) else {
        return vec![];
    };
    let mut path: Vec<String> = vec![start.clone()];
    loop {
        let cur = &path[path.len() - 1];
        let next = t.services[cur]
            .depends_on
            .keys()
            .find(|d| t.services.contains_key(*d) && !done.contains(d.as_str()));
        let Some(next) = next else { return path };
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut c = path[i..].to_vec();
            c.push(next.clone());
            return c;
        }
        path.push(next.clone());
    }
}

/// The bridge and IPv4 range of a topology network: named and numbered from the project and
/// the network, so every topology has its own (a link name has at most 15 bytes). The range
/// is in 10.213.0.0/16 unless the file gives one.
pub fn bridge_of(project: &str, network: &str, subnet: Option<&str>) -> (String, String) {
    let h = Sha256::digest(format!("{project}/{network}").as_bytes());
    let name = format!("nc{}", crate::hex(&h[..4]));
    let subnet = subnet
        .map(String::from)
        .unwrap_or_else(|| format!("10.213.{}.0/24", h[4]));
    (name, subnet)
}

/// The names a topology network's services answer to, for its sandboxes' resolver: SERVICE
/// (every replica) and SERVICE-N (one), each mapped to sandbox names.
pub fn network_names(t: &Topology, project: &str, network: &str) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for (s, svc) in &t.services {
        if !svc.networks.iter().any(|n| n == network) {
            continue;
        }
        let names = instance_names(project, s, svc.replicas);
        let label = s.replace('_', "-");
        for (i, n) in names.iter().enumerate() {
            m.insert(format!("{label}-{}", i + 1), vec![n.clone()]);
        }
        m.insert(label, names);
    }
    m
}

/// The reverse of the start order (for `down`).
pub fn stop_order(t: &Topology) -> Vec<String> {
    waves(t)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .flatten()
        .collect()
}

/// A service's sandbox names: PROJECT.SERVICE.1 … .N (a dot, which no compose name has, so
/// project `a-b` service `c` and project `a` service `b-c` cannot meet).
pub fn instance_names(project: &str, service: &str, replicas: u32) -> Vec<String> {
    (1..=replicas)
        .map(|i| format!("{project}.{service}.{i}"))
        .collect()
}

/// The longest sandbox name (as `nucleus run --name` takes it).
pub const MAX_SANDBOX_NAME: usize = 64;

/// A topology network's range without its gateway (the host's address on the bridge): what a
/// service with egress rules of its own may reach of its peers, as CIDR blocks.
pub fn peer_ranges(subnet: &str) -> Vec<String> {
    let Ok(c) = crate::net::Cidr::parse(subnet, "subnet") else {
        return vec![];
    };
    let (std::net::IpAddr::V4(base), std::net::IpAddr::V4(gw)) = (c.addr, c.nth(1)) else {
        return vec![];
    };
    let (base, gw) = (u32::from(base), u32::from(gw));
    let p = u32::from(c.prefix);
    let mask = |k: u32| if k == 0 { 0 } else { u32::MAX << (32 - k) };
    ((p + 1)..=32)
        .map(|k| {
            let sibling = (gw ^ (1 << (32 - k))) & mask(k);
            format!(
                "{}/{k}",
                std::net::Ipv4Addr::from(sibling | (base & mask(p)))
            )
        })
        .collect()
}

/// The digest of a service's effective configuration (its run keys after the topology's
/// translation, and what it depends on): equal digests, nothing to restart.
pub fn digest(effective: &Value) -> String {
    // serde_json's Map is ordered (BTreeMap): the text is canonical.
    crate::hex(&Sha256::digest(effective.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        parse(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_topology_parses_into_waves() {
        let t = parse(
            r#"
name = "shop"
[network.backend]
subnet = "10.89.1.0/24"
[volume.pgdata]
owner = "999:998"
[secret.dbpass]
file = "dbpass.txt"
[service.db]
command = ["postgres"]
health_cmd = "pg_isready"
volume = ["pgdata:/var/lib/postgresql/data", "/srv/conf:/etc/pg:ro"]
networks = ["backend"]
secrets = ["dbpass"]
[service.app]
depends_on = { db = "healthy" }
publish = ["8080:8000"]
networks = ["backend", "default"]
[service.worker]
depends_on = ["db"]
replicas = 2
[service.migrate]
depends_on = { db = "healthy" }
[service.web]
depends_on = { app = "started", migrate = "completed_successfully" }
"#,
        )
        .unwrap();
        assert_eq!(t.name.as_deref(), Some("shop"));
        assert_eq!(t.volumes["pgdata"], (999, 998));
        assert_eq!(t.services["worker"].replicas, 2);
        assert_eq!(t.services["worker"].depends_on["db"], Condition::Started);
        assert_eq!(t.services["db"].run["health_cmd"], "pg_isready");
        assert!(t.networks.contains_key("default"));
        assert_eq!(
            waves(&t).unwrap(),
            vec![
                vec!["db".to_string()],
                vec!["app".into(), "migrate".into(), "worker".into()],
                vec!["web".into()]
            ]
        );
        assert_eq!(stop_order(&t)[0], "web");
        assert_eq!(
            instance_names("shop", "worker", 2),
            ["shop.worker.1", "shop.worker.2"]
        );
    }

    #[test]
    fn each_problem_is_named_with_its_path() {
        let e = errs(
            r#"
[service.a]
depends_on = { b = "healthy", ghost = "started" }
[service.b]
depends_on = { c = "started" }
[service.c]
depends_on = { a = "started" }
"#,
        );
        assert!(
            e.contains(
                &"service.a.depends_on.b: b has no health_cmd, so it is never healthy".to_string()
            ),
            "{e:?}"
        );
        assert!(
            e.iter().any(|l| l.starts_with(
                "service.a.depends_on.ghost: no service \"ghost\" (services: a, b, c)"
            )),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.contains("a dependency cycle: a -> b -> c -> a")),
            "{e:?}"
        );
        let e = errs(
            r#"
[service.a]
publish = ["8080:80"]
name = "x"
[service.b]
publish = ["8080:81"]
[service.c]
replicas = 3
publish = ["9000:80"]
[service.d]
volume = ["data:/d"]
networks = ["back", "default", "default"]
secrets = ["s"]
replicas = 0
depends_on = { a = "ready" }
attach = ["bridge=x,subnet=10.1.0.0/24"]
[service.Bad]
"#,
        );
        for want in [
            "service.a.name: set by compose",
            "service.b.publish[0]: host port 8080 is also published by service.a.publish[0]",
            "service.c.publish[0]: 3 replicas cannot all publish host port 9000",
            "service.d.volume[0]: no volume \"data\"",
            "service.d.networks[0]: no network \"back\" (networks: default)",
            "service.d.networks[2]: \"default\" is listed twice",
            "service.d.attach: set by compose",
            "service.d.secrets[0]: no secret \"s\"",
            "service.d.replicas: an integer from 1 to 64",
            "service.d.depends_on.a: started, healthy or completed_successfully",
            "service.Bad: \"Bad\" is not a name",
        ] {
            assert!(e.iter().any(|l| l.starts_with(want)), "{want} not in {e:?}");
        }
        assert!(errs("[service.a\n")[0].starts_with("topology: line 1"));
        assert_eq!(
            errs("color = 1\n[service.a]\n"),
            ["color: unknown key (a topology has: name, service, network, volume, secret)"]
        );
        assert_eq!(errs(""), ["service: no services (`[service.NAME]`)"]);
    }

    #[test]
    fn a_range_routed_through_another_interface_is_found() {
        let routes =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
nc1234abcd\t0007D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            crate::net::routed_elsewhere(routes, "10.213.7.0/24", "ncffffffff").as_deref(),
            Some("nc1234abcd")
        );
        assert_eq!(
            crate::net::routed_elsewhere(routes, "10.213.7.0/24", "nc1234abcd"),
            None,
            "its own bridge"
        );
        assert_eq!(
            crate::net::routed_elsewhere(routes, "10.213.8.0/24", "x"),
            None
        );
        assert_eq!(
            crate::net::routed_elsewhere(routes, "10.213.0.0/16", "x"),
            None,
            "another prefix"
        );
    }

    #[test]
    fn peers_exclude_the_gateway() {
        let r = peer_ranges("10.213.7.0/24");
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], "10.213.7.128/25");
        assert_eq!(r[7], "10.213.7.0/32");
        assert!(r.contains(&"10.213.7.2/31".to_string()));
        assert!(!r.iter().any(|c| c == "10.213.7.1/32"));
    }

    #[test]
    fn a_replica_alias_cannot_be_a_service() {
        let e = errs("[service.web]\nreplicas = 2\n[service.web-2]\n");
        assert_eq!(
            e,
            ["service.web-2: its name is also the name of web's replica 2"]
        );
    }

    #[test]
    fn digests_follow_the_configuration() {
        let a = serde_json::json!({"env": ["A=1"], "memory": "1g"});
        let b = serde_json::json!({"memory": "1g", "env": ["A=1"]});
        assert_eq!(digest(&a), digest(&b), "key order does not matter");
        assert_ne!(
            digest(&a),
            digest(&serde_json::json!({"env": ["A=2"], "memory": "1g"}))
        );
    }
}
