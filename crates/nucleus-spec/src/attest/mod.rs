//! Root filesystem attestation: the manifest (what a root filesystem must hold, entry by entry)
//! and the read-only image a verified tree is sealed into (`erofs`). Pure: the walk, the
//! hashing and the mounting are nucleus-sys's (`attest`).
//!
//! A manifest is text, one entry per line after the header, in a canonical order (so one tree
//! has one manifest and one digest):
//!
//! ```text
//! nucleus-rootfs-manifest 1
//! . d 0755 0 0 -
//! bin d 0755 0 0 -
//! bin/busybox f 0755 0 0 1234:<sha256 hex>
//! bin/sh l 0777 0 0 busybox
//! dev/null c 0666 0 0 1:3
//! ```
//!
//! Fields: path (relative, `.` for the top; bytes outside `!`..`~` and `%` written `%XX`),
//! type (`d` directory, `f` file, `l` symlink, `c`/`b` device, `p` fifo), permission bits
//! (octal, set-id and sticky bits included), owner uid and gid, and what the type carries:
//! `SIZE:SHA256` (file), the target (symlink, escaped as paths are), `MAJOR:MINOR` (device) or
//! `-`. Paths are sorted component by component (a directory right before its contents).
//! Times, link counts and extended attributes are not part of it (and not carried into the
//! image: its entries have none, and mtime 1 as in the Nix store).
//!
//! A Nix closure (`nucleus rootfs manifest --nix-closure STOREPATH`) is the tree STOREPATH
//! with its whole closure at `nix/store/`: the second line is `nix-closure`; `nix` and
//! `nix/store` are directories of the image only (`d 0755 0 0`), every `nix/store/NAME/…`
//! entry is the host's `/nix/store/NAME/…`, and store entries are owned by root in the
//! manifest and the image (the store's owner is the installation's, not attested).

pub mod erofs;

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::PathBuf;

/// An attested root (`--rootfs-manifest`, `--rootfs-sha256`): the tree at `source` must be
/// exactly the manifest, whose SHA-256 is `sha256`; the sandbox runs on the image it was
/// sealed into, in `cache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedRoot {
    pub source: PathBuf,
    pub manifest: PathBuf,
    pub sha256: String,
    pub cache: PathBuf,
}

/// Where sealed images are kept unless `--rootfs-cache` says otherwise.
pub const DEFAULT_CACHE: &str = "/var/lib/nucleus/rootfs";

/// The first line of every manifest.
pub const HEADER: &str = "nucleus-rootfs-manifest 1";
/// The second line of a Nix closure's manifest.
pub const CLOSURE: &str = "nix-closure";
/// Where a closure's store paths are in the tree, and on the host.
pub const STORE_IN_TREE: &[u8] = b"nix/store";
pub const STORE_ON_HOST: &str = "/nix/store";

/// The largest manifest read (about a million entries).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// What an entry is, and what of it is attested beyond mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, sha256: [u8; 32] },
    Symlink(Vec<u8>),
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

impl Kind {
    fn letter(&self) -> char {
        match self {
            Kind::Dir => 'd',
            Kind::File { .. } => 'f',
            Kind::Symlink(_) => 'l',
            Kind::Char { .. } => 'c',
            Kind::Block { .. } => 'b',
            Kind::Fifo => 'p',
        }
    }

    /// The name of the type in messages.
    pub fn noun(&self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File { .. } => "a file",
            Kind::Symlink(_) => "a symlink",
            Kind::Char { .. } => "a character device",
            Kind::Block { .. } => "a block device",
            Kind::Fifo => "a fifo",
        }
    }
}

/// One entry: its path relative to the top (empty for the top itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Entry {
    /// The path as messages show it (`.` for the top; escaped as in the manifest).
    pub fn shown(&self) -> String {
        shown(&self.path)
    }

    /// The last component (empty for the top).
    pub fn name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        }
    }

    /// The parent's path (None for the top).
    pub fn parent(&self) -> Option<&[u8]> {
        if self.path.is_empty() {
            return None;
        }
        Some(match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[..i],
            None => &[],
        })
    }
}

