//! Checkpoint and restore through CRIU (`nucleus checkpoint`, `nucleus restore`): what makes a
//! sandbox one CRIU can save, the image directory's own record, CRIU's command lines, and the
//! root a restore starts from. docs/checkpoint-design.md says why each piece is as it is.

use crate::mounts::{MountOp, RootSource};
use crate::plan::{IdMapPlan, Plan};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// nucleus's record in an image directory, beside CRIU's images.
pub const INFO_FILE: &str = "nucleus.json";
/// CRIU's images, in the image directory.
pub const IMAGES: &str = "images";
/// CRIU's logs, in the image directory's [`IMAGES`] (`-o` is relative to it).
pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";
/// The restored PID 1's host pid, written by CRIU (relative to the images).
pub const PIDFILE: &str = "restored.pid";
/// Bump when [`CheckpointInfo`] changes meaning.
pub const VERSION: u32 = 1;

/// What `nucleus checkpoint` saved besides CRIU's images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub version: u32,
    /// The sandbox's id and name when it was saved.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its plan (a restore runs under the same one: namespaces, limits, mounts).
    pub plan: Plan,
    /// Its `run` flags (`restart` after a restore starts it afresh from them).
    pub args: serde_json::Value,
    /// The host pid of its PID 1 when dumped (CRIU names its network lock after it).
    pub dumped_pid: i32,
    /// The first host uid of its user namespace (the image holds these ids).
    pub uid_base: u32,
    /// Descriptors of the sandbox's processes on files outside its mounts (its standard
    /// descriptors: the host's /dev/null, the logs), which CRIU saves as external.
    pub externals: Vec<ExternalFile>,
    pub created_ms: u64,
    /// What was applied to its workload when it started (the restored record says it again:
    /// the image holds the same process, its filter and capabilities included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protections: Option<crate::state::SecurityReport>,
    /// `--tcp-established`: its TCP connections are in the image (the restore must say so too).
    #[serde(default)]
    pub tcp_established: bool,
    /// Bridge networking: the address slot it held on each of its bridges (`--bridge`'s, then
    /// `--attach`'s, as the plan lists them). The image has its interfaces with their
    /// addresses and MACs, which come from the slot: a restore takes the same slots again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge_slots: Vec<u32>,
}

/// The bridges of a plan, in the order [`CheckpointInfo::bridge_slots`] follows.
pub fn bridges(plan: &Plan) -> impl Iterator<Item = &crate::net::BridgePlan> {
    plan.net.bridge.iter().chain(&plan.net.attached)
}

/// CRIU's `--external veth[IFACE]:PORT@BRIDGE` values for a restore: each interface of the
/// sandbox on a bridge gets its host end again, named after its slot and attached to its
/// bridge (CRIU makes the pair, the sandbox's end from the image: addresses, MAC, routes).
pub fn veth_externals(plan: &Plan, slots: &[u32]) -> Result<Vec<String>, String> {
    let bridges: Vec<_> = bridges(plan).collect();
    if bridges.len() != slots.len() {
        return Err(format!(
            "the image has {} bridge slots for {} bridges",
            slots.len(),
            bridges.len()
        ));
    }
    Ok(bridges
        .iter()
        .zip(slots)
        .map(|(b, i)| format!("veth[{}]:{}@{}", b.iface, b.port(*i), b.name))
        .collect())
}

/// CRIU's image files: two magic words (the common one, the file's own), then entries, each
/// a little-endian length and a protobuf message.
const IMG_MAGIC: u32 = 0x5456_4319;
const USERNS_MAGIC: u32 = 0x5547_4906;
const CGROUP_MAGIC: u32 = 0x5938_3330;

/// The messages of an image file of kind `magic`.
fn image_entries<'a>(img: &'a [u8], magic: u32, what: &str) -> Result<Vec<&'a [u8]>, String> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(img.get(at..at + 4)?.try_into().ok()?))
    };
    if word(0) != Some(IMG_MAGIC) || word(4) != Some(magic) {
        return Err(format!("not a CRIU {what} image"));
    }
    let mut out = Vec::new();
    let mut at = 8;
    while at < img.len() {
        let len = word(at).ok_or("truncated entry length")? as usize;
        out.push(img.get(at + 4..at + 4 + len).ok_or("truncated entry")?);
        at += 4 + len;
    }
    Ok(out)
}

