//! A detached sandbox's logs, kept under --log-max-size.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::time::{Duration, Instant};

/// The files of a detached sandbox's output, in its directory: its stdout and its stderr
/// (the monitor's own warnings included), each with the older part moved aside.
pub(crate) const LOG_STREAMS: [&str; 2] = ["log", "log.err"];

/// A detached sandbox's logs (`log` and `log.err` in its directory, which the workload appends
/// to directly) are kept under a size each: once one is larger, its last `max` bytes move to
/// `<name>.1` (replacing the older one) and it starts again empty. The workload writes with
/// O_APPEND, so its next write lands at the new end. Checked every 250 ms, every 50 ms while
/// one grows, so a log exceeds the size by at most what the workload writes in that time;
/// `nucleus logs` reads both parts.
pub(crate) struct LogCap {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) max: u64,
    pub(crate) next: Instant,
    pub(crate) last_len: [u64; 2],
}

impl LogCap {
    pub(crate) fn check(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let mut growing = false;
        for (i, name) in LOG_STREAMS.iter().enumerate() {
            let log = self.dir.join(name);
            let len = std::fs::metadata(&log).map_or(0, |m| m.len());
            growing |= len.saturating_sub(self.last_len[i]) >= 64 << 10;
            self.last_len[i] = len;
            if len > self.max && self.cut(name, len) {
                self.last_len[i] = 0;
            }
        }
        self.next = now + Duration::from_millis(if growing { 50 } else { 250 });
    }
    /// Move the log's last `max` bytes aside and start it again; false when a reader
    /// (`nucleus logs`, which holds a shared lock on the log while it prints both parts)
    /// is in the way: the next check tries again.
    pub(crate) fn cut(&self, name: &str, len: u64) -> bool {
        let log = self.dir.join(name);
        let rotated = self.dir.join(format!("{name}.1"));
        let tmp = self.dir.join(format!("{name}.1.tmp"));
        let max = self.max;
        let cut = std::fs::OpenOptions::new().write(true).open(&log);
        // (A reader that stalls, its output piped to something that does not read, does not
        // let the log grow past four times its size: then it is cut all the same.)
        if let Ok(f) = &cut {
            if nucleus_sys::raw::flock(std::os::fd::AsFd::as_fd(f), true, false).is_err()
                && len <= max.saturating_mul(4)
            {
                return false;
            }
        }
        // The last `max` bytes and whatever the workload appends meanwhile (copied to the end,
        // twice: the second pass right before the cut), so what it writes during the copy is
        // not lost with the cut; only a write in the microseconds between the last read and
        // the truncation can be.
        let moved = (|| -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut src = File::open(&log)?;
            src.seek(SeekFrom::Start(len - max))?;
            let mut dst = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            std::io::copy(&mut src, &mut dst)?;
            std::io::copy(&mut src, &mut dst)?;
            Ok(())
        })();
        // The copy takes its place first, then the log is cut (a reader never finds the newest
        // lines in neither file; `nucleus logs` also locks the cut out while it reads: CI saw
        // it print the emptied log after the old copy, without the last lines).
        if moved
            .and_then(|()| std::fs::rename(&tmp, &rotated))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
        // Cut whether or not a copy could be kept: the log is never left to grow.
        if let Ok(f) = cut {
            let _ = f.set_len(0);
        }
        true
    }
    pub(crate) fn ms_until(&self) -> i32 {
        let d = self.next.saturating_duration_since(Instant::now());
        i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1)
    }
}
