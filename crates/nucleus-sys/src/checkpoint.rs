//! The runtime's side of `nucleus checkpoint`: what CRIU needs to know of a running sandbox
//! (its external standard descriptors, its id range), running CRIU, and what its log says
//! when it fails. The decisions (who qualifies, the command lines) are nucleus-spec's
//! `checkpoint`; the restore is `sandbox::restore`.

use crate::error::{other, Context, Result};
use nucleus_spec::checkpoint::{ExternalFile, Stdio};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as PStdio};

/// The files a detached sandbox's standard descriptors are (`files`: the host's /dev/null and
/// its two logs, each with the descriptor it is), by CRIU's id (mount and inode). Read from the
/// files themselves, not from its PID 1's descriptors: a shell moves those for a moment for each
/// redirection it makes itself (`cmd </dev/null`), and an id read in that moment is not the one
/// CRIU finds once the sandbox is frozen ("Can't lookup mount", seen in CI).
pub fn externals(files: &[(Stdio, PathBuf)]) -> Result<Vec<ExternalFile>> {
    use rustix::fs::{Mode, OFlags};
    files
        .iter()
        .map(|(stdio, p)| {
            let f = rustix::fs::open(
                p,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(std::io::Error::from)
            .ctx("open", p.display())?;
            let st = rustix::fs::fstat(&f)
                .map_err(std::io::Error::from)
                .ctx("stat", p.display())?;
            let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if !matches!(
                ft,
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::CharacterDevice
            ) {
                return Err(other(
                    "checkpoint",
                    format!("{}: not a file ({ft:?})", p.display()),
                ));
            }
            use std::os::fd::AsRawFd;
            Ok(ExternalFile {
                stdio: *stdio,
                mnt_id: mnt_id(std::process::id() as i32, f.as_raw_fd())?,
                ino: st.st_ino,
            })
        })
        .collect()
}

/// An OCI container's standard descriptors (of its process, `pid` on the host), as CRIU needs
/// them: the caller's pipes (conmon's, a shim's) by inode, anything else as a file outside
/// its mounts (mount id and inode). A socket or a terminal is refused in one line.
pub fn oci_stdio(pid: i32) -> Result<Vec<nucleus_spec::oci::checkpoint::Descriptor>> {
    use nucleus_spec::oci::checkpoint::Descriptor;
    let mut out = Vec::new();
    for (fd, stdio) in [(0, Stdio::Stdin), (1, Stdio::Stdout), (2, Stdio::Stderr)] {
        let link = format!("/proc/{pid}/fd/{fd}");
        let target = fs::read_link(&link).ctx("read", &link)?;
        let target = target.to_string_lossy();
        if let Some(ino) = target
            .strip_prefix("pipe:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse().ok())
        {
            out.push(Descriptor::Pipe { ino });
            continue;
        }
        let st = fs::metadata(&link).ctx("stat", &link)?;
        use std::os::unix::fs::FileTypeExt;
        let ft = st.file_type();
        // (Terminals: the tty majors 4 and 5, the pty slaves' 136 to 143.)
        let major = libc::major(st.rdev());
        let tty = ft.is_char_device() && (matches!(major, 4 | 5) || (136..=143).contains(&major));
        if ft.is_socket() || tty {
            return Err(other(
                "checkpoint",
                format!("its descriptor {fd} is {target}: only pipes and files are saved"),
            ));
        }
        out.push(Descriptor::File {
            file: ExternalFile {
                stdio,
                mnt_id: mnt_id(pid, fd)?,
                ino: st.ino(),
            },
        });
    }
    Ok(out)
}

/// The id of the mount descriptor `fd` of `pid` is on (its fdinfo's `mnt_id`).
fn mnt_id(pid: i32, fd: i32) -> Result<u64> {
    let info = format!("/proc/{pid}/fdinfo/{fd}");
    let text = fs::read_to_string(&info).ctx("read", &info)?;
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| other("read", format!("{info}: no mnt_id")))
}

/// The first host uid of the user namespace of `pid` (its `0 BASE WIDTH` line).
pub fn uid_base(pid: i32) -> Result<u32> {
    let p = format!("/proc/{pid}/uid_map");
    let text = fs::read_to_string(&p).ctx("read", &p)?;
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"0")).then(|| f.get(1)?.parse().ok())?
        })
        .ok_or_else(|| other("read", format!("{p}: no mapping of uid 0")))
}

/// `criu --version`'s output.
pub fn criu_version(criu: &Path) -> Result<String> {
    let o = Command::new(criu)
        .arg("--version")
        .stdin(PStdio::null())
        .stderr(PStdio::null())
        .output()
        .ctx("run", criu.display())?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The kernel's release (uname -r).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// `criu` as an absolute path: `given` (--criu, NUCLEUS_CRIU) or the first on PATH.
pub fn find_criu(given: Option<&Path>) -> Result<PathBuf> {
    let found = match given {
        Some(p) => Some(p.to_path_buf()),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("criu"))
                .find(|p| p.is_file())
        }),
    };
    let p = found.ok_or_else(|| {
        other(
            "--criu",
            "no criu on PATH: install CRIU (apt-get install criu; 4.1 or newer on Linux 6.13 \
             and later) or name it with --criu",
        )
    })?;
    let md = fs::metadata(&p).ctx("--criu", p.display())?;
    // Run as root: it must be root's own (as a binary root runs from PATH would be).
    if md.uid() != 0 || md.mode() & 0o022 != 0 || !md.is_file() {
        return Err(other(
            "--criu",
            format!(
                "{}: must be a root-owned file nobody else may write",
                p.display()
            ),
        ));
    }
    Ok(p)
}

