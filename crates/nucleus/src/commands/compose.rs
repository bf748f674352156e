//! `nucleus compose`: a topology of services, each a detached sandbox (its own monitor:
//! restart policy, health), started wave by wave in dependency order. Daemonless: the
//! project's state is a file under the state root (`compose/PROJECT/state.json`: each
//! service's configuration digest and sandboxes), written under the project's lock, so two
//! `up` at once cannot start anything twice. The decisions are `nucleus_spec::compose`'s; the
//! sandboxes are made and removed by child `nucleus` commands (`run -d --config-fd 0`, `rm
//! -f`), each service's flags being the same typed launch configuration as `--config`.

use crate::cli::{ComposeArgs, ComposeCmd, OutputFormat};
use crate::records::{effective, resolve, settled};
use anyhow::{anyhow, Context, Result};
use nucleus_spec::compose::{self, Condition, SecretSource, Topology};
use nucleus_spec::config::{parse_duration_ms, single_line, ConfigError};
use nucleus_spec::state::Status;
use nucleus_sys::store::Store;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loaded topology: the file's, checked, with each service's effective run configuration.
struct Loaded {
    project: String,
    dir: PathBuf,
    topo: Topology,
    /// Service → its `run` configuration (JSON of `--config` keys) and its digest.
    configs: BTreeMap<String, (Value, String)>,
}

/// The topology's problems, one line each, as one error (the binary prints it as one line per
/// problem: see `report`).
#[derive(Debug)]
struct Problems(Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}
impl std::error::Error for Problems {}

pub(crate) fn compose(a: &ComposeArgs, root: Option<&Path>) -> Result<u8> {
    if let ComposeCmd::Schema = a.cmd {
        outln!("{}", serde_json::to_string_pretty(&schema())?);
        return Ok(0);
    }
    let l = match load(a, root) {
        Ok(l) => l,
        Err(e) => {
            if let Some(p) = e.downcast_ref::<Problems>() {
                for line in &p.0 {
                    eprintln!("nucleus: compose: {}: {line}", a.file.display());
                }
                return Ok(crate::EXIT_NUCLEUS);
            }
            return Err(e);
        }
    };
    let store = || -> Result<Store> { Ok(Store::open(&crate::records::state_root(root)?)?) };
    match &a.cmd {
        ComposeCmd::Validate => {
            eprintln!(
                "nucleus: compose: {}: valid ({} services, project {})",
                a.file.display(),
                l.topo.services.len(),
                l.project
            );
            Ok(0)
        }
        ComposeCmd::Plan => plan(&l),
        ComposeCmd::Up(u) => {
            let timeout = Duration::from_millis(parse_duration_ms("--timeout", &u.timeout)?);
            // In the foreground, Ctrl-C (or SIGTERM) stops what `up` started: blocked from
            // here on (every thread and `up`'s waits included), taken by a signalfd.
            let signals = if u.detach {
                None
            } else {
                nucleus_sys::raw::block_signals(&[libc::SIGINT, libc::SIGTERM])
                    .context("block signals")?;
                Some(
                    nucleus_sys::raw::signalfd(&[libc::SIGINT, libc::SIGTERM])
                        .context("signalfd")?,
                )
            };
            let rc = up(&l, root, &store()?, &u.services, timeout)?;
            match signals {
                Some(sfd) => follow(&l, root, &u.services, sfd, rc),
                None => Ok(rc),
            }
        }
        ComposeCmd::Down(d) => down(&l, root, d.volumes, d.time),
        ComposeCmd::Ps(p) => ps(&l, &store()?, p.format),
        ComposeCmd::Logs(s) => each_instance(&l, root, &s.services, "logs"),
        ComposeCmd::Restart(s) => each_instance(&l, root, &s.services, "restart"),
        ComposeCmd::Exec(e) => {
            let svc = l.topo.services.get(&e.service).ok_or_else(|| {
                ConfigError::new(
                    "SERVICE",
                    format!("no service {:?}", single_line(&e.service)),
                )
            })?;
            if e.index == 0 || e.index > svc.replicas {
                return Err(ConfigError::new(
                    "--index",
                    format!(
                        "1 to {} ({} has {} replicas)",
                        svc.replicas, e.service, svc.replicas
                    ),
                )
                .into());
            }
            let name = compose::instance_names(&l.project, &e.service, e.index)
                .pop()
                .unwrap_or_default();
            let st = nucleus(root)
                .arg("exec")
                .arg(&name)
                .arg("--")
                .args(&e.command)
                .stdin(Stdio::inherit())
                .status()
                .context("run nucleus exec")?;
            Ok(st.code().unwrap_or(crate::EXIT_NUCLEUS as i32) as u8)
        }
        ComposeCmd::Schema => Ok(0),
    }
}

