//! The layout of an uncompressed EROFS image holding exactly a manifest's entries: the
//! superblock, one 64-byte inode per entry (directory and symlink data inline after their
//! inode where it fits), directory blocks, then every file's content in manifest order. The
//! metadata is made here; the content is streamed into its place by whoever reads (and
//! hashes) it. Format: the kernel's `fs/erofs/erofs_fs.h` (blocks of 4 KiB, extended inodes,
//! the flat data layouts; no compression, no extended attributes).

use super::{Kind, Manifest};

pub const BLOCK: u64 = 4096;
const SUPER_OFFSET: usize = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
const INODE: u64 = 64;
const DIRENT: usize = 12;
/// Data layouts (`i_format` bits 1-3).
const FLAT_PLAIN: u16 = 0;
const FLAT_INLINE: u16 = 2;
/// The metadata starts at block 1 (block 0 holds the superblock).
const META_BLKADDR: u64 = 1;

/// The image: its metadata (from offset 0) and where each file's content goes.
#[derive(Debug)]
pub struct Layout {
    pub meta: Vec<u8>,
    /// (entry index, offset in the image) for every regular file with content, in manifest
    /// order (offsets increase).
    pub files: Vec<(usize, u64)>,
    /// The image's length (a multiple of [`BLOCK`]).
    pub len: u64,
}

fn ftype(k: &Kind) -> u8 {
    match k {
        Kind::File { .. } => 1,
        Kind::Dir => 2,
        Kind::Char { .. } => 3,
        Kind::Block { .. } => 4,
        Kind::Fifo => 5,
        Kind::Symlink(_) => 7,
    }
}