/// Run CRIU (`argv`, as nucleus-spec built it) to its end; a failure is one line: the last
/// error CRIU logged (in `log`), or its exit status.
pub fn run_criu(argv: &[String], log: &Path) -> Result<()> {
    let st = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(PStdio::null())
        .stdout(PStdio::null())
        .stderr(PStdio::null())
        .status()
        .ctx("run", &argv[0])?;
    if st.success() {
        return Ok(());
    }
    let verb = argv.get(1).map_or("", String::as_str);
    Err(other(
        "criu",
        format!(
            "{verb}: {}",
            failure_of(log).unwrap_or_else(|| format!("it failed ({st})"))
        ),
    ))
}

/// The last error line of a CRIU log, without its timestamp and source position, and where
/// the log is.
pub fn failure_of(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    // The last error that says what went wrong, not one of the lines each caller up the stack
    // adds ("Dump files (pid: 446) failed with -1", "Dumping FAILED.").
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error (")).collect();
    let generic = |l: &str| {
        l.contains("FAILED") || l.contains(" failed with ") || l.contains("finished with error")
    };
    let line = errors
        .iter()
        .rev()
        .find(|l| !generic(l))
        .or(errors.last())
        .copied()?;
    let msg = line.rsplit_once("): ").map_or(line, |(_, m)| m).trim();
    // (CRIU's messages are its own, but may quote the sandbox's paths: printable ASCII only.)
    let msg: String = msg
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect();
    Some(format!("{msg} (log: {})", log.display()))
}

/// argv as C strings, for an exec after a fork.
pub(crate) fn c_argv(argv: &[String]) -> Result<Vec<CString>> {
    argv.iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| other("criu", "a NUL in its arguments")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_criu_failure_is_its_last_error_line() {
        let d = std::env::temp_dir().join(format!("nucleus-criu-log-{}", std::process::id()));
        fs::write(
            &d,
            "(00.1) Version: 3.17.1\n(00.3) Error (criu/files-reg.c:1710): Can't lookup mount=22 for fd=-3 path=/x\n(00.35) Error (criu/cr-dump.c:1524): Collect mappings (pid: 134) failed with -1\n(00.4) Error (criu/cr-dump.c:2053): Dumping FAILED.\n",
        )
        .unwrap();
        let m = failure_of(&d).unwrap();
        assert!(
            m.starts_with("Can't lookup mount=22 for fd=-3 path=/x (log: "),
            "{m}"
        );
        // A path the sandbox named, with a terminal escape and no end: printable, bounded.
        let long = "y".repeat(1000);
        fs::write(
            &d,
            format!("(00.3) Error (criu/files-reg.c:1): Can't open /tmp/\x1b[31m{long}\n"),
        )
        .unwrap();
        let m = failure_of(&d).unwrap();
        fs::remove_file(&d).unwrap();
        assert!(m.starts_with("Can't open /tmp/?[31myyy"), "{m}");
        assert!(!m.contains('\x1b') && m.len() < 300 + 100, "{}", m.len());
    }

    /// CRIU runs as root: a binary someone else owns, or others may write, is refused.
    #[test]
    fn only_a_root_owned_criu_nobody_else_writes() {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("nucleus-criu-{}", std::process::id()));
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let root = rustix::process::geteuid().is_root();
        assert_eq!(find_criu(Some(&p)).is_ok(), root, "owned by the caller");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(find_criu(Some(&p)).is_err(), "writable by others");
        if root {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&p, Some(1000), None).unwrap();
            assert!(find_criu(Some(&p)).is_err(), "owned by uid 1000");
        }
        fs::remove_file(&p).unwrap();
    }

    #[test]
    fn externals_are_the_files_themselves() {
        let d = std::env::temp_dir().join(format!("nucleus-ext-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("log"), b"").unwrap();
        let files = [
            (Stdio::Stdin, PathBuf::from("/dev/null")),
            (Stdio::Stdout, d.join("log")),
        ];
        let e = externals(&files).unwrap();
        let null = fs::metadata("/dev/null").unwrap();
        assert_eq!((e[0].stdio, e[0].ino), (Stdio::Stdin, null.ino()));
        assert_eq!(e[1].ino, fs::metadata(d.join("log")).unwrap().ino());
        // The mount each was reached through, as a descriptor of it says.
        let f = fs::File::open(d.join("log")).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(
            e[1].mnt_id,
            mnt_id(std::process::id() as i32, f.as_raw_fd()).unwrap()
        );
        // A link in its place is refused, not followed.
        std::os::unix::fs::symlink("/etc/passwd", d.join("err")).unwrap();
        assert!(externals(&[(Stdio::Stderr, d.join("err"))]).is_err());
        assert!(uid_base(std::process::id() as i32).is_ok());
        fs::remove_dir_all(&d).unwrap();
    }
}
