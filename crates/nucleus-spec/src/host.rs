//! Facts about the host, as plain data. Detected by `nucleus_sys::probe` (with injectable
//! /proc and /sys roots), consumed here by the planner. Tests build them by hand.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a top-level host path is; merged-/usr hosts have /bin, /lib… as symlinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Dir,
    File,
    Symlink(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// Path relative to the directory it was read from (e.g. `usr`, `ssl/certs`).
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Changes whenever the entry does: a hash of its device, inode, size, mode and change and
    /// modification times (0 when not probed). Keys the /etc view ([`crate::plan::EtcView`]).
    #[serde(default)]
    pub stamp: u64,
}

/// FNV-1a (64 bit): a small, stable hash for change stamps and view keys (not for security:
/// the inputs are the host's own metadata).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The facts only some flags need: the probe finds each only when asked (the default run
/// asks for none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// `--cpus`: online CPUs.
    pub cpus: bool,
    /// `--time-offset`: whether the kernel has time namespaces.
    pub time_ns: bool,
    /// `--network host|bridge|slirp`: the host's resolv.conf.
    pub resolv_conf: bool,
    /// `--rootfs`: whether the host has CA certificates to lend.
    pub ca_certs: bool,
    /// `--seccomp-profile`: the kernel version (`minKernel`).
    pub kernel: bool,
}

impl Wants {
    pub fn for_config(cfg: &crate::RunConfig) -> Wants {
        Wants {
            cpus: cfg.limits.cpus_milli.is_some(),
            time_ns: cfg.time_offset.is_some(),
            resolv_conf: cfg.network != crate::config::NetworkMode::None,
            ca_certs: cfg.rootfs.is_some(),
            kernel: cfg.seccomp_profile.is_some(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// Effective uid/gid of the caller: root gets a private id range, others a single mapping.
    pub euid: u32,
    pub egid: u32,
    /// The host system directories (`usr`, `bin`, `lib*`, `sbin`) that exist, and their kind.
    pub system_dirs: Vec<HostEntry>,
    /// Host `/etc` entries the sandbox gets read-only (loader cache, alternatives, CA certs…).
    pub etc_entries: Vec<HostEntry>,
    /// Top-level entries of `--rootfs` when one is given (to decide where programs live).
    pub rootfs_entries: Vec<HostEntry>,
    /// Landlock ABI version of the running kernel (0 = unavailable).
    pub landlock_abi: u32,
    /// Whether the kernel offers time namespaces.
    pub time_ns: bool,
    /// The host's resolv.conf text, used with `--network host`.
    pub host_resolv_conf: Option<String>,
    /// cgroup hierarchies and the caller's place in them.
    pub cgroup: crate::cgroup::CgroupHost,
    /// Whether the host has /etc/ssl/certs (lent to a `--rootfs` that brings no CA certs).
    pub host_ca_certs: bool,
    /// Online CPUs, to check `--cpus` (0 = not probed: only counted when `--cpus` is given).
    pub cpus: u64,
    /// Running kernel version (major, minor), for seccomp profiles' `minKernel`.
    pub kernel: (u32, u32),
}
