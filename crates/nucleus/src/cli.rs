//! Command line. Flags are parsed into nucleus-spec types here, at the edge; every error names
//! the flag.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nucleus_spec::config::{ContextMode, NetworkMode, ServiceMode, WorkspaceMode};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "nucleus",
    version,
    about = "Daemonless Linux container runtime for agent sandboxes and hardened services"
)]
pub(crate) struct Cli {
    /// Format of runtime messages on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// State directory (default /run/nucleus as root, else $XDG_RUNTIME_DIR/nucleus).
    #[arg(long, env = "NUCLEUS_ROOT", global = true, hide_env_values = true)]
    pub root: Option<PathBuf>,
    /// Also append runtime messages to this file (as runc: containerd's shim and conmon read
    /// a failed verb's error from it).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// systemd's cgroup driver for `create`/`run` of a bundle: cgroupsPath is
    /// slice:prefix:name, the container's cgroup a transient scope systemd makes (cgroup v2,
    /// systemd as PID 1). Other verbs accept it (the record knows its cgroup).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted as runc's clients pass it: runtime messages are already as detailed.
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Json,
}

/// Who supervises a detached sandbox.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Supervisor {
    /// A systemd transient unit when systemd is PID 1 and the caller is root, else a monitor
    /// process.
    Auto,
    /// A `nucleus monitor` process of its own.
    Monitor,
    /// A systemd transient unit, or an error where systemd cannot run one.
    Systemd,
}