fn nucleus(root: Option<&Path>) -> Command {
    let mut c = Command::new("/proc/self/exe");
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    c
}

/// The project's name: -p, the file's `name`, or its directory's name (made a valid name).
fn project_name(a: &ComposeArgs, topo: &Topology, dir: &Path) -> Result<String, Problems> {
    let n = match (&a.project, &topo.name) {
        (Some(p), _) => p.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => {
            let base = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let s: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            s.trim_start_matches(['-', '_']).chars().take(32).collect()
        }
    };
    if compose::name_ok(&n) {
        Ok(n)
    } else {
        Err(Problems(vec![format!(
            "project name {:?}: 1-32 of a-z, 0-9, - and _, starting with a letter or digit (give -p NAME or `name = …`)",
            single_line(&n)
        )]))
    }
}

fn state_dir(root: Option<&Path>, project: &str) -> Result<PathBuf> {
    Ok(crate::records::state_root(root)?
        .join("compose")
        .join(project))
}

fn load(a: &ComposeArgs, root: Option<&Path>) -> Result<Loaded> {
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| ConfigError::new("--file", format!("{}: {e}", a.file.display())))?;
    let topo = compose::parse(&text)
        .map_err(|ps| Problems(ps.iter().map(ToString::to_string).collect()))?;
    let dir = std::fs::canonicalize(&a.file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let project = project_name(a, &topo, &dir)?;
    let base = crate::launch_config::defaults()?;
    let volumes_dir = state_dir(root, &project)
        .map(|d| d.join("volumes"))
        .unwrap_or_else(|_| PathBuf::from("/nonexistent"));
    let mut problems = vec![];
    let mut configs = BTreeMap::new();
    for (name, s) in &topo.services {
        let path = format!("service.{name}");
        if let Err(ps) = crate::launch_config::merge_table(&base, &s.run) {
            problems.extend(ps.into_iter().map(|(k, m)| format!("{path}.{k}: {m}")));
            continue;
        }
        if let Some(longest) = compose::instance_names(&project, name, s.replicas).pop() {
            if longest.len() > compose::MAX_SANDBOX_NAME {
                problems.push(format!(
                    "{path}: its sandboxes' names ({longest}) are longer than {} bytes: a shorter project or service name",
                    compose::MAX_SANDBOX_NAME
                ));
                continue;
            }
        }
        if s.networks.len() > 1 + nucleus_spec::net::MAX_ATTACH {
            problems.push(format!(
                "{path}.networks: at most {} networks per service",
                1 + nucleus_spec::net::MAX_ATTACH
            ));
            continue;
        }
        let mut run = s.run.clone();
        // Named volumes live under the state root, kept until `down --volumes`.
        if let Some(Value::Array(vols)) = run.get_mut("volume") {
            for v in vols.iter_mut() {
                let Some(spec) = v.as_str() else { continue };
                let (src, rest) = spec.split_once(':').unwrap_or((spec, ""));
                if topo.volumes.contains_key(src) {
                    *v = format!("{}:{rest}", volumes_dir.join(src).display()).into();
                } else if src.starts_with('.') {
                    // A host path relative to the topology file, as docker compose reads it.
                    *v = format!("{}:{rest}", dir.join(src).display()).into();
                }
            }
        }
        for sec in &s.secrets {
            match &topo.secrets[sec] {
                SecretSource::File(f) => push(
                    &mut run,
                    "secret",
                    format!("{}:{sec}", dir.join(f).display()),
                ),
                SecretSource::SystemdCredential(c) => {
                    push(&mut run, "systemd_credential", format!("{c}:{sec}"))
                }
            }
        }
        // Its first network is eth0 (default route, published ports); the others are
        // attached bridges (eth1, …).
        let nets: Vec<&str> = if s.networks.is_empty() {
            vec!["default"]
        } else {
            s.networks.iter().map(String::as_str).collect()
        };
        // Peers on its networks stay reachable under a service's own egress rules.
        let denies = run.keys().any(|k| k.starts_with("egress_"))
            || run.get("service_mode").and_then(Value::as_str) == Some("production");
        for (i, net) in nets.iter().enumerate() {
            let (bridge, subnet) = compose::bridge_of(
                &project,
                net,
                topo.networks.get(*net).and_then(|n| n.subnet.as_deref()),
            );
            if denies {
                // The peers, not the gateway (the host's own address on the bridge).
                for r in compose::peer_ranges(&subnet) {
                    push(&mut run, "egress_allow", r);
                }
            }
            let names_file = state_dir(root, &project)
                .map(|d| d.join(format!("names-{net}.json")))
                .unwrap_or_default();
            if i == 0 {
                run.insert("names_file".into(), names_file.display().to_string().into());
                run.insert("network".into(), "bridge".into());
                run.insert("bridge".into(), bridge.into());
                run.insert("subnet".into(), subnet.into());
                run.insert("subnet6".into(), "none".into());
            } else {
                push(
                    &mut run,
                    "attach",
                    format!(
                        "bridge={bridge},subnet={subnet},names={}",
                        names_file.display()
                    ),
                );
            }
        }
        let v = Value::Object(run);
        let d = compose::digest(&v);
        configs.insert(name.clone(), (v, d));
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    Ok(Loaded {
        project,
        dir,
        topo,
        configs,
    })
}

fn push(run: &mut Map<String, Value>, key: &str, v: String) {
    let e = run.entry(key.to_string()).or_insert_with(|| json!([]));
    if let Value::Array(a) = e {
        a.push(v.into());
    }
}

fn plan(l: &Loaded) -> Result<u8> {
    let waves = compose::waves(&l.topo).map_err(|c| anyhow!("cycle {}", c.join(" -> ")))?;
    outln!("project {}", l.project);
    for (i, w) in waves.iter().enumerate() {
        outln!("wave {}:", i + 1);
        for s in w {
            let svc = &l.topo.services[s];
            let deps: Vec<String> = svc
                .depends_on
                .iter()
                .map(|(d, c)| format!("{d} {}", cond_word(*c)))
                .collect();
            let names = compose::instance_names(&l.project, s, svc.replicas).join(", ");
            let wait = if deps.is_empty() {
                String::new()
            } else {
                format!(" after {}", deps.join(", "))
            };
            outln!("  {s}: {names}{wait}");
        }
    }
    Ok(0)
}

fn cond_word(c: Condition) -> &'static str {
    match c {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::CompletedSuccessfully => "completed successfully",
    }
}

