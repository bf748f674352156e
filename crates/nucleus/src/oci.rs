//! The OCI runtime command line (runc's, as podman's conmon, containerd's shim and Docker call
//! it): `create --bundle DIR ID` here, and what the shared verbs (`start`, `state`, `kill`,
//! `delete`) do with an OCI container's record. The rule that tells the two command lines
//! apart is in docs/oci.md.

use crate::cli::LogFormat;
use crate::log::Logger;
use crate::records::state_root;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use nucleus_spec::config::ConfigError;
use nucleus_spec::state::{OciRecord, ProcId, State, Status};
use nucleus_sys::process;
use nucleus_sys::store::{self, Store};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Whether this command line is the OCI form of `create`/`run`: `--bundle`/`-b` given, or
/// exactly one argument after the verb's flags with no `--` and a config.json here; of
/// `exec`: `--process`/`-p` given; of `checkpoint`/`restore`: `--image-path` given.
pub(crate) fn is_oci_invocation(args: &[String]) -> bool {
    let Some(at) = args.iter().position(|a| {
        ["create", "run", "exec", "checkpoint", "restore", "--"].contains(&a.as_str())
    }) else {
        return false;
    };
    if args[at] == "--" {
        return false;
    }
    let rest = &args[at + 1..];
    // runc's checkpoint and restore: CRIU's images at --image-path (the native verbs take
    // -o / -i).
    if args[at] == "checkpoint" || args[at] == "restore" {
        return rest
            .iter()
            .any(|a| a == "--image-path" || a.starts_with("--image-path="));
    }
    if rest.iter().any(|a| a == "--") {
        return false;
    }
    if args[at] == "exec" {
        return rest
            .iter()
            .any(|a| a == "--process" || a == "-p" || a.starts_with("--process="));
    }
    if rest
        .iter()
        .any(|a| a == "--bundle" || a == "-b" || a.starts_with("--bundle=") || a.starts_with("-b="))
    {
        return true;
    }
    let positional: Vec<&String> = rest.iter().filter(|a| !a.starts_with('-')).collect();
    positional.len() == 1 && rest.len() == 1 && Path::new("config.json").is_file()
}

