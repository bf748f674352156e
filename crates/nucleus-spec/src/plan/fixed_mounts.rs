//! What every sandbox gets mounted: /proc with host-revealing paths masked, /sys, a minimal
//! /dev, and the size of its tmpfs mounts.

/// The size of /tmp, the private home and a `--tmpfs DST` without a size: 1 GiB each, or the
/// memory limit when that is smaller (a tmpfs holds memory; the kernel default, half of the
/// host's RAM each, let a sandbox pin gigabytes outside any limit). The sandbox's writes are
/// charged to its own memory cgroup.
pub const DEFAULT_TMPFS_SIZE: u64 = 1 << 30;

/// Paths under /proc that reveal or change host state (Docker's list plus kallsyms).
pub(crate) const PROC_MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "kallsyms",
    "sysrq-trigger",
    "kmsg",
    "config.gz",
    "pagetypeinfo",
];

pub(crate) const PROC_MASKED_DIRS: &[&str] = &["acpi", "scsi", "asound", "firmware", "driver"];

pub(crate) const PROC_READONLY: &[&str] = &["bus", "fs", "irq", "sys"];

pub(crate) const SYS_MASKED_DIRS: &[&str] = &[
    "firmware",
    "devices/virtual/powercap",
    "kernel/security",
    "kernel/debug",
];

pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Directories that never hold programs (no Execute right under Landlock).
pub(crate) const NOEXEC_TOP: &[&str] = &[
    "etc", "proc", "sys", "dev", "context", "run", "tmp", "home", "root",
];