/// Each subcommand's arguments are built only when it is the one invoked (`defer`): building
/// all of them (run's and create's ~80 flags each) was most of a start's argument parsing.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Run a command in a new sandbox and exit with its status (`-d`: print its id and leave
    /// it running).
    Run(Box<RunArgs>),
    /// Set a sandbox up and leave its command waiting for `nucleus start`; prints its id.
    Create(Box<RunArgs>),
    /// Let a created sandbox's command run.
    Start(IdArg),
    /// Start a detached sandbox again as it was made (same id, name and flags), stopping it
    /// first if it runs.
    Restart(RestartArgs),
    /// List sandboxes (running and created; -a: all).
    Ps(PsArgs),
    /// A sandbox's OCI state as JSON.
    State(IdArg),
    /// Every container and sandbox with its OCI state (runc's `list`).
    List(ListArgs),
    /// A running container's resource usage as JSON lines, every --interval (runc's
    /// `events`; --stats: once).
    Events(EventsArgs),
    /// A sandbox's record and configuration as JSON: status, exit, health, command, user,
    /// limits, mounts, network, the names (not values) of its environment.
    Inspect(IdArg),
    /// A detached sandbox's output.
    Logs(LogsArgs),
    /// Run a command in a running sandbox, under the same protections as its workload.
    Exec(ExecArgs),
    /// Copy files and directories into or out of a running sandbox (docker cp's rules): `cp
    /// SRC ID:DST`, `cp ID:SRC DST`; `-` for a tar stream on stdin or stdout.
    Cp(CpArgs),
    /// List a directory of a running sandbox (links not followed): type, mode, size, time and
    /// name of each entry; --json: one object per line.
    Ls(LsArgs),
    /// A Model Context Protocol server on stdin/stdout: every MCP client session gets one
    /// sandbox, made with these `run` flags at its first tool call and removed when the session
    /// ends, and tools to run commands and read, write and list files in it.
    Mcp(Box<McpArgs>),
    /// Several services from one TOML topology (compose.toml): validate, plan, up, down, ps,
    /// logs, restart, exec; each service a detached sandbox started in dependency order.
    Compose(ComposeArgs),
    /// Stop sandboxes: SIGTERM to the workload, SIGKILL to all of it after a grace period.
    Stop(StopArgs),
    /// Send a signal to a sandbox's workload (KILL: to the whole sandbox).
    Kill(KillArgs),
    /// Change a running sandbox's resource limits (those whose controller it has).
    Update(UpdateArgs),
    /// Save a running sandbox (one started with --checkpointable) to a directory with CRIU;
    /// it stops unless --leave-running (docs/checkpoint.md).
    Checkpoint(CheckpointArgs),
    /// Start a detached sandbox again from a `checkpoint` directory: its processes go on from
    /// where they were saved.
    Restore(RestoreArgs),
    /// Freeze every process of a running sandbox (cgroup freezer, v2 or v1).
    Pause(IdArg),
    /// Thaw a paused sandbox.
    #[command(alias = "resume")]
    Unpause(IdArg),
    /// Remove stopped sandboxes (-f: stop them first).
    Rm(RmArgs),
    /// Remove sandboxes or OCI containers (runc's `delete`; -f/--force: kill them first).
    Delete(RmArgs),
    /// What this runtime implements of the OCI runtime-spec, as JSON (runc's `features`).
    Features,
    /// Write a default OCI config.json (runc's `spec`) into the bundle directory.
    Spec(SpecArgs),
    /// The supervisor of one detached sandbox, as a systemd transient unit runs it (internal).
    #[command(hide = true)]
    Monitor(IdArg),
    /// Seccomp tools: trace a workload's syscalls, generate a profile from a trace.
    #[command(subcommand)]
    Seccomp(SeccompCmd),
    /// Remove what runs killed with SIGKILL left behind (their cgroups and records), the empty
    /// default cgroup parents and /etc views no sandbox holds; live sandboxes are never touched.
    Gc(GcArgs),
    /// Launch configuration files: their JSON Schema and references.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Attested root filesystems: write a manifest, verify a tree against one.
    #[command(subcommand)]
    Rootfs(RootfsCmd),
    /// Services as systemd units.
    #[command(subcommand)]
    Systemd(SystemdCmd),
    /// Resource usage of running sandboxes (all, or the given ids or id prefixes).
    Stats(StatsArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print the JSON Schema of `--config` files.
    Schema,
    /// Print the reference of `--config` keys (Markdown; docs/config.md is this output).
    Reference,
    /// Print the command-line reference (Markdown; docs/cli.md is this output).
    CliReference,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SystemdCmd {
    /// Print a unit, nucleus-NAME.service, that runs CMD with these `run` flags (or
    /// --config) as a service: Type=notify, the journal for its output, Restart= from
    /// --restart, LoadCredential= for each --secret and --load-credential, Delegate=yes.
    Unit(Box<UnitArgs>),
    /// Write that unit into /etc/systemd/system (or --unit-dir), reload systemd and enable it
    /// (--now: and start it, waiting until it is ready).
    Install(Box<InstallArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct UnitArgs {
    /// The service's name: its unit is nucleus-NAME.service, its sandbox is named NAME.
    #[arg(value_name = "NAME")]
    pub service: String,
    /// A credential systemd loads for the service (LoadCredential=NAME:PATH), given to the
    /// sandbox as /run/secrets/NAME (repeatable).
    #[arg(long)]
    pub load_credential: Vec<String>,
    /// The nucleus the unit runs (default: this one).
    #[arg(long)]
    pub nucleus: Option<PathBuf>,
    /// The unit's Description=.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Where the unit is written.
    #[arg(long, default_value = crate::commands::unit::UNIT_DIR)]
    pub unit_dir: PathBuf,
    /// Start it too.
    #[arg(long)]
    pub now: bool,
    #[command(flatten)]
    pub unit: UnitArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RootfsCmd {
    /// Describe a directory (every path, type, mode, owner, size, SHA-256 of contents, symlink
    /// target) and print the manifest's digest, to pin with --rootfs-sha256.
    Manifest(ManifestArgs),
    /// Check a directory against a manifest, every entry and every byte; the first
    /// difference is named.
    Verify(VerifyArgs),
    /// Remove every sealed image (and its shared mount) from the cache; running sandboxes
    /// keep theirs, the next start on each verifies its tree again.
    Gc(RootfsGcArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RootfsGcArgs {
    /// The cache of sealed images.
    #[arg(long, env = "NUCLEUS_ROOTFS_CACHE", hide_env_values = true, default_value = nucleus_spec::attest::DEFAULT_CACHE)]
    pub rootfs_cache: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestArgs {
    /// The root filesystem directory.
    pub dir: PathBuf,
    /// Write the manifest here (default: standard output, the digest on standard error).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// DIR is a Nix store path: the root is DIR with its whole closure at /nix/store (from
    /// `nix-store -qR DIR`, or --nix-graph).
    #[arg(long)]
    pub nix_closure: bool,
    /// The closure as Nix's exportReferencesGraph writes it (in a Nix build, which has no
    /// nix-store to ask), or a list of store paths, one per line.
    #[arg(long, requires = "nix_closure")]
    pub nix_graph: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The root filesystem directory.
    pub dir: PathBuf,
    /// The manifest it must match.
    #[arg(long)]
    pub manifest: PathBuf,
    /// The SHA-256 the manifest must have.
    #[arg(long)]
    pub sha256: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SeccompCmd {
    /// Run a command in a sandbox (same flags as `run`) with no seccomp filter, recording
    /// every syscall of its whole process tree (threads and children included).
    Trace(Box<TraceArgs>),
    /// Write a minimal OCI seccomp profile allowing the syscalls of a trace, with the default
    /// filter's argument rules and refusals kept.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// Where the trace (JSON) goes.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// A trace written by `nucleus seccomp trace`.
    pub trace: PathBuf,
    /// Where the profile goes.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Allow this traced syscall although the default filter refuses it (repeatable; by
    /// default such syscalls stay refused and are listed).
    #[arg(long)]
    pub allow_denied: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// One usage line, then leave.
    #[arg(long)]
    pub stats: bool,
    /// Time between usage lines (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Show stopped sandboxes too.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Only ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// One sandbox or container: list its processes instead (runc's `ps ID`; with
    /// --format json, an array of pids).
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Keep printing new output until the sandbox stops.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long = "tail", short = 'n')]
    pub tail: Option<usize>,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Allocate a pseudo-terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Kill the command and everything it started after this long (30s, 500ms, or seconds);
    /// the exit status is then 124, as timeout(1)'s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// After the command ends, print one JSON object (the last line of stdout): exit code,
    /// signal, timed_out, oom_killed, duration, CPU time and peak memory of the call, and with
    /// --capture its output.
    #[arg(long)]
    pub json: bool,
    /// With --json: the command's stdout and stderr go into the JSON object (at most
    /// --capture-max bytes each, the rest dropped and counted), not to the caller's.
    #[arg(long, requires = "json")]
    pub capture: bool,
    /// The most bytes of each of stdout and stderr --capture keeps.
    #[arg(long, default_value = "1M")]
    pub capture_max: String,
    /// The user to run as: a uid, uid:gid, or a name in the sandbox's /etc/passwd (default:
    /// the workload's).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The command's standard input: this host file.
    #[arg(long)]
    pub stdin_file: Option<PathBuf>,
    /// Start the command in the background (its input and output /dev/null) and return once
    /// it is set up; it ends with the sandbox, or when it exits (with whatever it started).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Environment variable KEY=VALUE added to the workload's (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Working directory (default: the workload's).
    #[arg(long, short = 'w')]
    pub workdir: Option<PathBuf>,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// The sandbox's side as the workload's user under its Landlock rules (default: copying
    /// out reads as the sandbox's root, as docker cp does).
    #[arg(long)]
    pub as_workload: bool,
    /// A host path, ID:PATH (a sandbox's), or - (a tar stream on stdin).
    pub src: String,
    /// A host path, ID:PATH, or - (a tar stream on stdout).
    pub dst: String,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// List as the workload's user under its Landlock rules (default: as the sandbox's root).
    #[arg(long)]
    pub as_workload: bool,
    /// One JSON object per entry: name, type, size, mode, mtime, uid, gid, target.
    #[arg(long)]
    pub json: bool,
    /// The most entries to list (then a last line says the list was cut).
    #[arg(long, default_value_t = 10_000)]
    pub max: usize,
    /// ID:PATH, a running sandbox's directory (or file).
    pub target: String,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// A command's time limit when the tool call gives none (30s, 2m, …; default 60s, or
    /// --call-timeout-max when that is shorter).
    #[arg(long)]
    pub call_timeout: Option<String>,
    /// The longest time limit a tool call may ask for.
    #[arg(long, default_value = "10m")]
    pub call_timeout_max: String,
    /// The most bytes a tool call returns: each of a command's stdout and stderr, a file read.
    #[arg(long, default_value = "1M")]
    pub output_max: String,
    /// The most bytes a tool call may send in: a file's content, a command's input.
    #[arg(long, default_value = "16M")]
    pub input_max: String,
    /// The most tool calls running at once in a session (more wait their turn).
    #[arg(long, default_value_t = 8)]
    pub calls_max: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ComposeArgs {
    /// The topology file.
    #[arg(long, short = 'f', default_value = "compose.toml", global = true)]
    pub file: PathBuf,
    /// The project's name (default: the file's `name`, else its directory's name).
    #[arg(long, short = 'p', global = true)]
    pub project: Option<String>,
    #[command(subcommand)]
    pub cmd: ComposeCmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ComposeCmd {
    /// Check the topology (every problem, one line each, with its path in the file).
    Validate,
    /// Print the start order: waves of services that may start together, and what each waits
    /// for; nothing is touched.
    Plan,
    /// Start the topology (or bring it to the file: only services whose configuration changed
    /// are restarted, new ones started, dropped ones removed), wave by wave; -d: return once
    /// every service is started, else follow their output until Ctrl-C, which stops them.
    Up(ComposeUpArgs),
    /// Stop and remove the topology's sandboxes in reverse order, and its networks.
    Down(ComposeDownArgs),
    /// The topology's sandboxes: service, replica, status, health, restarts.
    Ps(ComposePsArgs),
    /// The services' output (all, or the given ones), each line prefixed with its sandbox.
    Logs(ComposeServicesArgs),
    /// Restart services (all, or the given ones).
    Restart(ComposeServicesArgs),
    /// Run a command in a service's sandbox (its first replica, or --index).
    Exec(ComposeExecArgs),
    /// Print the JSON Schema of topology files.
    Schema,
}

#[derive(Debug, Args)]
pub(crate) struct ComposeUpArgs {
    /// Return once the services are started; without it, `up` follows their output (each line
    /// prefixed with its sandbox) and Ctrl-C stops them.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// How long to wait for a dependency's condition (started, healthy, completed).
    #[arg(long, default_value = "120s")]
    pub timeout: String,
    /// Only these services (and what they depend on).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ComposeDownArgs {
    /// Also remove the named volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long = "time", short = 't', default_value_t = 10.0)]
    pub time: f64,
}

#[derive(Debug, Args)]
pub(crate) struct ComposePsArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct ComposeServicesArgs {
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ComposeExecArgs {
    /// Which replica (1…).
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long = "time", short = 't', default_value_t = 10.0)]
    pub time: f64,
    /// Sandbox names, ids, or unique id prefixes.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SpecArgs {
    /// The bundle directory (default the current directory); its config.json must not exist.
    #[arg(long, short = 'b')]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// Signal every process of it, not its main process only (runc's --all).
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
    /// Signal name or number.
    #[arg(default_value = "KILL")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    /// Seconds a running sandbox gets between SIGTERM and SIGKILL.
    #[arg(long, short = 't', default_value_t = 10.0)]
    pub time: f64,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// Memory limit (e.g. 512M, 2G).
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory plus swap (with --memory), or max.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU quota in CPUs (e.g. 0.5, 2).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Relative CPU weight (1-10000).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_weight: Option<String>,
    /// Maximum number of tasks, or max.
    #[arg(long, alias = "pids-limit", allow_hyphen_values = true)]
    pub pids: Option<String>,
    /// runc's form of --cpus: microseconds of CPU time per --cpu-period.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// The period of --cpu-quota in microseconds (default 100000).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// runc's form of --cpu-weight: cgroup v1 shares (2-262144).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// All limits as one runc update file, a JSON `linux.resources` object (`-`: stdin).
    #[arg(long, short = 'r')]
    pub resources: Option<PathBuf>,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// The directory to write (made; an existing one must be empty).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Keep the sandbox running once it is saved.
    #[arg(long)]
    pub leave_running: bool,
    /// Save established TCP connections (restored with them; without it they are refused).
    #[arg(long)]
    pub tcp_established: bool,
    /// The criu binary (default: criu on PATH).
    #[arg(long, env = "NUCLEUS_CRIU")]
    pub criu: Option<PathBuf>,
    /// Sandbox name, id, or unique id prefix.
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A directory `nucleus checkpoint` wrote.
    #[arg(long, short = 'i')]
    pub input: PathBuf,
    /// The restored sandbox's name (default: the saved one's).
    #[arg(long)]
    pub name: Option<String>,
    /// Detached: print the id and return. Without it the sandbox's output comes here, INT,
    /// TERM, HUP and QUIT go to it, and its exit status is ours (its record goes at the end).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// The criu binary (default: criu on PATH).
    #[arg(long, env = "NUCLEUS_CRIU")]
    pub criu: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Stop running sandboxes first (SIGKILL).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Sandbox names, ids, or unique id prefixes.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The cgroup parent the sandboxes were started under (as given to `run`).
    #[arg(long, env = "NUCLEUS_CGROUP_ROOT", hide_env_values = true)]
    pub cgroup_parent: Option<String>,
    /// table, or json (JSON lines, one per sandbox).
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, hide = true)]
    pub json: bool,
    /// Sandbox names or ids (a unique prefix is enough).
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// The cgroup parent to clean (as given to `run --cgroup-parent`).
    #[arg(long, env = "NUCLEUS_CGROUP_ROOT", hide_env_values = true)]
    pub cgroup_parent: Option<String>,
}

// The flags of `run`, `create` and `seccomp trace`; also the keys of a `--config` file
// (snake_case), so the file and the command line are one typed launch configuration. (Not a
// doc comment: clap would make it the about text of `run --help`, over the subcommand's own,
// since subcommands are built deferred.)
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "The flags of `run`, `create` and `seccomp trace`; also the keys of a `--config` file (snake_case), so the file and the command line are one typed launch configuration."
)]
pub(crate) struct RunArgs {
    /// Launch configuration file (TOML, or JSON by a .json name): keys are the long flags in
    /// snake_case; flags given on the command line win, field by field.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Read the launch configuration (TOML or JSON) from this open descriptor.
    #[arg(long)]
    #[serde(skip)]
    pub config_fd: Option<i32>,
    /// Leave the sandbox running, supervised by its monitor; print its id.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// A unique name to refer to the sandbox by.
    #[arg(long)]
    pub name: Option<String>,
    /// With -d: remove the sandbox's record when it stops (foreground runs always do).
    #[arg(long)]
    pub rm: bool,
    /// With -d: start the sandbox again when its workload exits: no, on-failure[:MAX] or
    /// always, after 100 ms doubling up to 30 s (reset by a run of 10 s); never after `stop`.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// With -d and --health-cmd: `restart` kills and starts again an unhealthy sandbox
    /// (whatever --restart says); `none` only reports it.
    #[arg(long, default_value = "none")]
    pub health_on_failure: String,
    /// Append lifecycle events to this file, one JSON object per line.
    #[arg(long)]
    pub events_jsonl: Option<PathBuf>,
    /// Write lifecycle events to this open file descriptor.
    #[arg(long)]
    pub events_fd: Option<i32>,
    /// Time limit of the workload from its start (e.g. 30s, 5m, 1h): then SIGTERM, and SIGKILL
    /// to the whole sandbox 10 s later; the exit is the workload's (143 or 137), the record and
    /// a `timeout` event say it timed out.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Health check: a shell command run inside the sandbox (like `nucleus exec`); exit 0 is
    /// healthy. Status changes are `health` events; `ps` shows the status.
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", requires = "health_cmd")]
    pub health_interval: String,
    /// A health check running longer than this fails.
    #[arg(long, default_value = "30s", requires = "health_cmd")]
    pub health_timeout: String,
    /// Consecutive failures that make the sandbox unhealthy.
    #[arg(long, default_value_t = 3, requires = "health_cmd")]
    pub health_retries: u32,
    /// Failures during this first period after start do not count.
    #[arg(long, default_value = "0s", requires = "health_cmd")]
    pub health_start_period: String,
    /// Who supervises a detached sandbox.
    #[arg(long, value_enum, default_value = "auto")]
    pub supervisor: Supervisor,
    /// With -d/create and --tty: send the terminal's master over this unix socket (OCI
    /// convention) instead of keeping it.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Security tier.
    #[arg(long, value_enum, default_value = "agent")]
    pub service_mode: ServiceMode,
    /// Network.
    #[arg(long, value_enum, default_value = "none")]
    pub network: NetworkMode,
    /// Which runtime runs the sandbox: native (namespaces, seccomp, Landlock on the host's
    /// kernel) or gvisor (gVisor's runsc: a user-space kernel in between; docs/gvisor.md).
    #[arg(long, value_enum, default_value = "native")]
    pub runtime: nucleus_spec::gvisor::Runtime,
    /// With --runtime gvisor: runsc's platform (default: runsc's own).
    #[arg(long, value_enum)]
    pub gvisor_platform: Option<nucleus_spec::gvisor::GvisorPlatform>,
    /// With --runtime gvisor: the runsc binary (default: runsc in PATH).
    #[arg(long, env = "NUCLEUS_RUNSC", hide_env_values = true)]
    pub runsc: Option<PathBuf>,
    /// Publish a port: [HOST_IP:]HOST_PORT:CTR_PORT[/tcp|udp] (repeatable; bridge, slirp).
    #[arg(long = "publish", short = 'p')]
    pub publish: Vec<String>,
    /// Nameserver for the sandbox, or upstream of the runtime's resolver (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// Allow egress to this address or CIDR range (repeatable; any allow rule denies the rest).
    #[arg(long)]
    pub egress_allow: Vec<String>,
    /// Allow egress to what this name resolves to: NAME or *.NAME (repeatable; DNS goes to the
    /// runtime's resolver, which answers allowed names only).
    #[arg(long)]
    pub egress_domain: Vec<String>,
    /// Restrict allowed egress to these TCP ports (repeatable).
    #[arg(long)]
    pub egress_tcp_port: Vec<String>,
    /// Restrict allowed egress to these UDP ports (repeatable).
    #[arg(long)]
    pub egress_udp_port: Vec<String>,
    /// With --network bridge: a JSON file {"NAME": ["SANDBOX", …]} whose names the sandbox's
    /// resolver answers itself with those sandboxes' addresses on the bridge, read at each
    /// query (compose writes one per topology network).
    #[arg(long)]
    pub names_file: Option<PathBuf>,
    /// With --network bridge: one more bridge the sandbox is on, as eth1, eth2, … (in order)
    /// with an address of SUBNET (IPv4) and no default route; its published ports, DNS and
    /// default route stay on eth0 (--bridge). names=FILE: as --names-file, for this bridge
    /// (repeatable: bridge=NAME,subnet=CIDR[,names=FILE]).
    #[arg(long)]
    pub attach: Vec<String>,
    /// Host bridge for --network bridge (created when missing).
    #[arg(long, default_value = nucleus_spec::net::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// IPv4 range of the bridge (its first address is the gateway).
    #[arg(long, default_value = nucleus_spec::net::DEFAULT_SUBNET4)]
    pub subnet: String,
    /// IPv6 range of the bridge, or "none" for IPv4 only.
    #[arg(long, default_value = nucleus_spec::net::DEFAULT_SUBNET6)]
    pub subnet6: String,
    /// Root filesystem directory (default: a tmpfs with the host's /usr, /bin, /lib* read-only).
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// The manifest --rootfs must match (from `nucleus rootfs manifest`): verified in full the
    /// first time, then run from its sealed read-only image (production mode requires it).
    #[arg(long)]
    pub rootfs_manifest: Option<PathBuf>,
    /// The SHA-256 the --rootfs-manifest file must have (printed by `nucleus rootfs manifest`).
    #[arg(long)]
    pub rootfs_sha256: Option<String>,
    /// Readiness from the workload: it gets $NOTIFY_SOCKET (a socket in the sandbox) and is
    /// ready when it sends READY=1; its READY, STATUS, WATCHDOG, RELOADING, STOPPING and
    /// ERRNO messages are relayed to the caller's NOTIFY_SOCKET (systemd's Type=notify), the
    /// rest dropped.
    #[arg(long)]
    pub sd_notify: bool,
    /// Ready once 127.0.0.1:PORT in the sandbox accepts a connection.
    #[arg(long)]
    pub readiness_tcp: Option<u16>,
    /// Ready once CMD (run in the sandbox with /bin/sh -c, as `nucleus exec`) exits 0.
    #[arg(long)]
    pub readiness_exec: Option<String>,
    /// A secret: the host file SRC as /run/secrets/NAME (default: SRC's name), in an
    /// in-memory tmpfs, 0400, owned by the workload user; never in the environment, a command
    /// line, a record, an event or a log (repeatable).
    #[arg(long)]
    pub secret: Vec<String>,
    /// A systemd credential (LoadCredential= in the unit): $CREDENTIALS_DIRECTORY/NAME as
    /// /run/secrets/DST (default: NAME) (repeatable).
    #[arg(long)]
    pub systemd_credential: Vec<String>,
    /// Where sealed images of attested roots are kept (root-owned, mode 0700).
    #[arg(long, env = "NUCLEUS_ROOTFS_CACHE", hide_env_values = true, default_value = nucleus_spec::attest::DEFAULT_CACHE)]
    pub rootfs_cache: PathBuf,
    /// Hostname inside the sandbox (default: nucleus-ID).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Working directory inside the sandbox (default: /workspace or the home directory).
    #[arg(long, short = 'w')]
    pub workdir: Option<PathBuf>,
    /// Environment variable KEY=VALUE, or KEY to pass the caller's value (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// File of KEY=VALUE lines (# comments and blank lines ignored).
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Workload user: a uid (0-65534) or a name (with --rootfs one of the image's users; else
    /// root = 0, any other name is made with uid 1000).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Workload primary group id (default: same as the uid).
    #[arg(long)]
    pub group: Option<String>,
    /// Supplementary group id (repeatable).
    #[arg(long)]
    pub additional_group: Vec<String>,
    /// Resource limit NAME=SOFT[:HARD], e.g. nofile=1024:2048 (repeatable).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Seconds added to CLOCK_MONOTONIC and CLOCK_BOOTTIME (time namespace).
    #[arg(long, allow_hyphen_values = true)]
    pub time_offset: Option<i64>,
    /// Directory whose files are copied (or bound) read-only to /context.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// How the context gets there.
    #[arg(long, value_enum, default_value = "copy")]
    pub context_mode: ContextMode,
    /// Host directory mounted at /workspace.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// How the workspace is shared.
    #[arg(long, value_enum, default_value = "bind-rw")]
    pub workspace_mode: WorkspaceMode,
    /// Most a copied workspace (copy-in-out) or context may hold: the size of its tmpfs, and
    /// copy-back refuses a larger tree with the host copy left as it was.
    #[arg(long, default_value = "4g")]
    pub workspace_max_size: String,
    /// Most a detached sandbox's log file may hold; above it, the log moves to log.1
    /// (replacing the older one) and starts again (`nucleus logs` reads both).
    #[arg(long, default_value = "16m")]
    pub log_max_size: String,
    /// Bind mount SRC:DST[:ro] (repeatable).
    #[arg(long, short = 'v')]
    pub volume: Vec<String>,
    /// tmpfs at DST[:SIZE] (repeatable).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Read-only provider config SRC:DST; a relative DST is inside the home (repeatable).
    #[arg(long)]
    pub provider_config_ro: Vec<String>,
    /// Allocate a pseudo-terminal for the workload.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Mount /proc read-write (default read-only).
    #[arg(long)]
    pub proc_rw: bool,
    /// Make the sandbox one `nucleus checkpoint` can save: no Landlock on its workload (CRIU
    /// cannot save Landlock; agent mode only); its mounts still bound what it sees
    #[arg(long)]
    pub checkpointable: bool,
    /// Allow this syscall on top of the default seccomp filter (repeatable).
    #[arg(long)]
    pub seccomp_allow: Vec<String>,
    /// Seccomp profile in the OCI runtime-spec format (Docker's and podman's included),
    /// replacing the default filter.
    #[arg(long)]
    pub seccomp_profile: Option<PathBuf>,
    /// Name each syscall the seccomp filter refuses (on stderr, or in a detached sandbox's
    /// log, and as `seccomp_denied` events), then fail it as the filter says.
    #[arg(long)]
    pub seccomp_log_denied: bool,
    /// sha256 the --seccomp-profile file must have (nothing starts otherwise).
    #[arg(long)]
    pub seccomp_profile_sha256: Option<String>,
    /// Capabilities the workload keeps: TOML with bounding, effective, permitted, inheritable,
    /// ambient lists (default: none kept).
    #[arg(long)]
    pub caps_policy: Option<PathBuf>,
    /// sha256 the --caps-policy file must have.
    #[arg(long)]
    pub caps_policy_sha256: Option<String>,
    /// Landlock rules: TOML with min_abi, base ("default" or "none") and [[rule]] path, rights,
    /// missing ("error" or "skip").
    #[arg(long)]
    pub landlock_policy: Option<PathBuf>,
    /// sha256 the --landlock-policy file must have.
    #[arg(long)]
    pub landlock_policy_sha256: Option<String>,
    /// Memory limit, e.g. 256M (the workload is OOM-killed above it).
    #[arg(long, short = 'm', allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (at least --memory; -1 = unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU quota in CPUs, e.g. 1.5.
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Relative CPU weight, 1-10000 (default share 100).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_weight: Option<String>,
    /// Maximum number of tasks (processes and threads); max (or -1, as docker) for no limit.
    #[arg(long, default_value = "512", allow_hyphen_values = true)]
    pub pids: String,
    /// Block I/O limit "MAJ:MIN rbps=N wbps=N riops=N wiops=N" (repeatable).
    #[arg(long)]
    pub io_limit: Vec<String>,
    /// cgroup parent: /path from the hierarchy root, or relative to the caller's cgroup
    /// (default: nucleus under the caller's cgroup, else /nucleus).
    #[arg(long, env = "NUCLEUS_CGROUP_ROOT", hide_env_values = true)]
    pub cgroup_parent: Option<String>,
    /// Exit only once the sandbox is torn down (init gone, its cgroup removed, its id range
    /// and /etc view released). By default a foreground run exits with the workload's status
    /// as soon as the sandbox reports it, and a helper process finishes the clean-up within
    /// milliseconds (docs/lifecycle.md).
    #[arg(long)]
    pub sync_cleanup: bool,
    /// Print the decided plan as JSON and exit without touching the host.
    #[arg(long)]
    pub dry_run: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand (deferred ones are built for it).
    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        let run = Cli::command()
            .find_subcommand_mut("run")
            .map(|c| c.render_help().to_string())
            .unwrap();
        assert!(run.starts_with("Run a command in a new sandbox"), "{run}");
    }

    /// The command line names the modes as configuration files do (serde).
    #[test]
    fn mode_names_match_the_config_names() {
        fn same<T: ValueEnum + serde::Serialize>() {
            for v in T::value_variants() {
                let name = v.to_possible_value().unwrap().get_name().to_owned();
                assert_eq!(serde_json::to_value(v).unwrap(), name);
            }
        }
        same::<ServiceMode>();
        same::<NetworkMode>();
        same::<WorkspaceMode>();
        same::<ContextMode>();
        same::<Supervisor>();
    }
}
