//! Mount options of config.json (`mounts[].options`, as mount(8) spells them) → the flags,
//! propagation and filesystem data of one mount, as runc and crun read them.

use serde::{Deserialize, Serialize};

pub const MS_RDONLY: u64 = 1;
pub const MS_NOSUID: u64 = 2;
pub const MS_NODEV: u64 = 4;
pub const MS_NOEXEC: u64 = 8;
pub const MS_SYNCHRONOUS: u64 = 16;
pub const MS_REMOUNT: u64 = 32;
pub const MS_MANDLOCK: u64 = 64;
pub const MS_DIRSYNC: u64 = 128;
pub const MS_NOSYMFOLLOW: u64 = 256;
pub const MS_NOATIME: u64 = 1024;
pub const MS_NODIRATIME: u64 = 2048;
pub const MS_BIND: u64 = 4096;
pub const MS_REC: u64 = 16384;
pub const MS_SILENT: u64 = 32768;
pub const MS_UNBINDABLE: u64 = 1 << 17;
pub const MS_PRIVATE: u64 = 1 << 18;
pub const MS_SLAVE: u64 = 1 << 19;
pub const MS_SHARED: u64 = 1 << 20;
pub const MS_RELATIME: u64 = 1 << 21;
pub const MS_STRICTATIME: u64 = 1 << 24;
pub const MS_LAZYTIME: u64 = 1 << 25;

/// mount_setattr(2) attributes, for the recursive forms (`rro`, `rnosuid`, …).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
/// The atime bits (`MOUNT_ATTR__ATIME`): set together, cleared together.
pub const MOUNT_ATTR_ATIME: u64 = 0x70;

/// The options [`parse`] reads itself (everything else is filesystem data), for `features`.
pub const KNOWN: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "nosymfollow",
    "symfollow",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rnosymfollow",
    "rsymfollow",
    "rrelatime",
    "rnoatime",
    "rstrictatime",
    "ratime",
    "rnostrictatime",
    "rnorelatime",
    "tmpcopyup",
];

/// One mount's options, read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOptions {
    /// MS_* flags for mount(2) (MS_BIND and MS_REC included for bind/rbind).
    pub flags: u64,
    /// Flags the options cleared explicitly (`rw`, `suid`, `dev`, `exec`, …): a bind's
    /// read-only remount keeps what the source had unless an option says otherwise.
    pub cleared: u64,
    /// MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, with MS_REC for the `r` forms, applied
    /// after the mount.
    pub propagation: u64,
    /// mount_setattr attributes applied recursively (`rro`, `rnosuid`, …): set, cleared.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem data (`mode=755,size=65536k`), comma-joined in the order given.
    pub data: String,
    /// `idmap`/`ridmap`: the bind is an idmapped mount (recursive for ridmap).
    pub idmap: Option<bool>,
    /// crun's `tmpcopyup`: a tmpfs starts with a copy of what the image had there.
    pub tmpcopyup: bool,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & MS_BIND != 0
    }
    pub fn readonly(&self) -> bool {
        self.flags & MS_RDONLY != 0
    }
}

