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

/// The sandbox's standard descriptors (of its PID 1, `pid` on the host), by CRIU's id: a
/// detached sandbox's are the host's /dev/null and its two logs, files on none of its mounts.
/// Anything else (a foreground run's pipes, a terminal) is refused: only `run -d` sandboxes
/// are checkpointed.
pub fn externals(pid: i32) -> Result<Vec<ExternalFile>> {
    let mut out = Vec::new();
    for (fd, stdio) in [(0, Stdio::Stdin), (1, Stdio::Stdout), (2, Stdio::Stderr)] {
        let link = format!("/proc/{pid}/fd/{fd}");
        // (stat follows the descriptor's magic link to the open file: root may.)
        let st = fs::metadata(&link).ctx("stat", &link)?;
        let ft = st.file_type();
        use std::os::unix::fs::FileTypeExt;
        if !(ft.is_file() || ft.is_char_device()) {
            return Err(other(
                "checkpoint",
                format!(
                    "its descriptor {fd} is not a file (a foreground run's pipe or terminal): \
                     only detached sandboxes (run -d) are checkpointed"
                ),
            ));
        }
        out.push(ExternalFile {
            stdio,
            mnt_id: mnt_id(pid, fd)?,
            ino: st.ino(),
        });
    }
    Ok(out)
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
    fn externals_of_this_process_are_its_stdio() {
        // (The test runner's own descriptors: files or pipes; a pipe is refused.)
        let me = std::process::id() as i32;
        match externals(me) {
            Ok(e) => assert_eq!(e.len(), 3),
            Err(e) => assert!(e.to_string().contains("run -d"), "{e}"),
        }
        assert!(uid_base(me).is_ok());
    }
}