/// The first message `field` of `msg` (length-delimited).
fn first_bytes(msg: &[u8], field: u32) -> Result<&[u8], String> {
    pb::fields(msg)?
        .into_iter()
        .find_map(|(f, v)| match v {
            pb::Value::Bytes(b) if f == field => Some(b),
            _ => None,
        })
        .ok_or_else(|| format!("no field {field}"))
}

/// The host id range the user namespace image maps uid 0 to: what the images hold now (as
/// saved, or as a restore of a copy moved them), read from them rather than kept beside.
pub fn userns_base(img: &[u8]) -> Result<u32, String> {
    let entry = *image_entries(img, USERNS_MAGIC, "user namespace")?
        .first()
        .ok_or("no entry")?;
    let extent = first_bytes(entry, 1)?;
    pb::fields(extent)?
        .into_iter()
        .find_map(|(f, v)| match v {
            pb::Value::Varint(n) if f == 2 => u32::try_from(n).ok(),
            _ => None,
        })
        .ok_or_else(|| "no lower_first in the uid map".into())
}

/// The sandbox id the cgroup image's paths end with (its first set's first member: `path` of
/// `cg_member_entry` in `cg_set_entry.ctls` in `cgroup_entry.sets`).
pub fn cgroup_sandbox_id(img: &[u8]) -> Result<String, String> {
    let entry = *image_entries(img, CGROUP_MAGIC, "cgroup")?
        .first()
        .ok_or("no entry")?;
    let member = first_bytes(first_bytes(entry, 1)?, 2)?;
    let path = std::str::from_utf8(first_bytes(member, 2)?).map_err(|e| e.to_string())?;
    path.rsplit('/')
        .next()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no sandbox id in cgroup path {path:?}"))
}

/// The width of a sandbox's host id range (nucleus-sys `idslot::WIDTH`).
const RANGE_WIDTH: u64 = 65536;

/// CRIU's image file of the user namespace (`userns-N.img`): its maps' host ids moved from the
/// range at `from` to the one at `to` (a copy of a sandbox gets its own range; the processes
/// and files inside keep their ids, which CRIU saves as the namespace sees them). The file is
/// two magic words, then entries (a little-endian length, a protobuf `UsernsEntry`: repeated
/// `uid_map` = 1 and `gid_map` = 2, each a `UidGidExtent`: `first` = 1, `lower_first` = 2,
/// `count` = 3).
pub fn remap_userns(img: &[u8], from: u32, to: u32) -> Result<Vec<u8>, String> {
    let bodies = image_entries(img, USERNS_MAGIC, "user namespace")?;
    let mut out = img[..8].to_vec();
    for body in bodies {
        let mut entry = Vec::new();
        for (field, map) in pb::fields(body)? {
            let pb::Value::Bytes(extent) = map else {
                return Err(format!("field {field} of the entry is not a map"));
            };
            let mut e = Vec::new();
            for (f, v) in pb::fields(extent)? {
                let pb::Value::Varint(mut n) = v else {
                    return Err(format!("field {f} of an extent is not a number"));
                };
                if f == 2 {
                    let off = n
                        .checked_sub(u64::from(from))
                        .filter(|d| *d < RANGE_WIDTH)
                        .ok_or_else(|| format!("host id {n} is not in the range at {from}"))?;
                    n = u64::from(to) + off;
                }
                pb::put_varint_field(&mut e, f, n);
            }
            pb::put_bytes_field(&mut entry, field, &e);
        }
        out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        out.extend_from_slice(&entry);
    }
    Ok(out)
}