fn ifmt(k: &Kind) -> u32 {
    match k {
        Kind::File { .. } => 0o100000,
        Kind::Dir => 0o040000,
        Kind::Char { .. } => 0o020000,
        Kind::Block { .. } => 0o060000,
        Kind::Fifo => 0o010000,
        Kind::Symlink(_) => 0o120000,
    }
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// A directory's entries, packed: for each block, its (name, entry index) list.
struct DirData {
    blocks: Vec<Vec<(Vec<u8>, usize)>>,
    size: u64,
}

fn pack(mut ents: Vec<(Vec<u8>, usize)>) -> DirData {
    ents.sort_by(|a, b| a.0.cmp(&b.0));
    let mut blocks: Vec<Vec<(Vec<u8>, usize)>> = vec![Vec::new()];
    let mut used = 0usize;
    for e in ents {
        let need = DIRENT + e.0.len();
        if used + need > BLOCK as usize {
            blocks.push(Vec::new());
            used = 0;
        }
        used += need;
        if let Some(b) = blocks.last_mut() {
            b.push(e);
        }
    }
    let size = (blocks.len() as u64 - 1) * BLOCK + used as u64;
    DirData { blocks, size }
}

fn dir_bytes(d: &DirData, nids: &[u64], kinds: &[&Kind]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.size as usize);
    let last = d.blocks.len() - 1;
    for (bi, b) in d.blocks.iter().enumerate() {
        let start = out.len();
        let mut nameoff = DIRENT * b.len();
        for (name, idx) in b {
            out.extend_from_slice(&nids[*idx].to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(ftype(kinds[*idx]));
            out.push(0);
            nameoff += name.len();
        }
        for (name, _) in b {
            out.extend_from_slice(name);
        }
        if bi != last {
            out.resize(start + BLOCK as usize, 0);
        }
    }
    out
}

/// How an entry's data is stored.
enum Data {
    None,
    Inline(u64),
    /// Blocks in the data area: their count.
    Plain(u64),
}

/// Lay out the image of `m` (`uuid`: the image's identity, e.g. the manifest digest's first
/// bytes). Errors only for trees beyond the format's limits.
pub fn layout(m: &Manifest, uuid: [u8; 16]) -> Result<Layout, String> {
    let n = m.entries.len();
    let (parent, children) = m.tree()?;
    let dirs: Vec<Option<DirData>> = (0..n)
        .map(|i| {
            (m.entries[i].kind == Kind::Dir).then(|| {
                let mut ents = vec![(b".".to_vec(), i), (b"..".to_vec(), parent[i])];
                ents.extend(
                    children[i]
                        .iter()
                        .map(|&c| (m.entries[c].name().to_vec(), c)),
                );
                pack(ents)
            })
        })
        .collect();
    let inline_max = BLOCK - INODE;
    let data: Vec<Data> = m
        .entries
        .iter()
        .zip(&dirs)
        .map(|(e, d)| {
            let size = match (&e.kind, d) {
                (Kind::Dir, Some(d)) => d.size,
                (Kind::Symlink(t), _) => t.len() as u64,
                (Kind::File { size, .. }, _) => return Data::Plain(size.div_ceil(BLOCK)),
                _ => return Data::None,
            };
            if size <= inline_max {
                Data::Inline(size)
            } else {
                Data::Plain(size.div_ceil(BLOCK))
            }
        })
        .collect();
    // Inodes, each with its inline tail, never across a block boundary.
    let mut nids = vec![0u64; n];
    let mut cur = 0u64;
    for (i, d) in data.iter().enumerate() {
        let isize = INODE
            + match d {
                Data::Inline(s) => *s,
                _ => 0,
            };
        if cur % BLOCK + isize > BLOCK {
            cur = round_up(cur, BLOCK);
        }
        nids[i] = cur / 32;
        cur += round_up(isize, 32);
    }
    if nids[0] != 0 {
        return Err("the top's inode must come first".into());
    }
    let meta_blocks = cur.div_ceil(BLOCK);
    // Data blocks: directories and symlinks first (their bytes are made here), then files.
    let mut next = META_BLKADDR + meta_blocks;
    let mut blkaddr = vec![0u64; n];
    for pass_files in [false, true] {
        for (i, d) in data.iter().enumerate() {
            let is_file = matches!(m.entries[i].kind, Kind::File { .. });
            if let Data::Plain(b) = d {
                if is_file == pass_files && *b > 0 {
                    blkaddr[i] = next;
                    next += b;
                }
            }
        }
    }
    if next > u32::MAX as u64 {
        return Err("the tree is too large for one image (16 TiB)".into());
    }
    let meta_end = data
        .iter()
        .enumerate()
        .filter(|(i, d)| {
            matches!(d, Data::Plain(b) if *b > 0)
                && !matches!(m.entries[*i].kind, Kind::File { .. })
        })
        .map(|(i, d)| match d {
            Data::Plain(b) => (blkaddr[i] + b) * BLOCK,
            _ => 0,
        })
        .max()
        .unwrap_or((META_BLKADDR + meta_blocks) * BLOCK);
    let mut meta = vec![0u8; meta_end as usize];
    let kinds: Vec<&Kind> = m.entries.iter().map(|e| &e.kind).collect();
    let mut files = Vec::new();
    for (i, e) in m.entries.iter().enumerate() {
        let nlink: u32 = match &dirs[i] {
            Some(_) => {
                2 + children[i]
                    .iter()
                    .filter(|&&c| m.entries[c].kind == Kind::Dir)
                    .count() as u32
            }
            None => 1,
        };
        let (size, tail): (u64, Option<Vec<u8>>) = match (&e.kind, &dirs[i]) {
            (Kind::Dir, Some(d)) => (d.size, Some(dir_bytes(d, &nids, &kinds))),
            (Kind::Symlink(t), _) => (t.len() as u64, Some(t.clone())),
            (Kind::File { size, .. }, _) => (*size, None),
            _ => (0, None),
        };
        let layout = match data[i] {
            Data::Inline(_) => FLAT_INLINE,
            _ => FLAT_PLAIN,
        };
        let i_u: u32 = match e.kind {
            Kind::Char { major, minor } | Kind::Block { major, minor } => {
                (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
            }
            _ => blkaddr[i] as u32,
        };
        let at = ((META_BLKADDR * BLOCK) + nids[i] * 32) as usize;
        let ino = &mut meta[at..at + INODE as usize];
        ino[0..2].copy_from_slice(&(1 | (layout << 1)).to_le_bytes());
        ino[4..6].copy_from_slice(&((ifmt(&e.kind) | e.mode) as u16).to_le_bytes());
        ino[8..16].copy_from_slice(&size.to_le_bytes());
        ino[16..20].copy_from_slice(&i_u.to_le_bytes());
        ino[20..24].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        ino[24..28].copy_from_slice(&e.uid.to_le_bytes());
        ino[28..32].copy_from_slice(&e.gid.to_le_bytes());
        ino[32..40].copy_from_slice(&1u64.to_le_bytes());
        ino[44..48].copy_from_slice(&nlink.to_le_bytes());
        match (&data[i], tail) {
            (Data::Inline(_), Some(t)) => {
                let s = at + INODE as usize;
                meta[s..s + t.len()].copy_from_slice(&t);
            }
            (Data::Plain(b), Some(t)) if *b > 0 => {
                let s = (blkaddr[i] * BLOCK) as usize;
                meta[s..s + t.len()].copy_from_slice(&t);
            }
            _ => {}
        }
        if matches!(e.kind, Kind::File { size, .. } if size > 0) {
            files.push((i, blkaddr[i] * BLOCK));
        }
    }
    let sb = &mut meta[SUPER_OFFSET..SUPER_OFFSET + 128];
    sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    sb[12] = 12; // 4 KiB blocks
    sb[14..16].copy_from_slice(&0u16.to_le_bytes()); // the top's nid
    sb[16..24].copy_from_slice(&(n as u64).to_le_bytes());
    sb[36..40].copy_from_slice(&(next as u32).to_le_bytes());
    sb[40..44].copy_from_slice(&(META_BLKADDR as u32).to_le_bytes());
    sb[48..64].copy_from_slice(&uuid);
    sb[64..71].copy_from_slice(b"nucleus");
    Ok(Layout {
        meta,
        files,
        len: next * BLOCK,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Entry;
    use super::*;

    fn entry(p: &str, kind: Kind) -> Entry {
        Entry {
            path: p.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    fn u16at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn u32at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn superblock_root_and_file_places() {
        let mut entries = vec![entry("", Kind::Dir), entry("big", Kind::Dir)];
        // A directory too large for one block: its data goes to plain blocks.
        for i in 0..400 {
            entries.push(entry(
                &format!("big/file-with-a-long-name-{i:04}"),
                Kind::File {
                    size: 5000,
                    sha256: [0; 32],
                },
            ));
        }
        entries.push(entry("ln", Kind::Symlink(b"big".to_vec())));
        let m = Manifest {
            entries,
            closure: false,
        };
        let l = layout(&m, [1; 16]).unwrap();
        let sb = &l.meta[SUPER_OFFSET..];
        assert_eq!(u32at(sb, 0), MAGIC);
        assert_eq!(u32at(sb, 40), 1);
        assert_eq!(l.len % BLOCK, 0);
        assert_eq!(u32at(sb, 36) as u64 * BLOCK, l.len);
        // The top: an extended inode, inline directory, mode 040755.
        let root = &l.meta[4096..4096 + 64];
        assert_eq!(u16at(root, 0), 1 | (FLAT_INLINE << 1));
        assert_eq!(u16at(root, 4), 0o040755);
        assert_eq!(u32at(root, 44), 3);
        // Files: two blocks each, in order, after the metadata.
        assert_eq!(l.files.len(), 400);
        assert!(l.files.windows(2).all(|w| w[1].1 == w[0].1 + 2 * BLOCK));
        assert!(l.files[0].1 >= l.meta.len() as u64);
        assert_eq!(l.files[399].1 + 2 * BLOCK, l.len);
        // The big directory: plain blocks, each starting with its own dirents.
        // (after the top's inode and its inline directory: 64 + 56 bytes, 32-aligned)
        let big = &l.meta[4096 + 128..4096 + 192];
        assert_eq!(u16at(big, 0), 1 | (FLAT_PLAIN << 1));
        let start = u32at(big, 16) as usize * 4096;
        let first_nameoff = u16at(&l.meta, start + 8) as usize;
        assert_eq!(first_nameoff % DIRENT, 0);
        assert_eq!(
            &l.meta[start + first_nameoff..start + first_nameoff + 1],
            b"."
        );
    }

    #[test]
    fn inline_tails_never_cross_a_block() {
        let mut entries = vec![entry("", Kind::Dir)];
        for i in 0..200 {
            entries.push(entry(&format!("l{i:03}"), Kind::Symlink(vec![b'x'; 1000])));
        }
        let l = layout(
            &Manifest {
                entries,
                closure: false,
            },
            [0; 16],
        )
        .unwrap();
        let inodes = &l.meta[4096..];
        let mut off = 64 + round_up(DirData::size_of(200), 32) as usize;
        for _ in 0..200 {
            if off % 4096 + 64 + 1000 > 4096 {
                off = round_up(off as u64, 4096) as usize;
            }
            assert_eq!(u16at(inodes, off + 4), 0o120755);
            assert_eq!(&inodes[off + 64..off + 1064], &[b'x'; 1000][..]);
            off += round_up(1064, 32) as usize;
        }
    }

    impl DirData {
        fn size_of(links: usize) -> u64 {
            let mut ents = vec![(b".".to_vec(), 0), (b"..".to_vec(), 0)];
            ents.extend((0..links).map(|i| (format!("l{i:03}").into_bytes(), 0)));
            pack(ents).size
        }
    }
}
