//! runc's `checkpoint` and `restore` for an OCI container (podman's `container checkpoint` and
//! `container restore` call them): which containers qualify, what the image directory keeps
//! beside CRIU's images, and CRIU's command lines. The native verbs' decisions are
//! [`crate::checkpoint`]; docs/checkpoint.md has both.

use crate::checkpoint::{ExternalFile, DUMP_LOG, RESTORE_LOG};
use crate::plan::{NsKind, Plan};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `checkpoint` keeps in the image directory beside CRIU's images (runc keeps its
/// `descriptors.json` there).
pub const INFO_FILE: &str = "nucleus-oci.json";
pub const VERSION: u32 = 1;
/// CRIU's key for a network namespace the container joined (podman's, a CNI plugin's): not
/// in the image; a restore hands CRIU the one its config.json names.
pub const EXTERNAL_NETNS: &str = "extNetNs";

/// A standard descriptor of the container's process, by what CRIU needs at a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Descriptor {
    /// A pipe of the caller's (conmon's, the shim's): CRIU saves the container's end; the
    /// restore hands it the caller's descriptor of the same number in its place (as runc).
    Pipe { ino: u64 },
    /// A file outside the container's mounts (/dev/null, a log, a FIFO): external at the
    /// dump, the caller's descriptor of the same number at the restore.
    File { file: ExternalFile },
}

impl Descriptor {
    pub fn key(&self) -> String {
        match self {
            Descriptor::Pipe { ino } => format!("pipe:[{ino}]"),
            Descriptor::File { file } => file.key(),
        }
    }
}

/// runc's checkpoint/restore options that go to CRIU as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuOptions {
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// `--manage-cgroups-mode`: soft (default), full, strict or ignore.
    pub manage_cgroups_mode: Option<String>,
    /// runc's `--tcp-skip-in-flight` (CRIU's `--skip-in-flight`: half-open connections are
    /// left out instead of failing the dump) and `--link-remap` (CRIU's: unlinked files
    /// opened by the container are kept by links). The dump's only.
    #[serde(default)]
    pub skip_in_flight: bool,
    #[serde(default)]
    pub link_remap: bool,
}

impl CriuOptions {
    fn argv(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
            (self.skip_in_flight, "--skip-in-flight"),
            (self.link_remap, "--link-remap"),
        ] {
            if on {
                a.push(flag.to_string());
            }
        }
        if let Some(m) = &self.manage_cgroups_mode {
            a.push(format!("--manage-cgroups={m}"));
        }
        a
    }

    /// The mode given, if CRIU knows it.
    pub fn check(&self) -> Result<(), String> {
        match self.manage_cgroups_mode.as_deref() {
            None | Some("soft" | "full" | "strict" | "ignore") => Ok(()),
            Some(m) => Err(format!("{m:?}: one of soft, full, strict, ignore")),
        }
    }
}

/// What a checkpoint of an OCI container keeps beside CRIU's images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciCheckpointInfo {
    pub version: u32,
    /// The container's id when it was saved.
    pub id: String,
    /// Its standard descriptors 0, 1, 2.
    pub stdio: Vec<Descriptor>,
    /// It had joined a network namespace (saved as [`EXTERNAL_NETNS`]).
    pub netns_external: bool,
    /// The host pid of its process when dumped (CRIU names its network lock after it).
    pub dumped_pid: i32,
    pub options: CriuOptions,
}

/// Why an OCI container cannot be checkpointed (None: it can).
pub fn refusal(plan: &Plan) -> Option<String> {
    if plan.gvisor.is_some() {
        return Some("it runs under gVisor (runsc has its own checkpoint)".into());
    }
    if plan.process.tty {
        return Some(
            "it has a terminal (process.terminal): its pty's master is its caller's".into(),
        );
    }
    if plan.seccomp_notify.is_some() {
        return Some("its seccomp filter has a listener (linux.seccomp.listenerPath)".into());
    }
    if let Some(j) = plan.namespaces.join.iter().find(|j| j.kind != NsKind::Net) {
        return Some(format!(
            "it joined a {:?} namespace ({}) of another process; only a joined network \
             namespace is kept out of the image",
            j.kind,
            j.path.display()
        ));
    }
    if plan.landlock.is_some() {
        return Some("it has Landlock rules (CRIU cannot save a Landlock domain)".into());
    }
    None
}

