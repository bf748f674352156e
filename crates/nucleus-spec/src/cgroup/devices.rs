//! Device rules for cgroup v2, where there is no `devices` controller: the kernel asks a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup about every open and mknod of a
//! device node. The program is compiled here from the same ordered v1 rule lines
//! (`devices.allow` / `devices.deny`, `c 1:3 rwm`) nucleus writes on v1, with v1's meaning:
//! the last rule that matches decides, nothing matching denies. A rule matches a request when
//! the type matches (`a`: any), major and minor match (`*`: any) and the request's access is
//! within the rule's (as runc's, crun's and youki's programs decide).

use serde::{Deserialize, Serialize};

/// One eBPF instruction, as `struct bpf_insn` packs it into 8 bytes (little-endian): code,
/// dst and src registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfInsn {
    pub code: u8,
    /// dst_reg (low nibble) and src_reg (high nibble).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
}

// Opcodes (linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is
// (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
/// rwm: a rule naming every access needs no access test.
const ACC_ALL: i32 = ACC_READ | ACC_WRITE | ACC_MKNOD;

/// A parsed rule line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// None: any type (`a`).
    kind: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
}

/// `rwm` letters as the program's access bits; None for any other letter.
fn access_bits(access: &str) -> Option<i32> {
    access.chars().try_fold(0, |acc, c| {
        Some(
            acc | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return None,
            },
        )
    })
}

fn parse(file: &str, line: &str) -> Result<Rule, String> {
    let allow = match file {
        "devices.allow" => true,
        "devices.deny" => false,
        f => return Err(format!("{f}: not a device rule file")),
    };
    let bad = || format!("{line:?}: not a device rule (TYPE MAJOR:MINOR ACCESS)");
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (kind, numbers, access) = match parts.as_slice() {
        ["a"] => ("a", "*:*", "rwm"),
        [k, n, a] => (*k, *n, *a),
        _ => return Err(bad()),
    };
    let kind = match kind {
        "a" => None,
        "c" => Some(DEV_CHAR),
        "b" => Some(DEV_BLOCK),
        _ => return Err(bad()),
    };
    let (ma, mi) = numbers.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| match s {
        "*" => Ok(None),
        n => n.parse::<u32>().map(Some).map_err(|_| bad()),
    };
    let acc = access_bits(access).filter(|a| *a != 0).ok_or_else(bad)?;
    Ok(Rule {
        allow,
        kind,
        major: num(ma)?,
        minor: num(mi)?,
        access: acc,
    })
}

