//! `nucleus logs`.

use crate::cli::LogsArgs;
use crate::monitor::LOG_STREAMS;
use crate::records::{monitor_alive, resolve};
use anyhow::{bail, Context, Result};
use nucleus_sys::store::Store;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

pub(crate) fn logs(store: &Store, a: &LogsArgs) -> Result<u8> {
    let s = resolve(store, &a.id)?;
    if let Some(unit) = &s.unit {
        // Supervised by systemd: the output is in the journal.
        let mut c = std::process::Command::new("journalctl");
        // The unit's own processes only (not the manager's messages about the unit).
        c.args(["--no-pager", "--quiet", "--output=cat"]);
        c.arg(format!("_SYSTEMD_UNIT={unit}"));
        if let Some(n) = a.tail {
            c.arg(format!("--lines={n}"));
        }
        if a.follow {
            c.arg("--follow");
        }
        let st = c.status().context("run journalctl")?;
        return Ok(st.code().unwrap_or(1).clamp(0, 255) as u8);
    }
    let dir = store.dir(&s.id);
    if !dir.join(LOG_STREAMS[0]).exists() {
        bail!("{}: has no log (only detached sandboxes keep one)", a.id);
    }
    // The workload's stdout to ours, its stderr to ours: each stream whole and in order (the
    // order between the two is not kept).
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut files = Vec::new();
    for (name, w) in LOG_STREAMS
        .iter()
        .zip([&mut out as &mut dyn Write, &mut err])
    {
        // Both parts read under a shared lock: the monitor does not move the log aside
        // meanwhile (it retries at its next check). Released before any --follow. A log past
        // four times its size is cut all the same (a stalled reader must not unbound it):
        // when the older part was replaced during the read, the lines the cut moved may be
        // in neither part as read; read both again (CI saw the last line missing).
        let older = dir.join(format!("{name}.1"));
        let stamp = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&older)
                .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
                .ok()
        };
        let mut read = None;
        for _ in 0..5 {
            // A sandbox made by an older nucleus has no log.err.
            let Ok(f) = File::open(dir.join(name)) else {
                break;
            };
            let lock = File::open(dir.join(name))?;
            let _ = nucleus_sys::raw::flock(std::os::fd::AsFd::as_fd(&lock), false, true);
            let before = stamp();
            let mut spool = Spool {
                held: Vec::new(),
                out: &mut *w,
                spilled: false,
            };
            let f = print_log(&dir, name, f, a.tail, &mut spool)?;
            drop(lock);
            // (Once spilled, what was printed stays printed: read once, as before.)
            let again = stamp() != before && !spool.spilled;
            let held = std::mem::take(&mut spool.held);
            read = Some((f, held));
            if !again {
                break;
            }
        }
        let Some((f, held)) = read else {
            continue;
        };
        w.write_all(&held)?;
        w.flush()?;
        files.push((f, *name));
    }
    if !a.follow {
        return Ok(0);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut moved = false;
        for (f, name) in &mut files {
            let w: &mut dyn Write = if *name == LOG_STREAMS[0] {
                &mut out
            } else {
                &mut err
            };
            // Moved aside and started again: read the new log from its start.
            if f.metadata()?.len() < f.stream_position()? {
                f.seek(SeekFrom::Start(0))?;
            }
            loop {
                let k = f.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                moved = true;
                w.write_all(&buf[..k])?;
            }
            w.flush()?;
        }
        // Follow until the sandbox's monitor is gone (then read what is left once more).
        let cur = store.read(&s.id);
        if !cur.as_ref().is_some_and(monitor_alive) && !moved {
            return Ok(0);
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What `logs` holds back of one stream while it reads, to read it again if a cut came in
/// between: at most [`SPOOL_MAX`] (a log's parts are about twice --log-max-size, more with a
/// reader in the way); past that it is printed as it comes (the one read counts).
struct Spool<'a> {
    held: Vec<u8>,
    out: &'a mut dyn Write,
    spilled: bool,
}

const SPOOL_MAX: usize = 64 << 20;

impl Write for Spool<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if !self.spilled && self.held.len() + b.len() <= SPOOL_MAX {
            self.held.extend_from_slice(b);
            return Ok(b.len());
        }
        if !self.spilled {
            self.spilled = true;
            self.out.write_all(&std::mem::take(&mut self.held))?;
        }
        self.out.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.spilled {
            self.out.flush()?;
        }
        Ok(())
    }
}

/// Print one stream of a detached sandbox's log to `out`: the part moved aside (`NAME.1`),
/// then the current file, or their last `tail` lines. Returns the current file, at its end.
pub(crate) fn print_log(
    dir: &Path,
    name: &str,
    mut f: File,
    tail: Option<usize>,
    out: &mut dyn Write,
) -> Result<File> {
    let mut buf = vec![0u8; 64 * 1024];
    // The older part, moved aside by --log-max-size: first, or as much of it as --tail wants
    // beyond what the current log holds.
    let older_wanted = match tail {
        None => Some(usize::MAX),
        Some(n) => {
            let start = tail_offset(&mut f, n)?;
            f.seek(SeekFrom::Start(start))?;
            if start == 0 {
                let mut count = 0usize;
                loop {
                    let k = f.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    count += buf[..k].iter().filter(|&&b| b == b'\n').count();
                }
                f.seek(SeekFrom::Start(0))?;
                Some(n.saturating_sub(count))
            } else {
                None
            }
        }
    };
    if let (Some(want), Ok(mut old)) = (
        older_wanted.filter(|w| *w > 0),
        File::open(dir.join(format!("{name}.1"))),
    ) {
        if want != usize::MAX {
            let start = tail_offset(&mut old, want)?;
            old.seek(SeekFrom::Start(start))?;
        }
        std::io::copy(&mut old, out)?;
    }
    std::io::copy(&mut f, out)?;
    out.flush()?;
    Ok(f)
}

/// Offset of the start of the last `n` lines.
pub(crate) fn tail_offset(f: &mut File, n: usize) -> Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut seen = 0usize;
    let mut buf = vec![0u8; 8192];
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while pos > 0 {
        let k = (pos as usize).min(buf.len());
        pos -= k as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..k])?;
        for i in (0..k).rev() {
            if buf[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                seen += 1;
                if seen == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        skip_last = false;
    }
    Ok(0)
}