/// Whether the container joined a network namespace by path.
pub fn joins_netns(plan: &Plan) -> bool {
    plan.namespaces.join.iter().any(|j| j.kind == NsKind::Net)
}

/// The container's bind mounts as runc names them to CRIU: (destination, source), the last
/// mount at a destination only (the one seen there). A dump keys each by its destination, and
/// a restore binds each destination from the source its own config.json gives: a bundle
/// restored elsewhere (another host, other volume paths) gets its volumes from there, not from
/// the paths they had at the dump.
pub fn bind_mounts(mounts: &[crate::mounts::MountOp]) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
    for m in mounts {
        if let crate::mounts::MountOp::Oci {
            source,
            dst,
            options,
            ..
        } = m
        {
            if options.is_bind() {
                let dst: PathBuf = Path::new("/").join(dst).components().collect();
                out.retain(|(d, _)| *d != dst);
                out.push((dst, source.clone()));
            }
        }
    }
    out
}

/// CRIU's common arguments, and its work directory (log, pid file) when given.
fn common(criu: &Path, verb: &str, images: &Path, work: Option<&Path>, log: &str) -> Vec<String> {
    let mut a = crate::checkpoint::common_argv(criu, verb, images, log);
    if let Some(w) = work {
        a.extend(["-W".into(), w.display().to_string()]);
    }
    a
}

/// `criu dump` of the container whose process is `pid`; `netns_ino`: the inode of the network
/// namespace it joined (kept out of the image).
pub fn dump_argv(
    criu: &Path,
    pid: i32,
    (images, work): (&Path, Option<&Path>),
    stdio: &[Descriptor],
    (netns_ino, binds): (Option<u64>, &[(PathBuf, PathBuf)]),
    leave_running: bool,
    o: &CriuOptions,
) -> Vec<String> {
    let mut a = common(criu, "dump", images, work, DUMP_LOG);
    a.extend(["-t".into(), pid.to_string()]);
    for (dst, _) in binds {
        a.extend(["--external".into(), format!("mnt[{0}]:{0}", dst.display())]);
    }
    a.extend(["--network-lock".into(), "nftables".into()]);
    let mut seen = Vec::new();
    for d in stdio {
        if let Descriptor::File { file } = d {
            let k = file.key();
            if !seen.contains(&k) {
                a.extend(["--external".into(), k.clone()]);
                seen.push(k);
            }
        }
    }
    if let Some(ino) = netns_ino {
        a.extend(["--external".into(), format!("net[{ino}]:{EXTERNAL_NETNS}")]);
    }
    a.extend(o.argv());
    if leave_running {
        a.push("--leave-running".into());
    }
    a
}