/// The program of ordered (file, line) rules. Registers: r2 the type, r3 the access, r4 the
/// major, r5 the minor; each rule, last first, is a block that jumps past itself on the
/// first field that does not match and otherwise returns its verdict.
pub fn device_program(rules: &[(String, String)]) -> Result<Vec<BpfInsn>, String> {
    let rules: Vec<Rule> = rules
        .iter()
        .map(|(f, l)| parse(f, l))
        .collect::<Result<_, _>>()?;
    let mut p = vec![
        BpfInsn::new(LDX_MEM_W, 2, 1, 0, 0),    // r2 = ctx->access_type
        BpfInsn::new(MOV64_X, 3, 2, 0, 0),      // r3 = r2
        BpfInsn::new(AND32_K, 2, 0, 0, 0xffff), // r2 = type
        BpfInsn::new(RSH32_K, 3, 0, 0, 16),     // r3 = access
        BpfInsn::new(LDX_MEM_W, 4, 1, 4, 0),    // r4 = ctx->major
        BpfInsn::new(LDX_MEM_W, 5, 1, 8, 0),    // r5 = ctx->minor
    ];
    for r in rules.iter().rev() {
        // Tests, each `if (field != want) goto next`, with `next` filled in below.
        let mut block: Vec<BpfInsn> = Vec::new();
        if let Some(k) = r.kind {
            block.push(BpfInsn::new(JNE_K, 2, 0, 0, k));
        }
        if r.access != ACC_ALL {
            // r1 = access & ~rule's: nonzero when the request wants more than the rule names.
            block.push(BpfInsn::new(MOV64_X, 1, 3, 0, 0));
            block.push(BpfInsn::new(AND32_K, 1, 0, 0, !r.access & ACC_ALL));
            block.push(BpfInsn::new(JNE_K, 1, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(BpfInsn::new(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(BpfInsn::new(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(BpfInsn::new(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        block.push(BpfInsn::new(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == JNE_K {
                // To the first instruction after this block.
                insn.off = (len - i - 1) as i16;
            }
        }
        let matches_all = len == 2;
        p.extend(block);
        if matches_all {
            // Nothing after it is reached (the kernel's verifier refuses unreachable code).
            return Ok(p);
        }
    }
    p.push(BpfInsn::new(MOV64_K, 0, 0, 0, 0));
    p.push(BpfInsn::new(EXIT, 0, 0, 0, 0));
    Ok(p)
}

/// Run a device program as the kernel would (the instructions this compiler emits only): the
/// test oracle, and a check that every jump lands inside the program.
pub fn run(prog: &[BpfInsn], kind: char, major: u32, minor: u32, access: &str) -> Option<bool> {
    let ty = match kind {
        'c' => DEV_CHAR,
        'b' => DEV_BLOCK,
        _ => return None,
    };
    let acc = access_bits(access)?;
    let ctx = [((acc << 16) | ty) as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog.get(pc)?;
        let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
        match i.code {
            LDX_MEM_W if src == 1 => r[dst] = u64::from(*ctx.get(i.off as usize / 4)?),
            MOV64_X => r[dst] = r[src],
            MOV64_K => r[dst] = i.imm as i64 as u64,
            AND32_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
            RSH32_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
            JNE_K => {
                if r[dst] != i.imm as i64 as u64 {
                    pc += i.off as usize;
                }
            }
            EXIT => return Some(r[0] == 1),
            _ => return None,
        }
        pc += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, l)| (f.to_string(), l.to_string()))
            .collect()
    }

    #[test]
    fn the_last_matching_rule_decides_and_nothing_matching_denies() {
        // runc's default list: deny all, then the usual devices, a terminal range, and one
        // device denied again after an allow of its whole class.
        let p = device_program(&rules(&[
            ("devices.deny", "a *:* rwm"),
            ("devices.allow", "c 1:3 rwm"),
            ("devices.allow", "c 136:* rw"),
            ("devices.allow", "c 10:* rwm"),
            ("devices.deny", "c 10:229 rwm"),
            ("devices.allow", "b 8:0 r"),
        ]))
        .unwrap();
        let ask = |k, ma, mi, a| run(&p, k, ma, mi, a).unwrap();
        assert!(ask('c', 1, 3, "rw"));
        assert!(ask('c', 1, 3, "m"));
        assert!(!ask('c', 1, 5, "r"), "not allowed: /dev/zero");
        assert!(ask('c', 136, 7, "rw"));
        assert!(!ask('c', 136, 7, "m"), "mknod is not in the rule");
        assert!(ask('c', 10, 200, "rwm"));
        assert!(
            !ask('c', 10, 229, "r"),
            "denied after its class was allowed"
        );
        assert!(ask('b', 8, 0, "r"));
        assert!(!ask('b', 8, 0, "w"));
        assert!(!ask('c', 8, 0, "r"), "a char device is not the block one");
        // A failed test jumps exactly to the next rule's first test: a char device 8:0 fails
        // the later rule (c 1:3) on its major, and must then fail the block device rule on
        // its type (a jump one too far would skip that test and allow it).
        let p2 = device_program(&rules(&[
            ("devices.allow", "b 8:0 r"),
            ("devices.allow", "c 1:3 rwm"),
        ]))
        .unwrap();
        assert_eq!(run(&p2, 'c', 8, 0, "r"), Some(false));
        assert_eq!(run(&p2, 'b', 8, 0, "r"), Some(true));
        // Nothing at all: everything denied.
        let none = device_program(&[]).unwrap();
        assert_eq!(run(&none, 'c', 1, 3, "r"), Some(false));
        // Allow all.
        let all = device_program(&rules(&[("devices.allow", "a *:* rwm")])).unwrap();
        assert_eq!(run(&all, 'b', 259, 1, "rwm"), Some(true));
        // A rule that matches everything ends the program: nothing after it is unreachable
        // code (the kernel's verifier refuses that).
        let p = device_program(&rules(&[
            ("devices.deny", "a *:* rwm"),
            ("devices.allow", "c 1:3 r"),
        ]))
        .unwrap();
        assert_eq!(p.last().map(|i| i.code), Some(EXIT));
        assert_eq!(p.iter().filter(|i| i.code == EXIT).count(), 2);
    }

    #[test]
    fn bad_rule_lines_are_refused() {
        for l in ["x 1:3 rwm", "c 1 rwm", "c 1:3 rwx", "c 1:3 ", "c a:3 r"] {
            assert!(
                device_program(&rules(&[("devices.allow", l)])).is_err(),
                "{l}"
            );
        }
        assert!(device_program(&rules(&[("devices.list", "a")])).is_err());
    }
}