/// The OCI runtime's command line for `create` (global flags as runc's).
#[derive(Debug, Parser)]
#[command(name = "nucleus", about = "OCI runtime verbs (runc's command line)")]
pub(crate) struct OciCli {
    /// State directory.
    #[arg(long, env = "NUCLEUS_ROOT", global = true, hide_env_values = true)]
    pub root: Option<PathBuf>,
    /// Also write runtime messages to this file (conmon and containerd's shim read errors
    /// from it).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of runtime messages.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// systemd's cgroup driver: cgroupsPath is slice:prefix:name, the container's cgroup a
    /// transient scope systemd makes (cgroup v2 hosts with systemd as PID 1).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility: runtime messages are already as detailed.
    #[arg(long, global = true)]
    pub debug: bool,
    /// The criu binary for checkpoint and restore (default: criu on PATH).
    #[arg(long, global = true, env = "NUCLEUS_CRIU")]
    pub criu: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OciCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OciCommand {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Create and start a container; in the foreground (its signals and terminal relayed,
    /// its exit status the runtime's, its record removed at its end) unless --detach.
    Run(RunArgs),
    /// Start another process in a running container, as process.json describes it.
    Exec(ExecArgs),
    /// Save a running container with CRIU (runc's checkpoint; podman's container checkpoint).
    Checkpoint(CheckpointArgs),
    /// Start a container from a checkpoint and its bundle (runc's restore).
    Restore(RestoreArgs),
}

/// runc's options CRIU takes as they are, shared by checkpoint and restore.
#[derive(Debug, Args)]
pub(crate) struct CriuArgs {
    /// CRIU's images.
    #[arg(long)]
    pub image_path: PathBuf,
    /// Where CRIU's log (and the restore's pid file) go; default the image path.
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Established TCP connections (saved, restored).
    #[arg(long)]
    pub tcp_established: bool,
    /// Unix sockets whose peer is outside the container.
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// A process started from a shell (a session and group of the caller's).
    #[arg(long)]
    pub shell_job: bool,
    /// File locks.
    #[arg(long)]
    pub file_locks: bool,
    /// CRIU's cgroup mode: soft (default), full, strict or ignore.
    #[arg(long)]
    pub manage_cgroups_mode: Option<String>,
    /// Not supported (nucleus saves a whole image): refused.
    #[arg(long, hide = true)]
    pub empty_ns: Option<String>,
    /// Not supported: refused.
    #[arg(long, hide = true)]
    pub auto_dedup: bool,
    /// Not supported: refused.
    #[arg(long, hide = true)]
    pub lazy_pages: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Keep the container running once it is saved.
    #[arg(long)]
    pub leave_running: bool,
    /// Not supported (no pre-dumps): refused.
    #[arg(long, hide = true)]
    pub pre_dump: bool,
    /// Not supported: refused.
    #[arg(long, hide = true)]
    pub parent_path: Option<PathBuf>,
    /// Not supported: refused.
    #[arg(long, hide = true)]
    pub page_server: Option<String>,
    /// Not supported: refused.
    #[arg(long, hide = true)]
    pub status_fd: Option<String>,
    /// Unlinked files the container holds open are kept through links (CRIU's --link-remap).
    #[arg(long)]
    pub link_remap: bool,
    /// Half-open TCP connections are left out instead of failing the dump (CRIU's
    /// --skip-in-flight).
    #[arg(long)]
    pub tcp_skip_in_flight: bool,
    /// The container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The bundle directory (config.json and its root); default the current directory.
    #[arg(long, short = 'b')]
    pub bundle: Option<PathBuf>,
    /// Leave once it runs (its process goes to the caller's subreaper); without it, in the
    /// foreground as `run`.
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[command(flatten)]
    pub started: Started,
    /// Accepted: the runtime does not become a subreaper.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Accepted: CRIU restores the mounts itself.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted: no LSM profiles.
    #[arg(long, hide = true)]
    pub lsm_profile: Option<String>,
    /// Accepted: no LSM mount contexts.
    #[arg(long, hide = true)]
    pub lsm_mount_context: Option<String>,
    /// The container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The process to start (the `process` object of config.json).
    #[arg(long, short = 'p')]
    pub process: PathBuf,
    /// Leave once the process runs: it is the caller's supervisor's (conmon, the shim).
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[command(flatten)]
    pub started: Started,
    #[command(flatten)]
    pub overridden: ProcessFlags,
    /// The container id.
    pub id: String,
}

/// runc exec's flags that describe the process: accepted as clients pass them beside
/// --process (podman's `exec -t` adds --tty), and, as runc does, ignored then: process.json
/// says all of it.
#[derive(Debug, Args)]
pub(crate) struct ProcessFlags {
    #[arg(long, short = 't', hide = true)]
    tty: bool,
    #[arg(long, hide = true)]
    cwd: Option<String>,
    #[arg(long, short = 'e', hide = true)]
    env: Vec<String>,
    #[arg(long, short = 'u', hide = true)]
    user: Option<String>,
    #[arg(long, short = 'g', hide = true)]
    additional_gids: Vec<String>,
    #[arg(long, short = 'c', hide = true)]
    cap: Vec<String>,
    #[arg(long, hide = true)]
    no_new_privs: bool,
    #[arg(long, hide = true)]
    apparmor: Option<String>,
    #[arg(long, hide = true)]
    process_label: Option<String>,
    #[arg(long, hide = true)]
    ignore_paused: bool,
    #[arg(long, hide = true)]
    cgroup: Vec<String>,
}

/// What `create` and `exec` share: where the started process's pid and terminal go.
#[derive(Debug, Args)]
pub(crate) struct Started {
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: send the pty master over this unix socket.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many descriptors after stdio (3, 4, …) to the process, open.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Leave once the container runs (its process goes to the caller's subreaper).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Keep the container's record after it ends (for `state`, then `delete`).
    #[arg(long)]
    pub keep: bool,
    /// Accepted: the runtime does not become a subreaper (the container is its child).
    #[arg(long)]
    pub no_subreaper: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The bundle directory (config.json and its root); default the current directory.
    #[arg(long, short = 'b')]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub started: Started,
    /// chroot instead of pivot_root (roots on a ramfs).
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted: nucleus makes no session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// The container id.
    pub id: String,
}

/// Run the OCI command line; the exit code.
pub(crate) fn main(args: Vec<String>) -> u8 {
    let cli = match OciCli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return crate::EXIT_NUCLEUS;
        }
    };
    let log = Logger::new(cli.log_format).with_file(cli.log.as_deref());
    let r = match &cli.command {
        OciCommand::Create(a) => create(&cli, a, &log),
        OciCommand::Run(a) => run(&cli, a, &log),
        OciCommand::Exec(a) => exec(&cli, a, &log),
        OciCommand::Checkpoint(a) => crate::oci_checkpoint::checkpoint(&cli, a),
        OciCommand::Restore(a) => crate::oci_checkpoint::restore(&cli, a, &log),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            log.error_of(crate::error_kind(&e), &crate::one_line(&e));
            crate::EXIT_NUCLEUS
        }
    }
}