/// A path as messages and manifests show it.
pub fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        escape(path)
    }
}

/// Component-wise order: a directory sorts right before its contents (`a`, `a/b`, `a-b`).
pub fn path_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |x: u8| if x == b'/' { 0 } else { x as u16 + 1 };
    a.iter().map(|&x| key(x)).cmp(b.iter().map(|&x| key(x)))
}

/// A whole manifest: the top first, then every entry in [`path_order`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
    /// A Nix closure: `nix/store/…` is the host's store (see the module's doc).
    pub closure: bool,
}

/// Where a closure's entry is read from: the host store (`Some(rest)`: the path below
/// /nix/store), the tree itself (`None`), or nowhere (`Synthetic`: `nix`, `nix/store`).
#[derive(Debug, PartialEq, Eq)]
pub enum Source<'a> {
    Tree,
    Store(&'a [u8]),
    Synthetic,
}

impl Manifest {
    /// Where the entry at `path` comes from.
    pub fn source<'a>(&self, path: &'a [u8]) -> Source<'a> {
        if !self.closure {
            return Source::Tree;
        }
        if path == b"nix" || path == STORE_IN_TREE {
            return Source::Synthetic;
        }
        match path
            .strip_prefix(STORE_IN_TREE)
            .and_then(|r| r.strip_prefix(b"/"))
        {
            Some(rest) => Source::Store(rest),
            None if path == b"nix" || path.starts_with(b"nix/") => Source::Synthetic,
            None => Source::Tree,
        }
    }
}

fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x21..=0x7e).contains(&c) && c != b'%' {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// A path or link target as a manifest writes it, back to bytes (None: not canonical).
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                if !h
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
                {
                    return None;
                }
                let v = u8::from_str_radix(h, 16).ok()?;
                // Canonical: only what must be escaped is.
                if (0x21..=0x7e).contains(&v) && v != b'%' {
                    return None;
                }
                out.push(v);
                i += 3;
            }
            c if (0x21..=0x7e).contains(&c) => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A path the manifest may hold: relative, no empty, `.` or `..` component, no NUL.