/// The project's lock (held while `up`, `down` change it) and its state file.
struct ProjectState {
    path: PathBuf,
    _lock: std::fs::File,
    /// Service → { digest, instances }.
    services: Map<String, Value>,
}

fn lock(root: Option<&Path>, project: &str) -> Result<ProjectState> {
    let dir = state_dir(root, project)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .context("open the project's lock")?;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    nucleus_sys::raw::flock(f.as_fd(), true, true).context("lock the project")?;
    // `down` removes the lock file once the project is gone: a lock taken on a file that is
    // no longer the one at that path is taken again on the new one.
    let same = |f: &std::fs::File| {
        let (a, b) = (f.metadata().ok(), std::fs::metadata(dir.join("lock")).ok());
        matches!((a, b), (Some(a), Some(b)) if a.ino() == b.ino() && a.dev() == b.dev())
    };
    if !same(&f) {
        drop(f);
        return lock(root, project);
    }
    let path = dir.join("state.json");
    let services = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["services"].as_object().cloned())
        .unwrap_or_default();
    Ok(ProjectState {
        path,
        _lock: f,
        services,
    })
}

impl ProjectState {
    fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, json!({ "services": self.services }).to_string())?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

/// A sandbox's status as `ps` would say, and its health; None when there is none by that name.
fn status_of(store: &Store, name: &str) -> Option<(Status, Option<String>, Option<i32>)> {
    let s = settled(store, resolve(store, name).ok()?);
    let (st, exit) = effective(&s);
    Some((st, s.health.clone(), exit.and_then(|e| e.code)))
}