/// At most this much config.json is read (podman's are a few KiB).
const MAX_CONFIG: u64 = 4 << 20;

/// The container's standard descriptors as this process hands them over (they are its own),
/// kept in its record for a checkpoint to name to CRIU (runc's descriptors.json); None with a
/// terminal, or what CRIU cannot be given.
pub(crate) fn callers_stdio(
    plan: &nucleus_spec::Plan,
) -> Option<Vec<nucleus_spec::oci::checkpoint::Descriptor>> {
    (!plan.process.tty)
        .then(|| nucleus_sys::checkpoint::oci_stdio(std::process::id() as i32).ok())
        .flatten()
}

fn create(cli: &OciCli, a: &CreateArgs, log: &Logger) -> Result<u8> {
    let console = console(a.started.console_socket.as_deref())?;
    Ok(match make(cli, a, log, console.as_ref().into())? {
        Made::Container { .. } => 0,
        Made::Failed(code) => code,
    })
}

/// `run`: create, start; in the foreground, until its process ends.
fn run(cli: &OciCli, a: &RunArgs, log: &Logger) -> Result<u8> {
    use nucleus_sys::sandbox::Console;
    if !a.detach {
        nucleus_sys::sandbox::block_forwarded()?;
    }
    let socket = console(a.create.started.console_socket.as_deref())?;
    let mode = match (&socket, a.detach) {
        (Some(s), _) => Console::Socket(s),
        (None, false) => Console::Keep,
        (None, true) => Console::None,
    };
    let (created, store, record) = match make(cli, &a.create, log, mode)? {
        Made::Container {
            created,
            store,
            record,
        } => (created, store, record),
        Made::Failed(code) => return Ok(code),
    };
    if let Err(e) = start(&store, &record, log) {
        let _ = delete(&store, &record, true, log);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = nucleus_sys::sandbox::foreground(created.pid, created.master)?;
    if !a.keep {
        let s = store.read(&record.id).unwrap_or(*record);
        delete(&store, &s, true, log)?;
    }
    Ok(code.clamp(0, 255) as u8)
}

/// What `make` made: the container (created, waiting for start), or its own failure's exit
/// code (reported already).
enum Made {
    Container {
        created: nucleus_sys::sandbox::Created,
        store: Store,
        record: Box<State>,
    },
    Failed(u8),
}

/// A container's plan from its bundle (config.json read and translated), with the store.
pub(crate) struct FromBundle {
    pub(crate) store: Store,
    pub(crate) bundle: PathBuf,
    pub(crate) parsed: nucleus_spec::oci::Bundle,
    pub(crate) plan: nucleus_spec::Plan,
}

pub(crate) fn from_bundle(
    cli: &OciCli,
    id: &str,
    bundle: Option<&Path>,
    no_pivot: bool,
    log: &Logger,
) -> Result<FromBundle> {
    nucleus_spec::state::validate_name("id", id)?;
    let bundle = match bundle {
        Some(b) => std::path::absolute(b).context("--bundle")?,
        None => std::env::current_dir().context("the current directory")?,
    };
    let mut text = String::new();
    std::fs::File::open(bundle.join("config.json"))
        .and_then(|f| f.take(MAX_CONFIG).read_to_string(&mut text))
        .map_err(|e| {
            ConfigError::new("--bundle", format!("{}/config.json: {e}", bundle.display()))
        })?;
    let parsed = nucleus_spec::oci::parse(&text)?;
    crate::timing::mark("read config.json");
    if cli.systemd_cgroup && !crate::monitor::systemd::systemd_booted() {
        return Err(ConfigError::new(
            "--systemd-cgroup",
            "systemd is not PID 1 here: leave the flag out to drive cgroupfs",
        )
        .into());
    }
    let store = Store::open(&state_root(cli.root.as_deref())?)?;
    let facts = nucleus_sys::probe::detect(
        Path::new("/"),
        None,
        nucleus_spec::host::Wants {
            kernel: true,
            ..Default::default()
        },
    );
    let dir = store.dir(id);
    let plan = nucleus_spec::oci::plan(
        &parsed,
        &nucleus_spec::oci::Context {
            id,
            bundle: &bundle,
            fifo: dir.join("exec.fifo"),
            no_pivot,
            systemd_cgroup: cli.systemd_cgroup,
            rootless: nucleus_sys::security::is_root()
                && nucleus_sys::security::in_user_namespace(),
            facts: &facts,
        },
    )?;
    crate::timing::mark("probe host, plan");
    for w in &plan.warnings {
        log.warn(w);
    }
    Ok(FromBundle {
        store,
        bundle,
        parsed,
        plan,
    })
}

/// Claim the id with the container's record and plan (a second create of it fails here).
pub(crate) fn claim(
    store: &Store,
    id: &str,
    record: &State,
    plan: &nucleus_spec::Plan,
) -> Result<()> {
    let plan_json = serde_json::to_vec(plan)?;
    let taken = || anyhow!("{id}: a container with this id exists (see `nucleus ps -a`)");
    if store.dir(id).exists() {
        return Err(taken());
    }
    store
        .create(id, None, record, &[("plan.json", &plan_json)])
        .map_err(|e| {
            if store.dir(id).exists() {
                taken()
            } else {
                anyhow!("{id}: {e}")
            }
        })?;
    Ok(())
}

fn make(
    cli: &OciCli,
    a: &CreateArgs,
    log: &Logger,
    console: nucleus_sys::sandbox::Console<'_>,
) -> Result<Made> {
    let FromBundle {
        store,
        bundle,
        parsed,
        mut plan,
    } = from_bundle(cli, &a.id, a.bundle.as_deref(), a.no_pivot, log)?;
    plan.process.preserve_fds = preserved(a.started.preserve_fds)?;
    // The record first (it claims the id: a second create of it fails here), then the
    // container; a create that fails removes it.
    let mut record = State::new(&a.id, None, plan.process.argv.clone(), store::now_ms());
    record.oci = Some(OciRecord {
        bundle: bundle.clone(),
        annotations: parsed.annotations(),
        stdio: callers_stdio(&plan),
    });
    claim(&store, &a.id, &record, &plan)?;
    crate::timing::mark("record");
    let created = match nucleus_sys::sandbox::create_oci(&plan, console) {
        Ok(c) => c,
        Err(e) => {
            let _ = store.remove(&a.id, None);
            // A failed create goes on to the end of the lifecycle: poststop (runtime-spec).
            poststop(Some(&plan), log);
            return match e {
                nucleus_sys::sandbox::CreateError::Runtime(e) => Err(e.into()),
                nucleus_sys::sandbox::CreateError::Failed(f) => {
                    log.error(&f.to_string());
                    Ok(Made::Failed(f.exit_code()))
                }
            };
        }
    };
    let me = ProcId {
        pid: created.pid,
        start: process::start_time(created.pid).unwrap_or(0),
    };
    record.status = Status::Created;
    record.init = Some(me);
    record.workload = Some(me);
    record.cgroups = created.cgroups.clone();
    record.protections = Some(created.report.clone());
    crate::timing::mark("container set up");
    store.write(&record)?;
    if let Some(p) = &a.started.pid_file {
        if let Err(e) = write_pid_file(p, created.pid) {
            // Nothing is left of a create that fails.
            let _ = delete(&store, &record, true, log);
            return Err(anyhow::Error::from(e).context(format!("--pid-file {}", p.display())));
        }
    }
    Ok(Made::Container {
        created,
        store,
        record: Box::new(record),
    })
}

fn console(p: Option<&Path>) -> Result<Option<nucleus_sys::channel::ConsoleSocket>> {
    p.map(|p| {
        nucleus_sys::raw::unix_connect(p)
            .map(nucleus_sys::channel::ConsoleSocket::from)
            .with_context(|| format!("--console-socket {}", p.display()))
    })
    .transpose()
}

/// `exec --process F [--detach] ID`: the process joins the container's namespaces and cgroup
/// and takes the path its process.json gives (identity, capabilities, no_new_privs); the
/// container's own seccomp filter applies, as runc does.
fn exec(cli: &OciCli, a: &ExecArgs, log: &Logger) -> Result<u8> {
    let store = Store::open(&state_root(cli.root.as_deref())?)?;
    let s = crate::records::resolve(&store, &a.id)?;
    if s.oci.is_none() {
        bail!(
            "{}: not an OCI container (nucleus exec ID -- CMD runs in a sandbox)",
            a.id
        );
    }
    let (st, _) = crate::records::effective(&s);
    if st != Status::Running {
        bail!(
            "{}: is {}; exec needs a running container",
            a.id,
            st.as_str()
        );
    }
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{}: read its plan", a.id))?;
    let container: nucleus_spec::Plan = serde_json::from_slice(&data).context("decode its plan")?;
    let mut text = String::new();
    std::fs::File::open(&a.process)
        .and_then(|f| f.take(MAX_CONFIG).read_to_string(&mut text))
        .map_err(|e| ConfigError::new("--process", format!("{}: {e}", a.process.display())))?;
    let mut plan = nucleus_spec::oci::exec_process(&text, &container)?;
    plan.process.preserve_fds = preserved(a.started.preserve_fds)?;
    if plan.process.tty && (!a.detach || a.started.console_socket.is_none()) {
        return Err(ConfigError::new(
            "process.terminal",
            "needs --detach and --console-socket (where the terminal's master goes)",
        )
        .into());
    }
    let init = s
        .init
        .ok_or_else(|| anyhow!("{}: its process is not known", a.id))?;
    let Some(pidfd) = process::pidfd(&init) else {
        bail!("{}: is not running any more", a.id);
    };
    let pidfd = std::os::fd::AsFd::as_fd(&pidfd);
    if a.detach {
        let console = console(a.started.console_socket.as_deref())?;
        return match nucleus_sys::join::exec_detached(
            &plan,
            init.pid,
            pidfd,
            &s.cgroups,
            console.as_ref(),
        ) {
            Ok(pid) => {
                if let Some(p) = &a.started.pid_file {
                    write_pid_file(p, pid)
                        .with_context(|| format!("--pid-file {}", p.display()))?;
                }
                Ok(0)
            }
            Err(nucleus_sys::sandbox::CreateError::Runtime(e)) => Err(e.into()),
            Err(nucleus_sys::sandbox::CreateError::Failed(f)) => {
                log.error(&f.to_string());
                Ok(f.exit_code())
            }
        };
    }
    let out = nucleus_sys::join::exec(
        &plan,
        init.pid,
        pidfd,
        &s.cgroups,
        &mut nucleus_sys::sandbox::NoObserver,
        // A process of the container's pid namespace, as runc's.
        (false, None),
    )?;
    if let Some(f) = &out.failure {
        log.error(&f.to_string());
        return Ok(f.exit_code());
    }
    Ok(out.status.code().clamp(0, 255) as u8)
}

/// `--preserve-fds N`: descriptors 3 .. 3+N must be open (given by the caller), and N
/// bounded.
fn preserved(n: u32) -> Result<u32> {
    if n > 1024 {
        return Err(ConfigError::new("--preserve-fds", format!("{n}: at most 1024")).into());
    }
    for fd in 3..3 + n {
        if !nucleus_sys::raw::fd_is_open(fd as i32) {
            return Err(ConfigError::new(
                "--preserve-fds",
                format!("{n}: descriptor {fd} is not open"),
            )
            .into());
        }
    }
    Ok(n)
}

/// `spec`: a default config.json (runc's: `sh` with a terminal, a read-only `rootfs`, the
/// usual namespaces, mounts, masks and capabilities), never over an existing one.
pub(crate) fn spec(a: &crate::cli::SpecArgs) -> Result<u8> {
    let dir = a.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("config.json");
    let text = nucleus_spec::oci::default_config();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| ConfigError::new("--bundle", format!("{}: {e}", path.display())))?;
    Ok(0)
}