pub fn valid_path(p: &[u8]) -> bool {
    !p.is_empty()
        && !p.contains(&0)
        && p.split(|&c| c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

impl Manifest {
    /// The manifest's text (its digest is the SHA-256 of exactly these bytes).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(64 * self.entries.len() + 32);
        s.push_str(HEADER);
        s.push('\n');
        if self.closure {
            s.push_str(CLOSURE);
            s.push('\n');
        }
        for e in &self.entries {
            let extra = match &e.kind {
                Kind::Dir | Kind::Fifo => "-".to_string(),
                Kind::File { size, sha256 } => format!("{size}:{}", crate::hex(sha256)),
                Kind::Symlink(t) => escape(t),
                Kind::Char { major, minor } | Kind::Block { major, minor } => {
                    format!("{major}:{minor}")
                }
            };
            s.push_str(&format!(
                "{} {} {:04o} {} {} {}\n",
                e.shown(),
                e.kind.letter(),
                e.mode,
                e.uid,
                e.gid,
                extra
            ));
        }
        s
    }

    /// Sort the entries into the canonical order (for a walk that found them in another).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| path_order(&a.path, &b.path));
    }

    /// Parse and check a manifest: `flag` names where it came from in errors, which also
    /// name the line.
    pub fn parse(flag: &str, text: &[u8]) -> Result<Manifest, ConfigError> {
        let err = |line: usize, msg: String| ConfigError::new(flag, format!("line {line}: {msg}"));
        let text = std::str::from_utf8(text)
            .map_err(|_| ConfigError::new(flag, "not a manifest: it is not text"))?;
        let mut lines = text.split_inclusive('\n');
        match lines.next() {
            Some(h) if h.strip_suffix('\n') == Some(HEADER) => {}
            _ => {
                return Err(ConfigError::new(
                    flag,
                    format!("not a manifest: the first line must be `{HEADER}` (made by `nucleus rootfs manifest DIR`)"),
                ))
            }
        }
        let mut entries: Vec<Entry> = Vec::new();
        // The directories an entry may be in: the chain from the top to the last directory.
        let mut open_dirs: Vec<Vec<u8>> = Vec::new();
        let mut lines = lines.peekable();
        let closure = lines.peek() == Some(&"nix-closure\n");
        if closure {
            lines.next();
        }
        let first = if closure { 3 } else { 2 };
        for (i, raw) in lines.enumerate() {
            let n = i + first;
            let Some(line) = raw.strip_suffix('\n') else {
                return Err(err(n, "the last line has no newline (truncated?)".into()));
            };
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 6 {
                return Err(err(
                    n,
                    format!("{} fields, want 6: PATH TYPE MODE UID GID DATA", f.len()),
                ));
            }
            let path = if f[0] == "." {
                Vec::new()
            } else {
                match unescape(f[0]) {
                    Some(p) if valid_path(&p) => p,
                    _ => return Err(err(n, format!("bad path {:?}", f[0]))),
                }
            };
            let num = |s: &str, what: &str| -> Result<u32, ConfigError> {
                s.parse::<u32>()
                    .ok()
                    .filter(|_| s == "0" || !s.starts_with('0'))
                    .ok_or_else(|| err(n, format!("bad {what} {s:?}")))
            };
            let mode = u32::from_str_radix(f[2], 8)
                .ok()
                .filter(|m| *m <= 0o7777 && f[2].len() == 4)
                .ok_or_else(|| err(n, format!("bad mode {:?} (4 octal digits)", f[2])))?;
            let (uid, gid) = (num(f[3], "uid")?, num(f[4], "gid")?);
            let pair = |s: &str| -> Result<(u32, u32), ConfigError> {
                let (a, b) = s
                    .split_once(':')
                    .ok_or_else(|| err(n, format!("bad data {s:?}")))?;
                Ok((num(a, "major")?, num(b, "minor")?))
            };
            let kind = match f[1] {
                "d" | "p" if f[5] != "-" => {
                    return Err(err(n, format!("bad data {:?} (want -)", f[5])))
                }
                "d" => Kind::Dir,
                "p" => Kind::Fifo,
                "f" => {
                    let (size, hash) = f[5]
                        .split_once(':')
                        .ok_or_else(|| err(n, format!("bad data {:?} (want SIZE:SHA256)", f[5])))?;
                    let size = size
                        .parse::<u64>()
                        .ok()
                        .filter(|_| size == "0" || !size.starts_with('0'))
                        .ok_or_else(|| err(n, format!("bad size {size:?}")))?;
                    let sha256 =
                        parse_hex32(hash).ok_or_else(|| err(n, format!("bad sha256 {hash:?}")))?;
                    Kind::File { size, sha256 }
                }
                "l" => match unescape(f[5]) {
                    Some(t) if !t.is_empty() && t.len() < 4096 => Kind::Symlink(t),
                    _ => return Err(err(n, format!("bad symlink target {:?}", f[5]))),
                },
                "c" => {
                    let (major, minor) = pair(f[5])?;
                    Kind::Char { major, minor }
                }
                "b" => {
                    let (major, minor) = pair(f[5])?;
                    Kind::Block { major, minor }
                }
                t => return Err(err(n, format!("bad type {t:?} (d, f, l, c, b or p)"))),
            };
            if matches!(kind, Kind::Symlink(_)) && mode != 0o777 {
                return Err(err(n, "a symlink's mode is 0777".into()));
            }
            let e = Entry {
                path,
                kind,
                mode,
                uid,
                gid,
            };
            match entries.last() {
                None if !e.path.is_empty() || e.kind != Kind::Dir => {
                    return Err(err(n, "the first entry must be the top, `. d …`".into()))
                }
                Some(prev) if path_order(&prev.path, &e.path) != Ordering::Less => {
                    return Err(err(
                        n,
                        format!(
                            "{} is out of order or repeated (entries are sorted by path)",
                            e.shown()
                        ),
                    ))
                }
                _ => {}
            }
            if let Some(parent) = e.parent() {
                while open_dirs.last().is_some_and(|d| d.as_slice() != parent) {
                    open_dirs.pop();
                }
                if open_dirs.is_empty() {
                    return Err(err(
                        n,
                        format!("{}: its directory is not in the manifest", e.shown()),
                    ));
                }
            }
            if e.kind == Kind::Dir {
                open_dirs.push(e.path.clone());
            }
            // A closure's own directories are the image's: plain and root's.
            let synthetic = closure && (e.path == b"nix" || e.path == STORE_IN_TREE);
            if synthetic && (e.kind != Kind::Dir || e.mode != 0o755 || e.uid != 0 || e.gid != 0) {
                return Err(err(
                    n,
                    format!("{}: in a closure it is `d 0755 0 0`", e.shown()),
                ));
            }
            if closure
                && e.path.starts_with(b"nix/")
                && !synthetic
                && !e.path.starts_with(b"nix/store/")
            {
                return Err(err(
                    n,
                    format!("{}: a closure's nix/ holds only store/", e.shown()),
                ));
            }
            entries.push(e);
        }
        if entries.is_empty() {
            return Err(ConfigError::new(flag, "the manifest has no entries"));
        }
        Ok(Manifest { entries, closure })
    }

    /// Each entry's parent (the top is its own) and each directory's children, by index.
    /// Entries whose directory is missing (only in a manifest not from [`Manifest::parse`])
    /// are an error naming them.
    pub fn tree(&self) -> Result<(Vec<usize>, Vec<Vec<usize>>), String> {
        let n = self.entries.len();
        let mut parent = vec![0usize; n];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut stack: Vec<usize> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(p) = e.parent() {
                while stack
                    .last()
                    .is_some_and(|&d| self.entries[d].path.as_slice() != p)
                {
                    stack.pop();
                }
                let Some(&d) = stack.last() else {
                    return Err(format!(
                        "{}: its directory is not in the manifest",
                        e.shown()
                    ));
                };
                parent[i] = d;
                children[d].push(i);
            }
            if e.kind == Kind::Dir {
                stack.push(i);
            }
        }
        Ok((parent, children))
    }

    /// Bytes of file content the manifest describes.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                Kind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The store paths a closure file names: a list (one path per line), or the references graph
