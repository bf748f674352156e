//! `nucleus cp`: which side is the sandbox's, and where a copy lands (docker cp's rules).

use crate::config::{single_line, ConfigError};

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A host path.
    Host(String),
    /// `ID:PATH`: an absolute path in the sandbox (a relative one is relative to /).
    Sandbox { id: String, path: String },
    /// `-`: a tar stream on standard input or output.
    Stream,
}

impl Side {
    /// `ID:PATH` when `is_sandbox(ID)`, `-`, else a host path (`./a:b` for a host path with a
    /// colon).
    pub fn parse(s: &str, is_sandbox: impl Fn(&str) -> bool) -> Side {
        if s == "-" {
            return Side::Stream;
        }
        match s.split_once(':') {
            Some((id, path)) if !id.is_empty() && !id.contains('/') && is_sandbox(id) => {
                let path = if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("/{path}")
                };
                Side::Sandbox {
                    id: id.to_string(),
                    path,
                }
            }
            _ => Side::Host(s.to_string()),
        }
    }
}

/// What the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    File,
    Dir,
}

/// What is at the destination path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstKind {
    Missing,
    File,
    Dir,
}

/// Where the copy goes: entries are extracted in `dir` (a path on the destination side); the
/// source's top entry is named `name` there, or (`name` None) only its contents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    pub dir: String,
    pub name: Option<String>,
    /// `dir` is made first (a directory copied as a new one, contents only).
    pub make_dir: bool,
}

fn split(path: &str) -> (String, String) {
    let t = path.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some(("", n)) => ("/".to_string(), n.to_string()),
        Some((d, n)) => (d.to_string(), n.to_string()),
        None => (".".to_string(), t.to_string()),
    }
}

/// docker cp's rules: a file to an existing directory lands in it under its name, else as
/// DST (DST with a trailing `/` must be a directory); a directory to an existing directory
/// lands in it under its name (SRC ending in `/.`: its contents do), else it becomes DST.
pub fn landing(
    src: &str,
    src_kind: SrcKind,
    dst: &str,
    dst_kind: DstKind,
) -> Result<Landing, ConfigError> {
    let err = |m: String| ConfigError::new("DST", m);
    let contents = src.ends_with("/.");
    let src_name = split(src.trim_end_matches("/.")).1;
    let slash = dst.ends_with('/');
    match (src_kind, dst_kind) {
        (SrcKind::File, DstKind::Dir) => Ok(Landing {
            dir: dst.to_string(),
            name: Some(src_name),
            make_dir: false,
        }),
        (SrcKind::File, _) if slash => Err(err(format!(
            "{}: not a directory (a file copied to DST/ needs DST to exist)",
            single_line(dst)
        ))),
        (SrcKind::File, _) => {
            let (dir, name) = split(dst);
            Ok(Landing {
                dir,
                name: Some(name),
                make_dir: false,
            })
        }
        (SrcKind::Dir, DstKind::File) => Err(err(format!(
            "{}: a file; a directory cannot be copied over it",
            single_line(dst)
        ))),
        (SrcKind::Dir, DstKind::Dir) if contents => Ok(Landing {
            dir: dst.to_string(),
            name: None,
            make_dir: false,
        }),
        (SrcKind::Dir, DstKind::Dir) => Ok(Landing {
            dir: dst.to_string(),
            name: Some(src_name),
            make_dir: false,
        }),
        (SrcKind::Dir, DstKind::Missing) => Ok(Landing {
            dir: dst.trim_end_matches('/').to_string(),
            name: None,
            make_dir: true,
        }),
    }
}

/// A name the copy may give an entry: relative components only, never `..`.
pub fn entry_ok(path: &[u8]) -> bool {
    !path.is_empty()
        && !path.starts_with(b"/")
        && !path.contains(&0)
        && !path.split(|&b| b == b'/').any(|c| c == b"..")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sides() {
        let is = |id: &str| id == "web";
        assert_eq!(
            Side::parse("web:/etc/hosts", is),
            Side::Sandbox {
                id: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(
            Side::parse("web:tmp", is),
            Side::Sandbox {
                id: "web".into(),
                path: "/tmp".into()
            }
        );
        assert_eq!(Side::parse("other:/x", is), Side::Host("other:/x".into()));
        assert_eq!(Side::parse("./web:/x", is), Side::Host("./web:/x".into()));
        assert_eq!(Side::parse("-", is), Side::Stream);
    }

    #[test]
    fn docker_cp_rules() {
        let l = |src, sk, dst, dk| landing(src, sk, dst, dk);
        assert_eq!(
            l("/a/f", SrcKind::File, "/d", DstKind::Dir).unwrap(),
            Landing {
                dir: "/d".into(),
                name: Some("f".into()),
                make_dir: false
            }
        );
        assert_eq!(
            l("/a/f", SrcKind::File, "/d/g", DstKind::Missing).unwrap(),
            Landing {
                dir: "/d".into(),
                name: Some("g".into()),
                make_dir: false
            }
        );
        assert!(l("/a/f", SrcKind::File, "/d/g/", DstKind::Missing).is_err());
        assert_eq!(
            l("/a/src", SrcKind::Dir, "/d", DstKind::Dir).unwrap(),
            Landing {
                dir: "/d".into(),
                name: Some("src".into()),
                make_dir: false
            }
        );
        assert_eq!(
            l("/a/src/.", SrcKind::Dir, "/d", DstKind::Dir).unwrap(),
            Landing {
                dir: "/d".into(),
                name: None,
                make_dir: false
            }
        );
        assert_eq!(
            l("/a/src", SrcKind::Dir, "/d/new/", DstKind::Missing).unwrap(),
            Landing {
                dir: "/d/new".into(),
                name: None,
                make_dir: true
            }
        );
        assert!(l("/a/src", SrcKind::Dir, "/d/f", DstKind::File).is_err());
        assert_eq!(
            l("f", SrcKind::File, "g", DstKind::Missing).unwrap(),
            Landing {
                dir: ".".into(),
                name: Some("g".into()),
                make_dir: false
            }
        );
    }

    #[test]
    fn entries() {
        assert!(entry_ok(b"a/b"));
        assert!(entry_ok(b"./a"));
        assert!(!entry_ok(b"../a"));
        assert!(!entry_ok(b"a/../../b"));
        assert!(!entry_ok(b"/etc/passwd"));
        assert!(!entry_ok(b""));
    }
}
