//! What every sandbox gets mounted: /proc with host-revealing paths masked, /sys, a minimal
//! /dev, and the size of its tmpfs mounts.

use super::{p, Draft, Identity};
use crate::config::RunConfig;
use crate::mounts::MountOp;

/// /proc, read-only unless `--proc-rw`, with [`PROC_MASKED_FILES`] and [`PROC_MASKED_DIRS`]
/// hidden (and [`PROC_READONLY`] kept read-only when it is writable).
pub(super) fn proc(d: &mut Draft) {
    let rw = d.cfg.proc_rw;
    d.mount(MountOp::Proc {
        dst: p("/proc"),
        readonly: !rw,
    });
    for f in PROC_MASKED_FILES {
        d.mount(MountOp::MaskFile {
            dst: p("/proc").join(f),
        });
    }
    for dir in PROC_MASKED_DIRS {
        d.mount(MountOp::MaskDir {
            dst: p("/proc").join(dir),
            own: d.cfg.checkpointable,
        });
    }
    if rw {
        for dir in PROC_READONLY {
            d.mount(MountOp::ReadonlyIfExists {
                dst: p("/proc").join(dir),
            });
        }
    }
}

/// A small /dev: the [`DEVICES`], its own pty instance, shared memory, message queues and
/// the standard links.
pub(super) fn dev(d: &mut Draft) {
    d.mount(MountOp::tmpfs(p("/dev"), 0o755, 64 << 10, true));
    for dev in DEVICES {
        d.mount(MountOp::Bind {
            src: p("/dev").join(dev),
            dst: p("/dev").join(dev),
            readonly: false,
            noexec: false,
            idmap: false,
        });
    }
    d.mount(MountOp::Devpts { dst: p("/dev/pts") });
    d.mount(MountOp::Symlink {
        target: p("pts/ptmx"),
        dst: p("/dev/ptmx"),
    });
    d.mount(MountOp::tmpfs(p("/dev/shm"), 0o1777, 64 << 20, true));
    d.mount(MountOp::Mqueue {
        dst: p("/dev/mqueue"),
    });
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        d.mount(MountOp::Symlink {
            target: p(target),
            dst: p("/dev").join(name),
        });
    }
}

/// /tmp and the private home, each a tmpfs of [`tmpfs_size`].
pub(super) fn tmp_and_home(d: &mut Draft, who: &Identity) {
    let size = tmpfs_size(d.cfg);
    d.mount(MountOp::tmpfs(p("/tmp"), 0o1777, size, false));
    d.mount(MountOp::Tmpfs {
        dst: who.home.clone(),
        mode: 0o700,
        size_bytes: Some(size),
        noexec: false,
        uid: who.user.uid,
        gid: who.gid,
    });
}

/// /sys with [`SYS_MASKED_DIRS`] hidden, and the sandbox's own cgroup read-only, where
/// programs look for their limits (the JVM, Go, Node, .NET size heaps and pools from
/// memory.max / cpu.max). Last of the fixed mounts: a new sysfs shows the mounter's network
/// namespace, which a thread of the sandbox makes meanwhile (~0.5 ms); placed before /dev
/// the mounts waited ~0.2 ms for it.
pub(super) fn sys(d: &mut Draft, cgroup: bool) {
    d.mount(MountOp::Sysfs { dst: p("/sys") });
    for dir in SYS_MASKED_DIRS {
        d.mount(MountOp::MaskDir {
            dst: p("/sys").join(dir),
            own: d.cfg.checkpointable,
        });
    }
    if cgroup {
        d.mount(MountOp::Cgroup {
            dst: p("/sys/fs/cgroup"),
        });
    }
}

/// A tmpfs's size when none is given: [`DEFAULT_TMPFS_SIZE`] or the memory limit if smaller.
pub(super) fn tmpfs_size(cfg: &RunConfig) -> u64 {
    cfg.limits
        .memory
        .map_or(DEFAULT_TMPFS_SIZE, |m| m.min(DEFAULT_TMPFS_SIZE))
}

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