/// CRIU's cgroup image with the sandbox id `old` changed to `new` in its paths (a copy has a
/// cgroup of its own). Ids have the same length, so the image's lengths stay as they are.
pub fn rename_in_cgroups(img: &[u8], old: &str, new: &str) -> Result<Vec<u8>, String> {
    if old.len() != new.len() || old.is_empty() {
        return Err("sandbox ids of different lengths".into());
    }
    let (o, n) = (old.as_bytes(), new.as_bytes());
    let mut out = img.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + o.len() <= out.len() {
        if &out[i..i + o.len()] == o {
            out[i..i + o.len()].copy_from_slice(n);
            found += 1;
            i += o.len();
        } else {
            i += 1;
        }
    }
    if found == 0 {
        return Err(format!("no cgroup of sandbox {old} in the image"));
    }
    Ok(out)
}

/// The little of protobuf's wire format the images need.
mod pb {
    pub(super) enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn varint(b: &[u8], at: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at).ok_or("truncated varint")?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// Every field of a message, in order (varints and length-delimited ones only).
    pub(super) fn fields(b: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let key = varint(b, &mut at)?;
            let field = u32::try_from(key >> 3).map_err(|_| "field number too big")?;
            match key & 7 {
                0 => out.push((field, Value::Varint(varint(b, &mut at)?))),
                2 => {
                    let len = usize::try_from(varint(b, &mut at)?).map_err(|_| "too long")?;
                    let v = b.get(at..at + len).ok_or("truncated field")?;
                    at += len;
                    out.push((field, Value::Bytes(v)));
                }
                t => return Err(format!("wire type {t} of field {field}")),
            }
        }
        Ok(out)
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(super) fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
        put_varint(out, u64::from(field) << 3);
        put_varint(out, v);
    }

    pub(super) fn put_bytes_field(out: &mut Vec<u8>, field: u32, v: &[u8]) {
        put_varint(out, (u64::from(field) << 3) | 2);
        put_varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

/// Which of the sandbox's standard descriptors an external file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdio {
    Stdin,
    Stdout,
    Stderr,
}

/// A file CRIU cannot resolve in the sandbox's mount namespace, by CRIU's id: mount id (as
/// /proc/PID/fdinfo says) and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalFile {
    pub stdio: Stdio,
    pub mnt_id: u64,
    pub ino: u64,
}

impl ExternalFile {
    /// CRIU's name of it: `file[MNT:INO]`, both in hex.
    pub fn key(&self) -> String {
        format!("file[{:x}:{:x}]", self.mnt_id, self.ino)
    }
}

/// Why a sandbox cannot be checkpointed (None: it can).
pub fn refusal(plan: &Plan) -> Option<String> {
    if plan.gvisor.is_some() {
        return Some("it runs under gVisor (runsc has its own checkpoint)".into());
    }
    if !plan.checkpointable {
        return Some(
            "it was not started with --checkpointable (its init and Landlock are nothing CRIU \
             can save)"
                .into(),
        );
    }
    if plan.process.tty {
        return Some("it has a terminal (-t); CRIU cannot hand a pty over to a new monitor".into());
    }
    if plan.seccomp_notify.is_some() {
        return Some("its seccomp filter has a listener (--seccomp-log-denied)".into());
    }
    if plan.net.slirp.is_some() {
        return Some(
            "it has slirp networking (slirp4netns, outside the sandbox, holds its tap device); \
             bridge, none and host networking are checkpointed"
                .into(),
        );
    }
    if !matches!(plan.idmap, IdMapPlan::PrivateRange { .. }) {
        return Some("it has no private id range".into());
    }
    if plan.root != RootSource::Tmpfs {
        return Some("only the default root is checkpointed so far (not --rootfs)".into());
    }
    if !plan.prepared.is_empty() {
        return Some(
            "it has a copied workspace, context or secrets (tmpfs the runtime filled)".into(),
        );
    }
    None
}