/// Nix's `exportReferencesGraph` writes (blocks of: path, deriver or empty, reference count,
/// the references).
pub fn closure_paths(text: &str) -> Result<Vec<PathBuf>, String> {
    let store = format!("{STORE_ON_HOST}/");
    let lines: Vec<&str> = text.lines().collect();
    let is_path = |l: &str| {
        l.strip_prefix(&store)
            .is_some_and(|n| !n.is_empty() && !n.contains('/') && valid_path(n.as_bytes()))
    };
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: &str| {
        if !out.iter().any(|o| o.as_os_str() == p) {
            out.push(PathBuf::from(p));
        }
    };
    if lines.iter().all(|l| l.is_empty() || is_path(l)) {
        lines.iter().filter(|l| !l.is_empty()).for_each(|l| add(l));
    } else {
        let mut i = 0;
        while i < lines.len() {
            let (Some(path), Some(_deriver), Some(n)) =
                (lines.get(i), lines.get(i + 1), lines.get(i + 2))
            else {
                return Err(format!("line {}: a truncated references graph", i + 1));
            };
            let n: usize = n
                .parse()
                .map_err(|_| format!("line {}: {n:?} is not a reference count", i + 3))?;
            if !is_path(path) {
                return Err(format!("line {}: {path:?} is not a store path", i + 1));
            }
            add(path);
            if lines.len() < i + 3 + n {
                return Err(format!("line {}: a truncated references graph", i + 3));
            }
            for r in lines.iter().skip(i + 3).take(n) {
                if !is_path(r) {
                    return Err(format!("{r:?} is not a store path"));
                }
                add(r);
            }
            i += 3 + n;
        }
    }
    if out.is_empty() {
        return Err("no store paths".into());
    }
    Ok(out)
}