fn rm(root: Option<&Path>, names: &[String], time: f64) {
    if names.is_empty() {
        return;
    }
    let _ = nucleus(root)
        .args(["stop", "-t", &time.to_string()])
        .args(names)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = nucleus(root)
        .args(["rm", "-f"])
        .args(names)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn up(
    l: &Loaded,
    root: Option<&Path>,
    store: &Store,
    only: &[String],
    timeout: Duration,
) -> Result<u8> {
    for s in only {
        if !l.topo.services.contains_key(s) {
            return Err(
                ConfigError::new("SERVICE", format!("no service {:?}", single_line(s))).into(),
            );
        }
    }
    // The services asked for and everything they depend on.
    let mut wanted: std::collections::BTreeSet<String> = only.iter().cloned().collect();
    if wanted.is_empty() {
        wanted = l.topo.services.keys().cloned().collect();
    }
    loop {
        let more: Vec<String> = wanted
            .iter()
            .flat_map(|s| l.topo.services[s].depends_on.keys().cloned())
            .filter(|d| !wanted.contains(d))
            .collect();
        if more.is_empty() {
            break;
        }
        wanted.extend(more);
    }
    let mut ps = lock(root, &l.project)?;
    for (v, (uid, gid)) in &l.topo.volumes {
        let d = state_dir(root, &l.project)?.join("volumes").join(v);
        std::fs::create_dir_all(&d).with_context(|| format!("create volume {v}"))?;
        // (Idmapped into the sandbox: host uid N is uid N inside.)
        std::os::unix::fs::chown(&d, Some(*uid), Some(*gid))
            .with_context(|| format!("give volume {v} to {uid}:{gid}"))?;
    }
    // A range already routed elsewhere (another topology's bridge that drew the same range,
    // a host network) would send this topology's traffic there.
    for (net, n) in &l.topo.networks {
        let (bridge, subnet) = compose::bridge_of(&l.project, net, n.subnet.as_deref());
        if let Some(dev) = routed_elsewhere(&subnet, &bridge) {
            return Err(ConfigError::new(
                format!("network.{net}"),
                format!("its range {subnet} is routed through {dev} already (another topology or a host network): give it a `subnet`"),
            )
            .into());
        }
    }
    // The names each network's resolvers answer (read at each query).
    for net in l.topo.networks.keys() {
        let f = state_dir(root, &l.project)?.join(format!("names-{net}.json"));
        let names = compose::network_names(&l.topo, &l.project, net);
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string(&names)?)?;
        std::fs::rename(&tmp, &f)?;
    }
    // Dropped services and replicas first (only on a whole-topology `up`).
    if only.is_empty() {
        let gone: Vec<String> = ps
            .services
            .iter()
            .filter(|(s, _)| !l.topo.services.contains_key(*s))
            .flat_map(|(_, v)| names_in(v))
            .collect();
        rm(root, &gone, 10.0);
        ps.services.retain(|s, _| l.topo.services.contains_key(s));
        for (s, svc) in &l.topo.services {
            if let Some(v) = ps.services.get(s) {
                let keep = compose::instance_names(&l.project, s, svc.replicas);
                let extra: Vec<String> = names_in(v)
                    .into_iter()
                    .filter(|n| !keep.contains(n))
                    .collect();
                rm(root, &extra, 10.0);
            }
        }
        ps.save()?;
    }
    let waves = compose::waves(&l.topo).map_err(|c| anyhow!("cycle {}", c.join(" -> ")))?;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut started_any = 0usize;
    for wave in waves {
        for s in wave.iter().filter(|s| wanted.contains(*s)) {
            let svc = &l.topo.services[s];
            // Its dependencies, each as it asks.
            if let Some(why) = svc.depends_on.iter().find_map(|(d, c)| {
                if let Some(f) = failed.get(d) {
                    return Some(format!("{d} failed ({f})"));
                }
                wait_for(
                    store,
                    &l.project,
                    d,
                    l.topo.services[d].replicas,
                    *c,
                    timeout,
                )
                .err()
            }) {
                eprintln!("nucleus: compose: {s}: not started: {why}");
                failed.insert(s.clone(), format!("not started: {why}"));
                continue;
            }
            let (config, digest) = &l.configs[s];
            let names = compose::instance_names(&l.project, s, svc.replicas);
            let previous = ps
                .services
                .get(s)
                .and_then(|v| v["digest"].as_str())
                .map(String::from);
            let mut outcome = Ok(());
            for n in &names {
                let running = matches!(status_of(store, n), Some((Status::Running, _, _)));
                if running && previous.as_deref() == Some(digest.as_str()) {
                    continue;
                }
                if status_of(store, n).is_some() {
                    rm(root, std::slice::from_ref(n), 10.0);
                }
                match start(l, root, n, config) {
                    Ok(()) => started_any += 1,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            ps.services
                .insert(s.clone(), json!({ "digest": digest, "instances": names }));
            ps.save()?;
            if let Err(e) = outcome {
                eprintln!("nucleus: compose: {s}: {e}");
                failed.insert(s.clone(), e.to_string());
            }
        }
    }
    if failed.is_empty() {
        eprintln!(
            "nucleus: compose: {}: up ({} sandboxes started, the rest unchanged)",
            l.project, started_any
        );
        Ok(0)
    } else {
        Ok(1)
    }
}

/// `up` in the foreground: every replica's output, prefixed with its name, until all have
/// stopped or a SIGINT/SIGTERM comes; then the services are stopped (kept: `up` starts them
/// again), in reverse order.
fn follow(
    l: &Loaded,
    root: Option<&Path>,
    only: &[String],
    sfd: std::os::fd::OwnedFd,
    rc: u8,
) -> Result<u8> {
    use std::io::BufRead;
    use std::os::fd::{AsFd, AsRawFd};
    let order = compose::stop_order(&l.topo);
    let names: Vec<String> = order
        .iter()
        .rev()
        .filter(|s| only.is_empty() || only.contains(s))
        .flat_map(|s| compose::instance_names(&l.project, s, l.topo.services[s].replicas))
        .collect();
    let mut followers = vec![];
    for n in &names {
        let mut c = nucleus(root)
            .args(["logs", "-f", n])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("run nucleus logs")?;
        if let Some(o) = c.stdout.take() {
            let n = n.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(o).lines().map_while(Result::ok) {
                    outln!("{n} | {line}");
                }
            });
        }
        followers.push(c);
    }
    eprintln!(
        "nucleus: compose: {}: following the services' output; Ctrl-C stops them",
        l.project
    );
    loop {
        let ready = nucleus_sys::raw::poll_read(&[sfd.as_raw_fd()], 200).unwrap_or_default();
        if ready.first().is_some_and(|r| *r != 0) {
            let sig = nucleus_sys::raw::read_signal(sfd.as_fd()).unwrap_or(libc::SIGTERM);
            eprintln!("nucleus: compose: {}: stopping (signal {sig})", l.project);
            for s in order.iter().filter(|s| only.is_empty() || only.contains(s)) {
                let names = compose::instance_names(&l.project, s, l.topo.services[s].replicas);
                let _ = nucleus(root)
                    .args(["stop"])
                    .args(&names)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            for mut f in followers {
                let _ = f.kill();
                let _ = f.wait();
            }
            return Ok(rc);
        }
        if followers
            .iter_mut()
            .all(|f| matches!(f.try_wait(), Ok(Some(_))))
        {
            return Ok(rc);
        }
    }
}

/// The interface other than `bridge` that routes exactly `subnet`, if any (this network
/// namespace's IPv4 routes).
fn routed_elsewhere(subnet: &str, bridge: &str) -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    nucleus_spec::net::routed_elsewhere(&routes, subnet, bridge)
}