/// Whether this CRIU can run on this kernel: Debian 12's 3.17 fails on 6.13 and later (the
/// vDSO layout changed); 4.1 runs there. `version` is `criu --version`'s output, `release`
/// the kernel's (uname -r).
pub fn criu_supported(version: &str, release: &str) -> Result<(), String> {
    let v = version
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(str::trim)
        .ok_or_else(|| format!("criu --version said {:?}", version.trim()))?;
    let num = |s: &str| -> Vec<u32> {
        s.split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (cv, kv) = (num(v), num(release));
    if kv >= vec![6, 13] && cv < vec![4, 1] {
        return Err(format!(
            "CRIU {v} cannot run on Linux {release} (kernels from 6.13 on changed the vDSO it \
             parses); install CRIU 4.1 or newer and pass it with --criu"
        ));
    }
    Ok(())
}

/// What both of CRIU's verbs are told: their log (in the images) at errors and warnings (the
/// debug level costs ~10% of a dump here), and the binds of host paths (/usr, the /etc view,
/// /dev's nodes, the /dev/null masks) found and named by CRIU itself.
pub(crate) fn common_argv(criu: &Path, verb: &str, images: &Path, log: &str) -> Vec<String> {
    [
        &criu.display().to_string(),
        verb,
        "-D",
        &images.display().to_string(),
        "-o",
        log,
        "-v2",
        "--ext-mount-map",
        "auto",
        "--enable-external-sharing",
        "--enable-external-masters",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `criu dump` of the sandbox whose PID 1 is `pid`, into `images`.
pub fn dump_argv(
    criu: &Path,
    pid: i32,
    images: &Path,
    externals: &[ExternalFile],
    leave_running: bool,
    tcp_established: bool,
) -> Vec<String> {
    let mut a = common_argv(criu, "dump", images, DUMP_LOG);
    a.extend(["-t".into(), pid.to_string()]);
    a.extend(["--network-lock".into(), "nftables".into()]);
    let mut seen = Vec::new();
    for e in externals {
        let k = e.key();
        if !seen.contains(&k) {
            a.push("--external".into());
            a.push(k.clone());
            seen.push(k);
        }
    }
    if tcp_established {
        a.push("--tcp-established".into());
    }
    if leave_running {
        a.push("--leave-running".into());
    }
    a
}

/// `criu restore` from `images` onto `root`, each external file from the descriptor given
/// (`inherit`: descriptor number in criu, the external's key); detached, the restored PID 1
/// the caller's child (restore-sibling), its host pid in [`PIDFILE`].
pub fn restore_argv(
    criu: &Path,
    images: &Path,
    root: &Path,
    inherit: &[(i32, String)],
    tcp_established: bool,
    veths: &[String],
) -> Vec<String> {
    let mut a = common_argv(criu, "restore", images, RESTORE_LOG);
    a.extend(["-r".into(), root.display().to_string()]);
    // (CRIU's default cgroup mode, soft: the sandbox's cgroup, which the runtime made again
    // with its limits, is where its processes go back, and their cgroup namespace is rooted
    // there again.)
    a.extend(
        [
            "--restore-detached",
            "--restore-sibling",
            "--pidfile",
            PIDFILE,
        ]
        .map(String::from),
    );
    if tcp_established {
        a.push("--tcp-established".into());
    }
    for (fd, key) in inherit {
        a.push("--inherit-fd".into());
        a.push(format!("fd[{fd}]:{key}"));
    }
    for v in veths {
        a.push("--external".into());
        a.push(v.clone());
    }
    a
}

/// One entry of the root a restore starts from: CRIU restores every mount but the root's own
/// file system (it is `--root`), so the root's content is made again from the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    /// A mount point on a file (a bind of a file).
    File {
        path: PathBuf,
        contents: String,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
}

impl RootEntry {
    pub fn path(&self) -> &Path {
        match self {
            Self::Dir { path, .. } | Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// The root tmpfs's own content as the plan made it: the entries no mount covers (the root
/// is read-only before the workload runs, so nothing else is on it), in creation order, with
/// the directories their paths need. `is_dir(host)` says whether a bind's host source is a
/// directory.
pub fn root_entries(plan: &Plan, is_dir: &dyn Fn(&Path) -> bool) -> Vec<RootEntry> {
    let mounted: Vec<&Path> = plan
        .mounts
        .iter()
        .filter(|op| is_mount(op))
        .filter_map(|op| op.creates())
        .collect();
    // On the root's own file system: no other mount point is an ancestor.
    let on_root = |p: &Path| !mounted.iter().any(|m| p != *m && p.starts_with(m));
    let mut out: Vec<RootEntry> = Vec::new();
    let push = |e: RootEntry, out: &mut Vec<RootEntry>| {
        let mut parents: Vec<&Path> = e.path().ancestors().skip(1).collect();
        parents.reverse();
        for p in parents.into_iter().filter(|p| *p != Path::new("/")) {
            if !out.iter().any(|x| x.path() == p) {
                out.push(RootEntry::Dir {
                    path: p.to_path_buf(),
                    mode: 0o755,
                });
            }
        }
        if !out.iter().any(|x| x.path() == e.path()) {
            out.push(e);
        }
    };
    for op in &plan.mounts {
        let Some(dst) = op.creates() else { continue };
        if !on_root(dst) {
            continue;
        }
        let e = match op {
            MountOp::Mkdir { dst, mode } => RootEntry::Dir {
                path: dst.clone(),
                mode: *mode,
            },
            MountOp::Symlink { target, dst } => RootEntry::Symlink {
                path: dst.clone(),
                target: target.clone(),
            },
            MountOp::File {
                dst,
                contents,
                mode,
            } => RootEntry::File {
                path: dst.clone(),
                contents: contents.clone(),
                mode: *mode,
            },
            MountOp::Bind { src, dst, .. } if !is_dir(src) => RootEntry::File {
                path: dst.clone(),
                contents: String::new(),
                mode: 0o644,
            },
            MountOp::BindFromTree {
                dst, dir: false, ..
            }
            | MountOp::Device { dst, .. } => RootEntry::File {
                path: dst.clone(),
                contents: String::new(),
                mode: 0o644,
            },
            _ => RootEntry::Dir {
                path: dst.to_path_buf(),
                mode: 0o755,
            },
        };
        push(e, &mut out);
    }
    out
}

/// Whether an op mounts something at its path (rather than making a file in what is there).
fn is_mount(op: &MountOp) -> bool {
    !matches!(
        op,
        MountOp::Mkdir { .. } | MountOp::Symlink { .. } | MountOp::File { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{EntryKind, HostEntry, HostFacts};
    use crate::RunConfig;

    fn plan(checkpointable: bool) -> Plan {
        let cfg = RunConfig {
            argv: vec!["sh".into()],
            checkpointable,
            etc_views: Some("/run/nucleus/.etc-views".into()),
            ..RunConfig::default()
        };
        Plan::build(&cfg, &facts(), "0123456789abcdef").unwrap()
    }

    fn facts() -> HostFacts {
        let entry = |path: &str, kind| HostEntry {
            path: path.into(),
            kind,
            stamp: 0,
        };
        HostFacts {
            system_dirs: vec![
                entry("usr", EntryKind::Dir),
                entry("bin", EntryKind::Symlink("usr/bin".into())),
            ],
            etc_entries: vec![entry("ld.so.cache", EntryKind::File)],
            landlock_abi: 7,
            euid: 0,
            ..Default::default()
        }
    }

    #[test]
    fn only_a_checkpointable_native_sandbox_qualifies() {
        assert!(refusal(&plan(false)).unwrap().contains("--checkpointable"));
        assert_eq!(refusal(&plan(true)), None);
        let mut p = plan(true);
        p.process.tty = true;
        assert!(refusal(&p).unwrap().contains("terminal"));
    }

    /// A user namespace image as CRIU 3.17 wrote it in the VM (0 → 1249902592, 65536 wide,
    /// uid and gid): moved to another range, read back, and refused for a range it is not in.
    #[test]
    fn a_user_namespace_image_moves_to_another_range() {
        let img: Vec<u8> = [
            0x19, 0x43, 0x56, 0x54, 0x06, 0x49, 0x47, 0x55, 0x1c, 0, 0, 0, 0x0a, 0x0c, 0x08, 0,
            0x10, 0x80, 0x80, 0x80, 0xd4, 0x04, 0x18, 0x80, 0x80, 0x04, 0x12, 0x0c, 0x08, 0, 0x10,
            0x80, 0x80, 0x80, 0xd4, 0x04, 0x18, 0x80, 0x80, 0x04,
        ]
        .to_vec();
        let from = 1_249_902_592;
        assert_eq!(remap_userns(&img, from, from).unwrap(), img);
        let to = 0x4000_0000 + 7 * 65536;
        let moved = remap_userns(&img, from, to).unwrap();
        assert_ne!(moved, img);
        assert_eq!(moved.len(), img.len());
        assert_eq!(userns_base(&img).unwrap(), from);
        assert_eq!(userns_base(&moved).unwrap(), to);
        assert_eq!(remap_userns(&moved, to, from).unwrap(), img);
        let e = remap_userns(&img, to, from).unwrap_err();
        assert!(e.contains("not in the range"), "{e}");
        assert!(remap_userns(b"nonsense", 0, 0).is_err());
        assert!(remap_userns(&img[..20], from, to).is_err());
    }

    /// cgroup.img as CRIU 3.17 wrote it in the VM (sandbox 2f696b59f46baa06): the id read back,
    /// renamed, and read back again.
    #[test]
    fn the_sandbox_id_is_read_from_a_cgroup_image() {
        let real = vec_of(REAL_CGROUP_IMG);
        assert_eq!(cgroup_sandbox_id(&real).unwrap(), "2f696b59f46baa06");
        let renamed = rename_in_cgroups(&real, "2f696b59f46baa06", "0123456789abcdef").unwrap();
        assert_eq!(cgroup_sandbox_id(&renamed).unwrap(), "0123456789abcdef");
        assert!(cgroup_sandbox_id(b"nonsense").is_err());
        assert!(cgroup_sandbox_id(&real[..30]).is_err());
    }

    const REAL_CGROUP_IMG: &str = "1943565430333859900000000a230802121f0a0012192f6e75636c6575732f\
        3266363936623539663436626161303618190a230803121f0a0012192f6e75636c6575732f32663639366235\
        39663436626161303618191244\
        0a0012400a186e75636c6575732f326636393662353966343662616130361a1a0a0c6367726f75702e70726f63\
        7312001a0808a4830210001800220808ed830110001800";

    fn vec_of(hex: &str) -> Vec<u8> {
        let h: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_cgroup_image_is_renamed_in_place() {
        let img = b"\x0a\x1d/nucleus/2f696b59f46baa06\x10\x19 nucleus/2f696b59f46baa06";
        let out = rename_in_cgroups(img, "2f696b59f46baa06", "0123456789abcdef").unwrap();
        assert_eq!(out.len(), img.len());
        assert_eq!(
            String::from_utf8_lossy(&out)
                .matches("0123456789abcdef")
                .count(),
            2
        );
        assert!(rename_in_cgroups(img, "ffffffffffffffff", "0123456789abcdef").is_err());
        assert!(rename_in_cgroups(img, "2f696b59f46baa06", "short").is_err());
    }

    #[test]
    fn old_criu_is_refused_on_new_kernels_with_the_fix() {
        let v317 = "Version: 3.17.1\n";
        assert!(criu_supported(v317, "6.1.0-57-cloud-amd64").is_ok());
        let e = criu_supported(v317, "6.18.3").unwrap_err();
        assert!(
            e.contains("3.17.1") && e.contains("4.1") && e.contains("--criu"),
            "{e}"
        );
        assert!(criu_supported("Version: 4.1\nGitID: v4.1\n", "6.18.3").is_ok());
        assert!(criu_supported("nonsense", "6.1").is_err());
    }

    #[test]
    fn command_lines_name_every_external_once() {
        let ext = |stdio, mnt_id, ino| ExternalFile { stdio, mnt_id, ino };
        let e = [
            ext(Stdio::Stdin, 21, 4),
            ext(Stdio::Stdout, 28, 11),
            ext(Stdio::Stderr, 28, 11),
        ];
        let d = dump_argv(
            Path::new("/usr/sbin/criu"),
            42,
            Path::new("/i"),
            &e,
            true,
            false,
        );
        let s = d.join(" ");
        assert!(s.starts_with("/usr/sbin/criu dump -D /i "), "{s}");
        assert!(s.contains(" -t 42 ") && s.contains(" -o dump.log "), "{s}");
        assert!(
            s.contains("--external file[15:4] --external file[1c:b]"),
            "{s}"
        );
        assert_eq!(s.matches("file[1c:b]").count(), 1, "{s}");
        assert!(s.ends_with("--leave-running"), "{s}");
        let r = restore_argv(
            Path::new("criu"),
            Path::new("/i"),
            Path::new("/r"),
            &[(5, e[0].key()), (6, e[1].key())],
            true,
            &["veth[eth0]:nv12345-7@nucleus0".into()],
        );
        let s = r.join(" ");
        assert!(
            s.contains("-r /r") && s.contains("--restore-sibling"),
            "{s}"
        );
        assert!(
            s.ends_with(
                "--inherit-fd fd[5]:file[15:4] --inherit-fd fd[6]:file[1c:b] \
                 --external veth[eth0]:nv12345-7@nucleus0"
            ),
            "{s}"
        );
    }

    /// A bridged sandbox is checkpointed (its interfaces are made again from its slots); a
    /// slirp one is not (slirp4netns holds its tap device from outside).
    #[test]
    fn bridged_interfaces_come_back_on_their_slots() {
        let mut cfg = RunConfig {
            argv: vec!["sh".into()],
            checkpointable: true,
            network: crate::config::NetworkMode::Bridge,
            etc_views: Some("/run/nucleus/.etc-views".into()),
            ..RunConfig::default()
        };
        cfg.net.dns = vec!["192.0.2.53".parse().unwrap()];
        let p = Plan::build(&cfg, &facts(), "0123456789abcdef");
        let p = p.unwrap();
        assert_eq!(refusal(&p), None);
        let b = p.net.bridge.as_ref().unwrap();
        let v = veth_externals(&p, &[7]).unwrap();
        assert_eq!(v, [format!("veth[eth0]:{}@{}", b.port(7), b.name)]);
        assert!(
            v[0].starts_with("veth[eth0]:nv") && v[0].contains("7@"),
            "{v:?}"
        );
        assert!(veth_externals(&p, &[])
            .unwrap_err()
            .contains("0 bridge slots"));
        assert_eq!(
            veth_externals(&plan(true), &[]).unwrap(),
            Vec::<String>::new()
        );
        let slirp = Plan::build(
            &RunConfig {
                network: crate::config::NetworkMode::Slirp,
                ..cfg
            },
            &facts(),
            "0123456789abcdef",
        )
        .unwrap();
        assert!(refusal(&slirp).unwrap().contains("slirp"));
    }

    /// The root's own entries: the mount points on it, its links and synthetic files, with
    /// their parent directories; nothing under another mount (/dev's nodes, /proc's masks).
    #[test]
    fn the_root_entries_are_what_no_mount_covers() {
        let p = plan(true);
        let entries = root_entries(&p, &|src| src != Path::new("/etc/hosts"));
        let paths: Vec<&Path> = entries.iter().map(|e| e.path()).collect();
        for want in [
            "/usr",
            "/bin",
            "/proc",
            "/dev",
            "/tmp",
            "/sys",
            "/etc",
            "/run",
            "/run/nucleus",
        ] {
            assert!(paths.contains(&Path::new(want)), "{want}: {paths:?}");
        }
        for not in [
            "/dev/null",
            "/proc/kcore",
            "/proc/acpi",
            "/dev/pts",
            "/sys/fs/cgroup",
        ] {
            assert!(!paths.contains(&Path::new(not)), "{not}: {paths:?}");
        }
        // Parents before children, each once.
        for (i, e) in entries.iter().enumerate() {
            if let Some(parent) = e.path().parent().filter(|p| *p != Path::new("/")) {
                let at = paths.iter().position(|p| *p == parent);
                assert!(
                    at.is_some_and(|a| a < i),
                    "{:?} before its parent",
                    e.path()
                );
            }
            assert_eq!(paths.iter().filter(|p| **p == e.path()).count(), 1);
        }
        let hostname = entries
            .iter()
            .find(|e| e.path() == Path::new("/run/nucleus/hostname"));
        assert!(
            matches!(hostname, Some(RootEntry::File { contents, .. }) if contents.contains("nucleus-0123456789ab")),
            "{hostname:?}"
        );
    }
}