/// `criu restore` onto `root`: each saved standard descriptor from the caller's of the same
/// number, the joined network namespace from descriptor `netns_fd`; detached, the restored
/// process the caller's child (restore-sibling), its host pid in `pidfile`.
pub fn restore_argv(
    criu: &Path,
    (images, work): (&Path, Option<&Path>),
    (root, pidfile): (&Path, &Path),
    stdio: &[Descriptor],
    (netns_fd, binds): (Option<i32>, &[(PathBuf, PathBuf)]),
    o: &CriuOptions,
) -> Vec<String> {
    let mut a = common(criu, "restore", images, work, RESTORE_LOG);
    for (dst, src) in binds {
        a.extend([
            "--external".into(),
            format!("mnt[{}]:{}", dst.display(), src.display()),
        ]);
    }
    a.extend(["-r".into(), root.display().to_string()]);
    a.extend(["--restore-detached", "--restore-sibling", "--pidfile"].map(String::from));
    a.push(pidfile.display().to_string());
    let mut seen = Vec::new();
    for (n, d) in stdio.iter().enumerate() {
        let k = d.key();
        if !seen.contains(&k) {
            a.extend(["--inherit-fd".into(), format!("fd[{n}]:{k}")]);
            seen.push(k);
        }
    }
    if let Some(fd) = netns_fd {
        a.extend(["--inherit-fd".into(), format!("fd[{fd}]:{EXTERNAL_NETNS}")]);
    }
    a.extend(o.argv());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Stdio;

    fn stdio() -> Vec<Descriptor> {
        vec![
            Descriptor::File {
                file: ExternalFile {
                    stdio: Stdio::Stdin,
                    mnt_id: 0x15,
                    ino: 4,
                },
            },
            Descriptor::Pipe { ino: 77 },
            Descriptor::Pipe { ino: 77 },
        ]
    }

    fn binds() -> Vec<(PathBuf, PathBuf)> {
        vec![(PathBuf::from("/data"), PathBuf::from("/srv/vol"))]
    }

    /// The dump names the files (not the pipes, which CRIU saves) and the joined network
    /// namespace as external; the restore hands each back from the caller's descriptor of
    /// its number, once per key.
    #[test]
    fn command_lines_follow_runc() {
        let o = CriuOptions {
            tcp_established: true,
            manage_cgroups_mode: Some("soft".into()),
            ..Default::default()
        };
        let d = dump_argv(
            Path::new("/usr/sbin/criu"),
            42,
            (Path::new("/img"), Some(Path::new("/work"))),
            &stdio(),
            (Some(4026532000), &binds()),
            false,
            &o,
        )
        .join(" ");
        assert!(d.contains("--external mnt[/data]:/data"), "{d}");
        assert!(
            d.starts_with("/usr/sbin/criu dump -D /img -o dump.log"),
            "{d}"
        );
        assert!(d.contains("-W /work") && d.contains("-t 42"), "{d}");
        assert!(d.contains("--external file[15:4]"), "{d}");
        assert!(!d.contains("pipe"), "{d}");
        assert!(d.contains("--external net[4026532000]:extNetNs"), "{d}");
        assert!(
            d.ends_with("--tcp-established --manage-cgroups=soft"),
            "{d}"
        );
        let r = restore_argv(
            Path::new("criu"),
            (Path::new("/img"), None),
            (Path::new("/b/rootfs"), Path::new("/img/restored.pid")),
            &stdio(),
            (Some(9), &binds()),
            &o,
        )
        .join(" ");
        assert!(r.contains("--external mnt[/data]:/srv/vol"), "{r}");
        assert!(
            r.contains("-r /b/rootfs --restore-detached --restore-sibling"),
            "{r}"
        );
        assert!(
            r.contains(
                "--inherit-fd fd[0]:file[15:4] --inherit-fd fd[1]:pipe:[77] \
                 --inherit-fd fd[9]:extNetNs"
            ),
            "{r}"
        );
        assert!(!r.contains("fd[2]"), "one descriptor per key: {r}");
        assert!(CriuOptions::default().check().is_ok());
        let bad = CriuOptions {
            manage_cgroups_mode: Some("loose".into()),
            ..Default::default()
        };
        assert!(bad.check().unwrap_err().contains("soft"));
    }

    /// Bind mounts by destination (normalized, the last at a destination), nothing else.
    #[test]
    fn bind_mounts_are_keyed_by_destination() {
        use crate::mounts::MountOp;
        use crate::oci::options::{MountOptions, MS_BIND, MS_REC};
        let bind = |src: &str, dst: &str, flags: u64| MountOp::Oci {
            source: src.into(),
            dst: dst.into(),
            fstype: "none".into(),
            options: MountOptions {
                flags,
                ..Default::default()
            },
            idmap: None,
        };
        let mounts = vec![
            bind("/srv/a", "data/", MS_BIND),
            bind("tmpfs", "/tmp", 0),
            bind("/srv/b", "/data", MS_BIND | MS_REC),
            bind("/etc/hosts", "/etc/hosts", MS_BIND),
        ];
        assert_eq!(
            bind_mounts(&mounts),
            vec![
                ("/data".into(), "/srv/b".into()),
                ("/etc/hosts".into(), "/etc/hosts".into())
            ]
        );
    }
}