/// The pid, written whole: a temporary beside it, renamed over.
pub(crate) fn write_pid_file(p: &Path, pid: i32) -> std::io::Result<()> {
    let tmp = p.with_file_name(format!(
        ".{}.tmp",
        p.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    // Made new, never through a link planted at the temporary's name (the runtime is root;
    // the directory is the caller's): a leftover is unlinked (not followed) and made again.
    let create = || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
    };
    let mut f = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            create()?
        }
        r => r?,
    };
    std::io::Write::write_all(&mut f, pid.to_string().as_bytes())?;
    std::fs::rename(&tmp, p)
}

/// `start` of an OCI container: one byte into its exec fifo lets its process exec; the fifo
/// goes.
pub(crate) fn start(store: &Store, s: &State, log: &Logger) -> Result<u8> {
    let fifo = store.dir(&s.id).join("exec.fifo");
    let (st, _) = crate::records::effective(s);
    if st != Status::Created {
        bail!(
            "{}: is {}; only a created container can be started",
            s.id,
            st.as_str()
        );
    }
    store::release_fifo(&fifo).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            anyhow!(
                "{}: is running; only a created container can be started",
                s.id
            )
        } else {
            anyhow!("{}: its process does not wait for start: {e}", s.id)
        }
    })?;
    let mut r = s.clone();
    r.status = Status::Running;
    r.started_ms = Some(store::now_ms());
    store.write(&r)?;
    // poststart: once its program runs; a failure is a warning (runtime-spec).
    if let Some(plan) = stored_plan(store, s) {
        let pid = s.init.map_or(0, |p| p.pid);
        for h in plan.hooks.iter().filter(|h| !h.poststart.is_empty()) {
            let state = plan.oci_state("running", pid).to_string();
            for w in nucleus_sys::hooks::run_each(&h.poststart, &state) {
                log.warn(&w);
            }
        }
    }
    Ok(0)
}