fn names_in(v: &Value) -> Vec<String> {
    v["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `run -d --name NAME --config-fd 0` with the service's configuration, from the topology
/// file's directory (relative paths in it are the file's).
fn start(l: &Loaded, root: Option<&Path>, name: &str, config: &Value) -> Result<()> {
    let mut c = nucleus(root);
    c.args(["run", "-d", "--name", name, "--config-fd", "0"])
        .current_dir(&l.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().context("start nucleus run")?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(config.to_string().as_bytes());
    }
    let o = child.wait_with_output().context("wait for nucleus run")?;
    if o.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&o.stderr);
    let line = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("nucleus run failed")
        .trim_start_matches("nucleus: ");
    Err(anyhow!("{name}: {}", single_line(line)))
}

/// Wait until every replica of `service` meets `cond`, or say why it cannot.
fn wait_for(
    store: &Store,
    project: &str,
    service: &str,
    replicas: u32,
    cond: Condition,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = true;
        for n in compose::instance_names(project, service, replicas) {
            let Some((st, health, code)) = status_of(store, &n) else {
                return Err(format!("{service} has no sandbox {n}"));
            };
            let ok = match cond {
                Condition::Started => match st {
                    Status::Running => true,
                    Status::Stopped => return Err(format!("{n} stopped")),
                    _ => false,
                },
                Condition::Healthy => match (st, health.as_deref()) {
                    (Status::Running, Some("healthy")) => true,
                    (Status::Stopped, _) => {
                        return Err(format!("{n} stopped before it was healthy"))
                    }
                    _ => false,
                },
                Condition::CompletedSuccessfully => match (st, code) {
                    (Status::Stopped, Some(0)) => true,
                    (Status::Stopped, c) => {
                        return Err(format!(
                            "{n} ended with {}",
                            c.map(|c| format!("status {c}"))
                                .unwrap_or("a signal".into())
                        ))
                    }
                    _ => false,
                },
            };
            all &= ok;
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{service} was not {} within {} s",
                cond_word(cond),
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn down(l: &Loaded, root: Option<&Path>, volumes: bool, time: f64) -> Result<u8> {
    let mut ps = lock(root, &l.project)?;
    // Reverse start order; services only the state knows (dropped from the file) first.
    let mut order: Vec<String> = ps
        .services
        .keys()
        .filter(|s| !l.topo.services.contains_key(*s))
        .cloned()
        .collect();
    order.extend(compose::stop_order(&l.topo));
    let mut removed = 0;
    for s in &order {
        let names = match ps.services.get(s) {
            Some(v) => names_in(v),
            None => match l.topo.services.get(s) {
                Some(svc) => compose::instance_names(&l.project, s, svc.replicas),
                None => vec![],
            },
        };
        removed += names.len();
        rm(root, &names, time);
        ps.services.remove(s);
        ps.save()?;
    }
    for (net, n) in &l.topo.networks {
        let (bridge, _) = compose::bridge_of(&l.project, net, n.subnet.as_deref());
        let net_state = crate::records::state_root(root)?.join("net");
        nucleus_sys::net::delete_bridge_if_unused(&bridge, &net_state)
            .with_context(|| format!("remove network {net}"))?;
    }
    let dir = state_dir(root, &l.project)?;
    if volumes {
        let v = dir.join("volumes");
        if v.exists() {
            std::fs::remove_dir_all(&v).with_context(|| format!("remove {}", v.display()))?;
        }
    }
    let _ = std::fs::remove_file(&ps.path);
    for net in l.topo.networks.keys() {
        let _ = std::fs::remove_file(dir.join(format!("names-{net}.json")));
    }
    // The directory goes once nothing is kept in it (volumes are, without --volumes).
    let _ = std::fs::remove_file(dir.join("lock"));
    let _ = std::fs::remove_dir(&dir);
    eprintln!(
        "nucleus: compose: {}: down ({removed} sandboxes removed{})",
        l.project,
        if volumes { ", volumes removed" } else { "" }
    );
    Ok(0)
}

fn ps(l: &Loaded, store: &Store, format: OutputFormat) -> Result<u8> {
    let mut rows = vec![];
    for (s, svc) in &l.topo.services {
        for (i, n) in compose::instance_names(&l.project, s, svc.replicas)
            .iter()
            .enumerate()
        {
            let rec = resolve(store, n).ok().map(|r| settled(store, r));
            let (status, health, restarts, pid) = match &rec {
                Some(r) => (
                    effective(r).0.as_str().to_string(),
                    r.health.clone(),
                    r.restarts.as_ref().map(|x| x.count).unwrap_or(0),
                    r.workload.map(|w| w.pid),
                ),
                None => ("missing".to_string(), None, 0, None),
            };
            rows.push(json!({
                "service": s, "replica": i + 1, "name": n, "status": status,
                "health": health, "restarts": restarts, "pid": pid,
            }));
        }
    }
    match format {
        OutputFormat::Json => outln!("{}", Value::Array(rows)),
        OutputFormat::Table => {
            outln!(
                "{:<24} {:<14} {:<8} {:<10} {:<10} {:>8}",
                "NAME",
                "SERVICE",
                "REPLICA",
                "STATUS",
                "HEALTH",
                "RESTARTS"
            );
            for r in rows {
                outln!(
                    "{:<24} {:<14} {:<8} {:<10} {:<10} {:>8}",
                    r["name"].as_str().unwrap_or(""),
                    r["service"].as_str().unwrap_or(""),
                    r["replica"].as_u64().unwrap_or(0),
                    r["status"].as_str().unwrap_or(""),
                    r["health"].as_str().unwrap_or("-"),
                    r["restarts"]
                );
            }
        }
    }
    Ok(0)
}

/// `logs` or `restart` of every sandbox of the given services (all when none).
fn each_instance(l: &Loaded, root: Option<&Path>, services: &[String], verb: &str) -> Result<u8> {
    for s in services {
        if !l.topo.services.contains_key(s) {
            return Err(
                ConfigError::new("SERVICE", format!("no service {:?}", single_line(s))).into(),
            );
        }
    }
    let mut rc = 0;
    for (s, svc) in &l.topo.services {
        if !services.is_empty() && !services.contains(s) {
            continue;
        }
        for n in compose::instance_names(&l.project, s, svc.replicas) {
            let o = nucleus(root)
                .arg(verb)
                .arg(&n)
                .output()
                .context("run nucleus")?;
            if verb == "logs" {
                for line in String::from_utf8_lossy(&o.stdout).lines() {
                    outln!("{n} | {line}");
                }
            }
            if !o.status.success() {
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
                rc = 1;
            }
        }
    }
    Ok(rc)
}

/// The JSON Schema of topology files: a service's keys are `nucleus run`'s `--config` keys
/// (less those compose sets) and compose's own.
fn schema() -> Value {
    let run = crate::launch_config::schema();
    let mut props = run["properties"].as_object().cloned().unwrap_or_default();
    for k in compose::OWNED_RUN_KEYS {
        props.remove(*k);
    }
    props.insert(
        "depends_on".into(),
        json!({ "description": "Services to wait for, and for what.", "oneOf": [
            { "type": "object", "additionalProperties": { "enum": ["started", "healthy", "completed_successfully"] } },
            { "type": "array", "items": { "type": "string" } } ] }),
    );
    props.insert(
        "replicas".into(),
        json!({ "type": "integer", "minimum": 1, "maximum": compose::MAX_REPLICAS }),
    );
    props.insert(
        "networks".into(),
        json!({ "type": "array", "items": { "type": "string" }, "maxItems": 1 }),
    );
    props.insert(
        "secrets".into(),
        json!({ "type": "array", "items": { "type": "string" } }),
    );
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "nucleus compose topology",
        "type": "object",
        "additionalProperties": false,
        "definitions": run["definitions"],
        "properties": {
            "name": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$" },
            "service": { "type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": false, "properties": props } },
            "network": { "type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": false,
                "properties": { "subnet": { "type": "string" } } } },
            "volume": { "type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": false,
                "properties": { "owner": { "type": "string", "pattern": "^[0-9]+(:[0-9]+)?$" } } } },
            "secret": { "type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": false,
                "properties": { "file": { "type": "string" }, "systemd_credential": { "type": "string" } } } },
        },
        "required": ["service"],
    })
}