/// A `--rootfs-sha256` pin: 64 lowercase hex digits (a `sha256:` prefix allowed).
pub fn parse_pin(flag: &str, pin: &str) -> Result<String, ConfigError> {
    let want = pin.trim().to_ascii_lowercase();
    let want = want.strip_prefix("sha256:").unwrap_or(&want).to_string();
    if parse_hex32(&want).is_none() {
        return Err(ConfigError::new(
            flag,
            format!(
                "{:?}: give 64 hex digits (the digest `nucleus rootfs manifest` printed)",
                crate::config::single_line(pin)
            ),
        ));
    }
    Ok(want)
}

/// How a tree differs from its manifest: the first difference found, naming the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Missing,
    Added,
    Kind {
        want: &'static str,
        have: &'static str,
    },
    Mode {
        want: u32,
        have: u32,
    },
    Owner {
        want: (u32, u32),
        have: (u32, u32),
    },
    Size {
        want: u64,
        have: u64,
    },
    Content,
    Target,
    Device,
}

impl Mismatch {
    /// The one line a refused start prints.
    pub fn line(&self, path: &[u8]) -> String {
        let p = shown(path);
        match self {
            Mismatch::Missing => format!("{p}: missing (the manifest lists it)"),
            Mismatch::Added => format!("{p}: not in the manifest (added)"),
            Mismatch::Kind { want, have } => format!("{p}: is {have}, the manifest says {want}"),
            Mismatch::Mode { want, have } => {
                format!("{p}: mode {have:04o}, the manifest says {want:04o}")
            }
            Mismatch::Owner { want, have } => format!(
                "{p}: owner {}:{}, the manifest says {}:{}",
                have.0, have.1, want.0, want.1
            ),
            Mismatch::Size { want, have } => {
                format!("{p}: {have} bytes, the manifest says {want} (content changed)")
            }
            Mismatch::Content => format!("{p}: content differs from the manifest (tampered)"),
            Mismatch::Target => format!("{p}: symlink target differs from the manifest"),
            Mismatch::Device => format!("{p}: device number differs from the manifest"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Manifest {
        let e = |p: &str, kind: Kind, mode: u32| Entry {
            path: p.as_bytes().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        };
        Manifest {
            closure: false,
            entries: vec![
                e("", Kind::Dir, 0o755),
                e("a", Kind::Dir, 0o755),
                e(
                    "a/b c",
                    Kind::File {
                        size: 3,
                        sha256: [7; 32],
                    },
                    0o644,
                ),
                e("a-b", Kind::Symlink(b"a/b c".to_vec()), 0o777),
                e("dev", Kind::Dir, 0o755),
                e("dev/null", Kind::Char { major: 1, minor: 3 }, 0o666),
                e("p%", Kind::Fifo, 0o600),
            ],
        }
    }

    #[test]
    fn render_parse_round_trip() {
        let m = sample();
        let t = m.render();
        assert!(t.contains("a/b%20c f 0644 0 0 3:0707"), "{t}");
        assert!(t.contains("a-b l 0777 0 0 a/b%20c\n"), "{t}");
        assert!(t.contains("p%25 p 0600 0 0 -\n"), "{t}");
        assert_eq!(Manifest::parse("m", t.as_bytes()).unwrap(), m);
    }

    #[test]
    fn closures_say_so_and_keep_their_store_plain() {
        let mut m = sample();
        m.closure = true;
        let d = |p: &str| Entry {
            path: p.as_bytes().to_vec(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        m.entries.insert(5, d("nix"));
        m.entries.insert(6, d("nix/store"));
        m.entries.insert(7, d("nix/store/abc-x"));
        m.sort();
        let t = m.render();
        assert!(
            t.starts_with("nucleus-rootfs-manifest 1\nnix-closure\n. d"),
            "{t}"
        );
        assert_eq!(Manifest::parse("m", t.as_bytes()).unwrap(), m);
        assert_eq!(m.source(b"nix/store"), Source::Synthetic);
        assert_eq!(
            m.source(b"nix/store/abc-x/bin"),
            Source::Store(b"abc-x/bin")
        );
        assert_eq!(m.source(b"bin"), Source::Tree);
        let bad = t.replace("nix/store d 0755", "nix/store d 1775");
        let e = Manifest::parse("m", bad.as_bytes()).unwrap_err();
        assert!(
            e.message
                .contains("nix/store: in a closure it is `d 0755 0 0`"),
            "{}",
            e.message
        );
        let bad = t.replace(
            "nix/store d 0755 0 0 -\n",
            "nix/store d 0755 0 0 -\nnix/store2 d 0755 0 0 -\n",
        );
        assert!(Manifest::parse("m", bad.as_bytes()).is_err());
    }

    #[test]
    fn closures_from_lists_and_references_graphs() {
        let a = "/nix/store/aaa-x";
        let b = "/nix/store/bbb-y";
        assert_eq!(
            closure_paths(&format!("{a}\n{b}\n")).unwrap(),
            [PathBuf::from(a), PathBuf::from(b)]
        );
        let graph = format!("{a}\n/nix/store/ddd-x.drv\n1\n{b}\n{b}\n\n0\n");
        assert_eq!(
            closure_paths(&graph).unwrap(),
            [PathBuf::from(a), PathBuf::from(b)]
        );
        assert!(closure_paths(&format!("{a}\n\n2\n{b}\n")).is_err());
        assert!(closure_paths("/etc/passwd\n").is_err());
        assert!(closure_paths(&format!("{a}/bin\n")).is_err());
    }

    #[test]
    fn order_is_by_component() {
        let mut v: Vec<&[u8]> = vec![b"a-b", b"a/b", b"a", b"a/b/c", b"ab"];
        v.sort_by(|a, b| path_order(a, b));
        assert_eq!(v, vec![&b"a"[..], b"a/b", b"a/b/c", b"a-b", b"ab"]);
    }

    #[test]
    fn malformed_manifests_name_the_line() {
        let good = sample().render();
        let cases: Vec<(String, &str)> = vec![
            ("hello\n".into(), "first line"),
            (good.replace("a/b%20c f", "a/b%20c x"), "line 4: bad type"),
            (good.replace("0644", "644"), "line 4: bad mode"),
            (good.replace("3:0707", "3:07"), "line 4: bad sha256"),
            (good.replace("3:0707", "03:0707"), "line 4: bad size"),
            (good.replace("a/b%20c f", "a/../x f"), "line 4: bad path"),
            (good.replace("a/b%20c f", "a/b%2fc f"), "line 4: bad path"),
            (good.replace("a/b%20c f", "a/b%41c f"), "line 4: bad path"),
            (good.replace("a-b l 0777", "a/a l 0777"), "out of order"),
            (
                good.replace("dev/null c", "dux/null c"),
                "its directory is not in the manifest",
            ),
            (good.replace("a-b l 0777", "a-b l 0755"), "symlink's mode"),
            (good.trim_end().to_string(), "no newline"),
            (
                good.replace(". d", ". p"),
                "the first entry must be the top",
            ),
            (good.replace("0 0 -\n", "0 0 - x\n"), "7 fields"),
            (format!("{HEADER}\n"), "no entries"),
        ];
        for (text, want) in cases {
            let e = Manifest::parse("--rootfs-manifest", text.as_bytes()).unwrap_err();
            assert_eq!(e.field, "--rootfs-manifest");
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
    }

    #[test]
    fn pins_and_lines() {
        assert_eq!(
            parse_pin("f", &format!("sha256:{}", "AB".repeat(32))).unwrap(),
            "ab".repeat(32)
        );
        assert!(parse_pin("f", "abc")
            .unwrap_err()
            .message
            .contains("64 hex"));
        assert_eq!(
            Mismatch::Content.line(b"usr/bin/x"),
            "usr/bin/x: content differs from the manifest (tampered)"
        );
        assert_eq!(
            Mismatch::Added.line(b"a b"),
            "a%20b: not in the manifest (added)"
        );
    }
}
