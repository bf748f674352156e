//! The ordered list of mount operations that builds a sandbox's root. Computed by the planner,
//! interpreted literally by `nucleus_sys::mount`. Container paths are absolute paths inside the
//! new root; host paths are absolute host paths.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the new root itself is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// A fresh tmpfs (made read-only once populated; noexec: it holds only mount points, links
    /// and the synthetic /etc files, and programs come from the binds on it).
    Tmpfs,
    /// A host directory bound read-only (`--rootfs`).
    Bind(PathBuf),
    /// A host directory as it is (an OCI bundle's `root.path`): bound recursively, writable
    /// unless `readonly` (made read-only once every mount is in place).
    Dir { path: PathBuf, readonly: bool },
}

/// What a device node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// One step. The executor runs them in order and stops at the first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MountOp {
    /// A directory in the (still writable) root tmpfs or another tmpfs.
    Mkdir {
        dst: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        dst: PathBuf,
    },
    /// A regular file with the given contents (synthetic /etc files).
    File {
        dst: PathBuf,
        contents: String,
        mode: u32,
    },
    Tmpfs {
        dst: PathBuf,
        mode: u32,
        size_bytes: Option<u64>,
        noexec: bool,
        uid: u32,
        gid: u32,
    },
    /// Bind a host path; the mount point is made a file or a directory like the source.
    /// `idmap`: translate ownership through the sandbox's user namespace
    /// (host uid N appears as uid N inside), so user data stays owned by the workload.
    /// `noexec`: nothing on it can be executed or mapped executable (data, not programs).
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
        #[serde(default)]
        noexec: bool,
        idmap: bool,
    },
    /// Bind `rel` of the host directory `tree` read-only. The tree is bound read-only once (in
    /// the staging root) and every entry is bound from it, inheriting its read-only, noexec,
    /// nosuid, nodev flags: one mount call per entry instead of a bind plus a `mount_setattr`
    /// (the /etc entries: ~0.5 ms per start here).
    BindFromTree {
        tree: PathBuf,
        rel: PathBuf,
        dst: PathBuf,
        /// Whether the entry is a directory, as the host probe saw it (the mount point is made
        /// like it without another stat).
        #[serde(default)]
        dir: bool,
    },
    /// A detached tmpfs the parent prepared and filled (context copy, copy-in-out workspace),
    /// attached here. It exists on no host path, so nothing can be left behind.
    Attach {
        slot: usize,
        dst: PathBuf,
        readonly: bool,
        #[serde(default)]
        noexec: bool,
    },
    /// Attach the host /etc snapshot the runtime prepared (`Plan::etc_view`): read-only,
    /// noexec, nosuid, nodev.
    EtcView {
        dst: PathBuf,
    },
    Proc {
        dst: PathBuf,
        readonly: bool,
    },
    /// A fresh sysfs (read-only); falls back to a read-only recursive bind of the host /sys when
    /// the kernel refuses (e.g. sharing the host network namespace).
    Sysfs {
        dst: PathBuf,
    },
    /// The sandbox's own cgroup, read-only (nothing when it has none): on v2 a cgroup2 mount
    /// in its cgroup namespace; on v1 a tmpfs with its leaf of each hierarchy bound read-only
    /// (v1 hierarchies cannot be mounted from a user namespace).
    Cgroup {
        dst: PathBuf,
    },
    Devpts {
        dst: PathBuf,
    },
    Mqueue {
        dst: PathBuf,
    },
    /// Hide a file (bind /dev/null over it) if it exists.
    MaskFile {
        dst: PathBuf,
    },
    /// Hide a directory (an empty read-only directory bound over it) if it exists. `own`: a
    /// read-only tmpfs of its own instead (a checkpointable sandbox: CRIU saves a mount only
    /// when its file system's root is reachable, and the shared empty directory's is not).
    MaskDir {
        dst: PathBuf,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        own: bool,
    },
    /// Bind a path onto itself read-only if it exists (e.g. /proc/sys).
    ReadonlyIfExists {
        dst: PathBuf,
    },
    /// Make the root mount read-only; everything writable is its own mount.
    RemountRootReadonly,
    /// A mount as an OCI bundle spells it: `fstype` from `source` with the options read into
    /// flags, propagation and data (a bind of the host path `source` when the options say
    /// so, `fstype` then empty).
    Oci {
        source: PathBuf,
        dst: PathBuf,
        fstype: String,
        options: crate::oci::options::MountOptions,
        /// An idmapped bind: the files' owners shown through these maps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idmap: Option<IdMapping>,
    },
    /// A device node (OCI `linux.devices` and the default devices of a container's own
    /// /dev); bound from the host's node where the sandbox may not mknod (a user namespace).
    Device {
        dst: PathBuf,
        kind: DeviceKind,
        major: u32,
        minor: u32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Hide a path if it exists: /dev/null over a file, an empty read-only directory over a
    /// directory (OCI `linux.maskedPaths`).
    Mask {
        dst: PathBuf,
    },
    /// Write a sysctl of the sandbox's own namespaces (`net.ipv4.ping_group_range`) under its
    /// /proc/sys, once its /proc is mounted and before the read-only paths (OCI
    /// `linux.sysctl`; in the sandbox's network namespace).
    Sysctl {
        key: String,
        value: String,
    },
}

impl MountOp {
    /// A tmpfs owned by root.
    pub fn tmpfs(dst: PathBuf, mode: u32, size_bytes: u64, noexec: bool) -> Self {
        Self::Tmpfs {
            dst,
            mode,
            size_bytes: Some(size_bytes),
            noexec,
            uid: 0,
            gid: 0,
        }
    }

    /// The container path this op makes or mounts on (made when missing); None for ops that
    /// act only on what exists (masks, read-only remounts) and for the root itself.
    pub fn creates(&self) -> Option<&std::path::Path> {
        match self {
            Self::Mkdir { dst, .. }
            | Self::Symlink { dst, .. }
            | Self::File { dst, .. }
            | Self::Tmpfs { dst, .. }
            | Self::Bind { dst, .. }
            | Self::BindFromTree { dst, .. }
            | Self::Attach { dst, .. }
            | Self::EtcView { dst }
            | Self::Proc { dst, .. }
            | Self::Sysfs { dst }
            | Self::Cgroup { dst }
            | Self::Devpts { dst }
            | Self::Mqueue { dst }
            | Self::Oci { dst, .. }
            | Self::Device { dst, .. } => Some(dst),
            Self::Mask { .. }
            | Self::Sysctl { .. }
            | Self::MaskFile { .. }
            | Self::MaskDir { .. }
            | Self::ReadonlyIfExists { .. }
            | Self::RemountRootReadonly => None,
        }
    }
}

/// The maps of an idmapped mount (OCI `uidMappings`/`gidMappings`, or the container's own):
/// a user namespace with them is what the mount is idmapped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub uid: Vec<crate::plan::IdRange>,
    pub gid: Vec<crate::plan::IdRange>,
    /// `ridmap`: the submounts too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recursive: bool,
}
