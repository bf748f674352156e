//! The root filesystem's /etc: what the host lends, what nucleus writes, and the snapshot
//! (`EtcView`) bound as one mount.

use crate::host::{EntryKind, HostEntry};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
