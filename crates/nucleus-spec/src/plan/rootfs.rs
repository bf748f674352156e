//! The root filesystem: a tmpfs with the host's program directories or the image (`--rootfs`),
//! and its /etc: what the host lends, what nucleus writes, and the snapshot (`EtcView`) bound
//! as one mount.

use super::{cfg_err, p, Draft, Identity, PlanError};
use crate::config::NetworkMode;
use crate::etc;
use crate::host::{EntryKind, HostEntry};
use crate::mounts::{MountOp, RootSource};
use crate::net::NetPlan;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the root comes from; on the tmpfs root, the host's program directories read-only
/// (or as their links on merged-/usr hosts).
pub(super) fn root_source(d: &mut Draft) -> Result<RootSource, PlanError> {
    let root = match &d.cfg.rootfs {
        Some(r) => {
            if !r.is_absolute() {
                return Err(cfg_err(
                    "--rootfs",
                    format!("{}: must be an absolute path", r.display()),
                ));
            }
            RootSource::Bind(r.clone())
        }
        None => RootSource::Tmpfs,
    };
    if root == RootSource::Tmpfs {
        for e in &d.facts.system_dirs {
            d.mount(lend(e, Path::new("/")));
        }
    }
    Ok(root)
}

/// /etc: the synthetic identity and network files plus the host's (or image's) read-only
/// entries; one [`EtcView`] mount where it can be.
pub(super) fn etc(
    d: &mut Draft,
    root: &RootSource,
    who: &Identity,
    net: &NetPlan,
) -> Option<EtcView> {
    let (cfg, facts) = (d.cfg, d.facts);
    let tmpfs_root = *root == RootSource::Tmpfs;
    let etc_src: PathBuf = match root {
        RootSource::Tmpfs => p("/etc"),
        RootSource::Bind(r) | RootSource::Dir { path: r, .. } => r.join("etc"),
    };
    // On the tmpfs root (as root), /etc is one read-only bind of a snapshot the runtime
    // keeps of the host entries (see EtcView); the synthetic files live in /run/nucleus
    // and the snapshot links to them.
    // Not when the user mounts something at or under /etc (the view is read-only; its
    // identity files are links) or over /run/nucleus: then each entry is bound as before.
    let user_dsts = cfg
        .volumes
        .iter()
        .map(|v| v.dst.clone())
        .chain(cfg.tmpfs.iter().map(|t| t.dst.clone()))
        .chain(cfg.provider_configs.iter().map(|pc| who.home.join(&pc.dst)));
    let clashes = user_dsts.into_iter().any(|d| {
        d.starts_with("/etc")
            || Path::new(ETC_VIEW_LINKS).starts_with(&d)
            || d.starts_with(ETC_VIEW_LINKS)
    });
    let etc_view = match &cfg.etc_views {
        Some(dir) if tmpfs_root && !who.rootless && !clashes => {
            Some(EtcView::new(dir, &facts.etc_entries))
        }
        _ => None,
    };
    let synthetic_dir = if etc_view.is_some() {
        p(ETC_VIEW_LINKS)
    } else {
        p("/etc")
    };
    if tmpfs_root {
        d.mount(MountOp::Mkdir {
            dst: synthetic_dir.clone(),
            mode: 0o755,
        });
    } else {
        d.mount(MountOp::tmpfs(p("/etc"), 0o755, 1 << 20, true));
    }
    let extra_groups: Vec<(String, u32)> = cfg
        .additional_groups
        .iter()
        .map(|g| (g.name.clone(), g.gid))
        .collect();
    let resolv = match cfg.network {
        NetworkMode::Host => facts.host_resolv_conf.clone().unwrap_or_default(),
        NetworkMode::None => etc::resolv_conf_offline(),
        NetworkMode::Bridge | NetworkMode::Slirp => net.resolv_conf.clone(),
    };
    let (user, gid, hostname) = (&who.user, who.gid, &who.hostname);
    let files = [
        (
            "passwd",
            etc::passwd(&user.name, user.uid, gid, &who.home.to_string_lossy()),
        ),
        ("group", etc::group(&who.group_name, gid, &extra_groups)),
        ("hosts", etc::hosts(hostname)),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
        ("nsswitch.conf", etc::nsswitch()),
    ];
    for (name, contents) in files {
        d.mount(MountOp::File {
            dst: synthetic_dir.join(name),
            contents,
            mode: 0o644,
        });
    }
    // With a view, its entries come with it; otherwise each is bound (or linked) here.
    let entries = match etc_view {
        Some(_) => {
            d.mount(MountOp::EtcView { dst: p("/etc") });
            &[][..]
        }
        None => &facts.etc_entries[..],
    };
    for e in entries {
        let name = e.path.to_string_lossy();
        if SYNTHETIC_ETC.contains(&name.as_ref()) {
            continue;
        }
        let dst = p("/etc").join(&e.path);
        if let Some(parent) = e.path.parent().filter(|x| !x.as_os_str().is_empty()) {
            d.mount(MountOp::Mkdir {
                dst: p("/etc").join(parent),
                mode: 0o755,
            });
        }
        match &e.kind {
            EntryKind::Symlink(t) => d.mount(MountOp::Symlink {
                target: t.clone(),
                dst,
            }),
            k => d.mount(MountOp::BindFromTree {
                tree: etc_src.clone(),
                rel: e.path.clone(),
                dst,
                dir: matches!(k, EntryKind::Dir),
            }),
        }
    }
    if !tmpfs_root
        && facts.host_ca_certs
        && !facts.etc_entries.iter().any(|e| e.path.starts_with("ssl"))
    {
        // Host CA certificates for a rootfs that brings none.
        d.mount(MountOp::Mkdir {
            dst: p("/etc/ssl"),
            mode: 0o755,
        });
        d.mount(MountOp::Bind {
            src: p("/etc/ssl/certs"),
            dst: p("/etc/ssl/certs"),
            readonly: true,
            noexec: true,
            idmap: false,
        });
    }
    etc_view
}