/// A container's stored plan (its hooks and state).
fn stored_plan(store: &Store, s: &State) -> Option<nucleus_spec::Plan> {
    let data = std::fs::read(store.dir(&s.id).join("plan.json")).ok()?;
    serde_json::from_slice(&data).ok()
}

/// poststop: once the container is gone; each failure a warning.
fn poststop(plan: Option<&nucleus_spec::Plan>, log: &Logger) {
    let Some(plan) = plan else { return };
    for h in plan.hooks.iter().filter(|h| !h.poststop.is_empty()) {
        let state = plan.oci_state("stopped", 0).to_string();
        for w in nucleus_sys::hooks::run_each(&h.poststop, &state) {
            log.warn(&w);
        }
    }
}

/// `delete` of an OCI container: refused while it runs unless `force` (then killed); its
/// cgroup and record go. Also after its process was killed with SIGKILL: nothing is left.
pub(crate) fn delete(store: &Store, s: &State, force: bool, log: &Logger) -> Result<()> {
    let (st, _) = crate::records::effective(s);
    if st == Status::Running && !force {
        bail!("{}: is running; stop it first, or delete --force", s.id);
    }
    if st != Status::Stopped {
        if let Some(fd) = s.init.as_ref().and_then(process::pidfd) {
            let _ =
                nucleus_sys::raw::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), libc::SIGKILL);
            // Its parent (the caller's subreaper) reaps it; the pidfd says when it is gone.
            process::wait_exit(&fd, std::time::Duration::from_secs(5));
        }
    }
    // Its cgroup, as after `nucleus run` (a default parent, …/nucleus, stays: `nucleus gc`).
    let plan = stored_plan(store, s);
    crate::records::remove_cgroups(store, s)?;
    store.remove(&s.id, s.name.as_deref())?;
    poststop(plan.as_ref(), log);
    Ok(())
}