/// Read `options`; `Err(option)` names one this runtime cannot apply.
pub fn parse(options: &[String]) -> Result<MountOptions, String> {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        // (set, clear) of MS_* flags.
        let flag: Option<(u64, u64)> = match opt {
            "defaults" => Some((0, 0)),
            "ro" => Some((MS_RDONLY, 0)),
            "rw" => Some((0, MS_RDONLY)),
            "nosuid" => Some((MS_NOSUID, 0)),
            "suid" => Some((0, MS_NOSUID)),
            "nodev" => Some((MS_NODEV, 0)),
            "dev" => Some((0, MS_NODEV)),
            "noexec" => Some((MS_NOEXEC, 0)),
            "exec" => Some((0, MS_NOEXEC)),
            "sync" => Some((MS_SYNCHRONOUS, 0)),
            "async" => Some((0, MS_SYNCHRONOUS)),
            "dirsync" => Some((MS_DIRSYNC, 0)),
            "remount" => Some((MS_REMOUNT, 0)),
            "mand" => Some((MS_MANDLOCK, 0)),
            "nomand" => Some((0, MS_MANDLOCK)),
            "atime" => Some((0, MS_NOATIME)),
            "noatime" => Some((MS_NOATIME, 0)),
            "diratime" => Some((0, MS_NODIRATIME)),
            "nodiratime" => Some((MS_NODIRATIME, 0)),
            "relatime" => Some((MS_RELATIME, 0)),
            "norelatime" => Some((0, MS_RELATIME)),
            "strictatime" => Some((MS_STRICTATIME, 0)),
            "nostrictatime" => Some((0, MS_STRICTATIME)),
            "lazytime" => Some((MS_LAZYTIME, 0)),
            "nolazytime" => Some((0, MS_LAZYTIME)),
            "silent" => Some((MS_SILENT, 0)),
            "loud" => Some((0, MS_SILENT)),
            "nosymfollow" => Some((MS_NOSYMFOLLOW, 0)),
            "symfollow" => Some((0, MS_NOSYMFOLLOW)),
            "bind" => Some((MS_BIND, 0)),
            "rbind" => Some((MS_BIND | MS_REC, 0)),
            _ => None,
        };
        if let Some((set, clear)) = flag {
            o.flags = (o.flags | set) & !clear;
            o.cleared = (o.cleared | clear) & !set;
            continue;
        }
        let propagation = match opt {
            "private" => Some(MS_PRIVATE),
            "rprivate" => Some(MS_PRIVATE | MS_REC),
            "shared" => Some(MS_SHARED),
            "rshared" => Some(MS_SHARED | MS_REC),
            "slave" => Some(MS_SLAVE),
            "rslave" => Some(MS_SLAVE | MS_REC),
            "unbindable" => Some(MS_UNBINDABLE),
            "runbindable" => Some(MS_UNBINDABLE | MS_REC),
            _ => None,
        };
        if let Some(p) = propagation {
            o.propagation = p;
            continue;
        }
        let rec: Option<(u64, u64)> = match opt {
            "rro" => Some((MOUNT_ATTR_RDONLY, 0)),
            "rrw" => Some((0, MOUNT_ATTR_RDONLY)),
            "rnosuid" => Some((MOUNT_ATTR_NOSUID, 0)),
            "rsuid" => Some((0, MOUNT_ATTR_NOSUID)),
            "rnodev" => Some((MOUNT_ATTR_NODEV, 0)),
            "rdev" => Some((0, MOUNT_ATTR_NODEV)),
            "rnoexec" => Some((MOUNT_ATTR_NOEXEC, 0)),
            "rexec" => Some((0, MOUNT_ATTR_NOEXEC)),
            "rnodiratime" => Some((MOUNT_ATTR_NODIRATIME, 0)),
            "rdiratime" => Some((0, MOUNT_ATTR_NODIRATIME)),
            "rnosymfollow" => Some((MOUNT_ATTR_NOSYMFOLLOW, 0)),
            "rsymfollow" => Some((0, MOUNT_ATTR_NOSYMFOLLOW)),
            // The atime modes are one field: setting one clears the others.
            "rrelatime" => Some((MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME)),
            "rnoatime" => Some((MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME)),
            "rstrictatime" => Some((MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME)),
            "ratime" => Some((0, MOUNT_ATTR_NOATIME)),
            "rnostrictatime" => Some((0, MOUNT_ATTR_STRICTATIME)),
            "rnorelatime" => Some((0, 0)),
            _ => None,
        };
        if let Some((set, clear)) = rec {
            o.rec_set = (o.rec_set & !clear) | set;
            o.rec_clear = (o.rec_clear | clear) & !set;
            continue;
        }
        match opt {
            "idmap" => o.idmap = Some(false),
            "ridmap" => o.idmap = Some(true),
            "tmpcopyup" => o.tmpcopyup = true,
            // Filesystem options (mode=, size=, uid=, newinstance, …) go to the filesystem,
            // which refuses what it does not know when the mount is made.
            _ if !opt.is_empty() && !opt.contains(',') && !opt.contains('\0') => data.push(opt),
            _ => return Err(opt.to_string()),
        }
    }
    o.data = data.join(",");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn runc_default_mounts_read_as_runc_reads_them() {
        let dev = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(dev.flags, MS_NOSUID | MS_STRICTATIME);
        assert_eq!(dev.data, "mode=755,size=65536k");
        let pts = opts(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(pts.flags, MS_NOSUID | MS_NOEXEC);
        assert_eq!(pts.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        let cg = opts(&["nosuid", "noexec", "nodev", "relatime", "ro"]);
        assert_eq!(
            cg.flags,
            MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY
        );
        let b = opts(&["rbind", "rprivate", "ro"]);
        assert!(b.is_bind() && b.readonly());
        assert_eq!(b.flags & MS_REC, MS_REC);
        assert_eq!(b.propagation, MS_PRIVATE | MS_REC);
        assert!(b.data.is_empty());
    }

    #[test]
    fn later_options_win_and_clears_are_remembered() {
        let o = opts(&["ro", "rw", "nosuid", "suid"]);
        assert_eq!(o.flags, 0);
        assert_eq!(o.cleared, MS_RDONLY | MS_NOSUID);
        let r = opts(&["rro", "rnoatime", "rstrictatime"]);
        assert_eq!(r.rec_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_STRICTATIME);
        assert_eq!(r.rec_clear, MOUNT_ATTR_ATIME & !MOUNT_ATTR_STRICTATIME);
        assert_eq!(opts(&["ridmap"]).idmap, Some(true));
    }

    #[test]
    fn every_known_option_is_read_not_passed_as_data() {
        for k in KNOWN {
            let o = parse(&[k.to_string()]).unwrap();
            assert!(o.data.is_empty(), "{k} became filesystem data");
        }
    }

    #[test]
    fn options_that_would_smuggle_data_are_refused() {
        assert_eq!(
            parse(&["mode=755,uid=0".to_string()]).unwrap_err(),
            "mode=755,uid=0"
        );
        assert!(parse(&[String::new()]).is_err());
    }
}