/// A top-level entry of `dir` on the sandbox's tmpfs root: bound read-only, or the same link.
fn lend(e: &HostEntry, dir: &Path) -> MountOp {
    let dst = p("/").join(&e.path);
    match &e.kind {
        EntryKind::Symlink(t) => MountOp::Symlink {
            target: t.clone(),
            dst,
        },
        _ => MountOp::Bind {
            src: dir.join(&e.path),
            dst,
            readonly: true,
            noexec: false,
            idmap: false,
        },
    }
}

/// Once every mount is known, the root is made read-only. A `--rootfs` that lacks a mount
/// point the sandbox needs at its top (a directory with just a static busybox has no /etc,
/// /proc, /tmp…): it cannot be made on the read-only image, so the root becomes a tmpfs with
/// each of the image's top-level entries bound (read-only) or linked on it, as the host's are
/// on the default root.
pub(super) fn seal_root(d: &mut Draft, root: RootSource) -> RootSource {
    let RootSource::Bind(r) = &root else {
        d.mount(MountOp::RemountRootReadonly);
        return root;
    };
    let have: Vec<&Path> = d
        .facts
        .rootfs_entries
        .iter()
        .map(|e| e.path.as_path())
        .collect();
    let lacks = d.mounts.iter().filter_map(MountOp::creates).any(|dst| {
        dst.strip_prefix("/")
            .ok()
            .and_then(|rel| rel.components().next())
            .is_some_and(|top| !have.contains(&Path::new(top.as_os_str())))
    });
    if !lacks {
        return root;
    }
    let pre: Vec<MountOp> = d.facts.rootfs_entries.iter().map(|e| lend(e, r)).collect();
    d.mounts.splice(0..0, pre);
    d.mount(MountOp::RemountRootReadonly);
    RootSource::Tmpfs
}

/// Where the synthetic /etc files live when /etc is an [`EtcView`]: the view's entries of the
/// same names link here.
pub const ETC_VIEW_LINKS: &str = "/run/nucleus";

/// A snapshot of the host /etc entries a sandbox gets ([`ETC_ENTRIES`]), kept by the runtime
/// at `dir` and bound read-only as the sandbox's /etc: one mount instead of one per entry
/// (with the read-only tree they were bound from, 13 mounts fewer per start). It holds copies
/// of the entries (links stay links) and, for the synthetic files, links into
/// [`ETC_VIEW_LINKS`]. Its name is a hash of what the host probe saw of every entry (inode,
/// size, times): an entry replaced or edited gives a new snapshot; one no running sandbox uses
/// is removed when a newer one is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcView {
    /// Where the runtime keeps its views (`.etc-views` in the state root).
    pub views: PathBuf,
    pub key: String,
    /// Entries of the host /etc to copy (paths relative to it); the [`SYNTHETIC_ETC`] names
    /// are links into [`ETC_VIEW_LINKS`].
    pub entries: Vec<HostEntry>,
}

impl EtcView {
    /// The view's directory.
    pub fn dir(&self) -> PathBuf {
        self.views.join(&self.key)
    }

    /// Bump when the layout of a view changes (a new binary then makes its own).
    const FORMAT: &'static str = "nucleus-etc-view-1";

    pub(super) fn new(views: &Path, entries: &[HostEntry]) -> EtcView {
        let entries: Vec<HostEntry> = entries
            .iter()
            .filter(|e| !SYNTHETIC_ETC.contains(&e.path.to_string_lossy().as_ref()))
            .cloned()
            .collect();
        let mut bytes: Vec<u8> = Self::FORMAT.as_bytes().to_vec();
        for e in &entries {
            bytes.extend(e.path.as_os_str().as_encoded_bytes());
            bytes.push(0);
            match &e.kind {
                EntryKind::Dir => bytes.push(b'd'),
                EntryKind::File => bytes.push(b'f'),
                EntryKind::Symlink(t) => {
                    bytes.push(b'l');
                    bytes.extend(t.as_os_str().as_encoded_bytes());
                }
            }
            bytes.extend(e.stamp.to_le_bytes());
        }
        EtcView {
            views: views.to_path_buf(),
            key: format!("{:016x}", crate::host::fnv1a(bytes)),
            entries,
        }
    }
}

/// Host directories a tmpfs root gets read-only (or as symlinks on merged-/usr hosts).
pub const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// Host /etc entries a sandbox sees read-only: the loader cache, alternatives symlinks (awk,
/// editor…), time zone, and service/protocol tables. Nothing with secrets or host identity.
/// (Not the configuration of host administration tools — ld.so.conf for ldconfig,
/// ca-certificates.conf for update-ca-certificates — which cannot run against a read-only /etc:
/// four mounts fewer per start.)
pub const ETC_ENTRIES: &[&str] = &[
    "ld.so.cache",
    "alternatives",
    "localtime",
    "timezone",
    "protocols",
    "services",
    "mime.types",
    "os-release",
    "ssl/certs",
    "gai.conf",
    "inputrc",
    "bash.bashrc",
    "profile",
];

/// Synthetic files always written; never taken from the host or the rootfs.
pub const SYNTHETIC_ETC: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "hostname",
    "resolv.conf",
    "nsswitch.conf",
];
