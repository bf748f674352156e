//! Classic BPF for seccomp: compiler from [`Filter`] and (for tests) an interpreter.

use super::{Action, ArgCond, ArgWidth, CmpOp, Filter, Rule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `struct sock_filter`, laid out as the kernel expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Serde for a program as one hex string, 16 digits per instruction (the kernel's layout,
/// little-endian). A record's plan.json carries ~300 instructions, which as JSON objects cost
/// more to write than the rest of the plan together (callgrind: 0.36 M of 0.57 M
/// instructions). Reads the older list-of-objects form too (records of running sandboxes).
pub mod hex {
    use super::SockFilter;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &[SockFilter], s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(p.len() * 16);
        for i in p {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&i.code.to_le_bytes());
            b[2] = i.jt;
            b[3] = i.jf;
            b[4..].copy_from_slice(&i.k.to_le_bytes());
            for x in b {
                out.push(DIGITS[usize::from(x >> 4)] as char);
                out.push(DIGITS[usize::from(x & 15)] as char);
            }
        }
        s.serialize_str(&out)
    }

    /// The hex form back into instructions; None unless it is whole instructions of hex digits.
    pub fn parse(s: &str) -> Option<Vec<SockFilter>> {
        let s = s.as_bytes();
        if !s.len().is_multiple_of(16) {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        s.chunks(16)
            .map(|c| {
                let mut b = [0u8; 8];
                for (i, pair) in c.chunks(2).enumerate() {
                    b[i] = digit(pair[0])? << 4 | digit(pair[1])?;
                }
                Some(SockFilter {
                    code: u16::from_le_bytes([b[0], b[1]]),
                    jt: b[2],
                    jf: b[3],
                    k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                })
            })
            .collect()
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Hex(String),
        List(Vec<SockFilter>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SockFilter>, D::Error> {
        match Form::deserialize(d)? {
            Form::List(v) => Ok(v),
            Form::Hex(s) => parse(&s).ok_or_else(|| {
                serde::de::Error::custom("a BPF program: 16 hex digits per instruction")
            }),
        }
    }
}

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// x32 syscalls carry this bit in their number on x86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub fn native_arch() -> u32 {
    if cfg!(target_arch = "aarch64") {
        AUDIT_ARCH_AARCH64
    } else {
        AUDIT_ARCH_X86_64
    }
}

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}
fn ret(a: Action) -> SockFilter {
    stmt(BPF_RET | BPF_K, a.ret_value())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("seccomp rule for syscall {nr}: argument index {index} is out of range (0..=5)")]
    ArgIndex { nr: u32, index: u8 },
    #[error("seccomp rules for syscall {nr} are too long to compile ({len} instructions)")]
    TooLong { nr: u32, len: usize },
    #[error("seccomp program has {0} instructions; the kernel accepts at most 4096")]
    ProgramTooLong(usize),
}

/// One condition, as a block that falls through when it holds and jumps `fail` (relative to its
/// end) when it does not. Returns instructions whose jumps to the failure target are encoded as
/// offsets computed by the caller via `fail_at_end`: every instruction that can fail jumps to
/// the instruction right after the block + `fail_skip`.
fn cond_block(c: &ArgCond, fail_skip: usize) -> Result<Vec<SockFilter>, CompileError> {
    let lo_off = OFF_ARGS + 8 * u32::from(c.index);
    let hi_off = lo_off + 4;
    let v_lo = c.value as u32;
    let v_hi = (c.value >> 32) as u32;
    // Each variant builds a list of (instruction, is_fail_jump_target_in_jt/jf) pieces. We build
    // them back to front so the jump distances are known.
    let mut out: Vec<SockFilter> = Vec::new();
    // helper: distance from instruction at position `pos` (0-based within block of `len`) to
    // the fail target (block end + fail_skip).
    let to_fail = |pos: usize, len: usize| -> Result<u8, CompileError> {
        let d = len - pos - 1 + fail_skip;
        u8::try_from(d).map_err(|_| CompileError::TooLong { nr: 0, len: d })
    };
    let full = c.width == ArgWidth::U64;
    match c.op {
        CmpOp::Eq | CmpOp::Ne | CmpOp::MaskedEq(_) => {
            let (m_lo, m_hi) = match c.op {
                CmpOp::MaskedEq(m) => (m as u32, (m >> 32) as u32),
                _ => (u32::MAX, u32::MAX),
            };
            // Layout (U64): ld hi; [and m_hi]; jeq v_hi; ld lo; [and m_lo]; jeq v_lo
            let mut parts: Vec<(SockFilter, bool)> = Vec::new(); // bool: is the compare
            if full {
                parts.push((stmt(BPF_LD | BPF_W | BPF_ABS, hi_off), false));
                if m_hi != u32::MAX {
                    parts.push((stmt(BPF_ALU | BPF_AND | BPF_K, m_hi), false));
                }
                parts.push((jump(BPF_JMP | BPF_JEQ | BPF_K, v_hi & m_hi, 0, 0), true));
            }
            parts.push((stmt(BPF_LD | BPF_W | BPF_ABS, lo_off), false));
            if m_lo != u32::MAX {
                parts.push((stmt(BPF_ALU | BPF_AND | BPF_K, m_lo), false));
            }
            parts.push((jump(BPF_JMP | BPF_JEQ | BPF_K, v_lo & m_lo, 0, 0), true));
            let len = parts.len();
            let last_cmp = parts.iter().rposition(|p| p.1).unwrap_or(0);
            for (pos, (mut ins, is_cmp)) in parts.into_iter().enumerate() {
                if is_cmp {
                    let fail = to_fail(pos, len)?;
                    if matches!(c.op, CmpOp::Ne) {
                        // Ne holds when any half differs: a differing half jumps to "holds"
                        // (the end of the block); the last equal half means "fails".
                        if pos == last_cmp {
                            ins.jt = fail;
                            ins.jf = 0;
                        } else {
                            ins.jt = 0;
                            ins.jf = u8::try_from(len - pos - 1)
                                .map_err(|_| CompileError::TooLong { nr: 0, len })?;
                        }
                    } else {
                        ins.jt = 0;
                        ins.jf = fail;
                    }
                }
                out.push(ins);
            }
        }
        CmpOp::Gt | CmpOp::Ge | CmpOp::Lt | CmpOp::Le => {
            // For a > b on 64 bits: hi > v_hi -> true; hi < v_hi (i.e. !(hi >= v_hi)) -> false;
            // equal -> compare lo. Lt/Le are the negations of Ge/Gt.
            let (jop, negate) = match c.op {
                CmpOp::Gt => (BPF_JGT, false),
                CmpOp::Ge => (BPF_JGE, false),
                CmpOp::Lt => (BPF_JGE, true),
                _ => (BPF_JGT, true), // Le
            };
            let mut parts: Vec<SockFilter> = Vec::new();
            if full {
                // ld hi; jgt v_hi -> hi_greater; jeq v_hi -> (continue) else hi_less; ld lo; jop v_lo
                parts.push(stmt(BPF_LD | BPF_W | BPF_ABS, hi_off));
                parts.push(jump(BPF_JMP | BPF_JGT | BPF_K, v_hi, 0, 0)); // pos 1
                parts.push(jump(BPF_JMP | BPF_JEQ | BPF_K, v_hi, 0, 0)); // pos 2
            }
            parts.push(stmt(BPF_LD | BPF_W | BPF_ABS, lo_off));
            parts.push(jump(BPF_JMP | jop | BPF_K, v_lo, 0, 0));
            let len = parts.len();
            let hold = |pos: usize| {
                u8::try_from(len - pos - 1).map_err(|_| CompileError::TooLong { nr: 0, len })
            };
            for (pos, mut ins) in parts.into_iter().enumerate() {
                let is_jump = ins.code & 0x07 == BPF_JMP;
                if is_jump {
                    let fail = to_fail(pos, len)?;
                    let holds = hold(pos)?;
                    if full && pos == 1 {
                        // hi > v_hi: the comparison is true for Gt/Ge, false for Lt/Le
                        if negate {
                            ins.jt = fail
                        } else {
                            ins.jt = holds
                        }
                        ins.jf = 0;
                    } else if full && pos == 2 {
                        // not equal here means hi < v_hi: false for Gt/Ge, true for Lt/Le
                        ins.jt = 0;
                        ins.jf = if negate { holds } else { fail };
                    } else if negate {
                        ins.jt = fail;
                        ins.jf = 0;
                    } else {
                        ins.jt = 0;
                        ins.jf = fail;
                    }
                }
                out.push(ins);
            }
        }
    }
    Ok(out)
}

/// Rules of one syscall: each rule's conditions, then its RET; a failing condition skips to the
/// next rule; after the last rule, the default action.
fn syscall_block(
    nr: u32,
    rules: &[&Rule],
    default: Action,
) -> Result<Vec<SockFilter>, CompileError> {
    let mut out = Vec::new();
    for r in rules {
        if r.conds.is_empty() {
            out.push(ret(r.action));
            return Ok(out); // later rules are unreachable
        }
        // Build conditions back to front knowing how far the rule's end (its RET) is.
        let mut conds: Vec<Vec<SockFilter>> = Vec::new();
        let mut after = 1usize; // instructions after this cond until the next rule: the RET
        for c in r.conds.iter().rev() {
            if c.index > 5 {
                return Err(CompileError::ArgIndex { nr, index: c.index });
            }
            // failing jumps land on the first instruction of the next rule: skip the rest of
            // this rule (`after` instructions) from the end of this block.
            let b = cond_block(c, after).map_err(|_| CompileError::TooLong { nr, len: after })?;
            after += b.len();
            conds.push(b);
        }
        for b in conds.into_iter().rev() {
            out.extend(b);
        }
        out.push(ret(r.action));
    }
    out.push(ret(default));
    Ok(out)
}

/// Compile a filter to a BPF program for the native architecture.
pub fn compile(f: &Filter) -> Result<Vec<SockFilter>, CompileError> {
    compile_for(f, native_arch())
}

pub fn compile_for(f: &Filter, arch: u32) -> Result<Vec<SockFilter>, CompileError> {
    let mut by_nr: BTreeMap<u32, Vec<&Rule>> = BTreeMap::new();
    for r in &f.rules {
        by_nr.entry(r.nr).or_default().push(r);
    }
    // Conditional rules before an unconditional one for the same syscall.
    for v in by_nr.values_mut() {
        v.sort_by_key(|r| r.conds.is_empty());
    }
    let mut prog = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        ret(Action::KillProcess),
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
    ];
    if arch == AUDIT_ARCH_X86_64 {
        // x32 ABI numbers share the arch value; refuse them like any other foreign ABI.
        prog.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(ret(Action::Errno(libc_enosys())));
    }
    // Every path through a block ends in RET, so the accumulator (clobbered by argument loads)
    // never needs the syscall number again after it.
    let mut blocks = Vec::with_capacity(by_nr.len());
    for (nr, rules) in &by_nr {
        blocks.push((*nr, syscall_block(*nr, rules, f.default_action)?));
    }
    // A binary search on the number over ranges of numbers that decide alike: a syscall is
    // found in ~7 comparisons, and the program is small (the default filter: ~960 instructions
    // as one compare per listed syscall, ~230 as ranges). Installing costs in proportion to
    // the length (the kernel checks, converts and JIT-compiles it, then runs it once per
    // number for its per-syscall action cache), and every run installs it.
    let segs = segments(blocks, f.default_action);
    prog.extend(search(&segs));
    if prog.len() > 4096 {
        return Err(CompileError::ProgramTooLong(prog.len()));
    }
    Ok(prog)
}

/// The numbers 0..=u32::MAX as ranges, each `(first number, block)` up to the next one's first
/// number; neighbours with the same single RET (listed or not) are one range.
fn segments(blocks: Vec<(u32, Vec<SockFilter>)>, default: Action) -> Vec<(u32, Vec<SockFilter>)> {
    let mut segs: Vec<(u32, Vec<SockFilter>)> = Vec::new();
    let mut push = |lo: u32, block: Vec<SockFilter>| match segs.last() {
        Some((_, prev)) if prev.len() == 1 && *prev == block => {}
        _ => segs.push((lo, block)),
    };
    let mut next = Some(0u32);
    for (nr, block) in blocks {
        if let Some(n) = next.filter(|n| *n < nr) {
            push(n, vec![ret(default)]);
        }
        push(nr, block);
        next = nr.checked_add(1);
    }
    if let Some(n) = next {
        push(n, vec![ret(default)]);
    }
    segs
}

/// A binary search over `segs` with the number in the accumulator: `JGE pivot` to the upper
/// half (through a JA when the lower half is longer than a jump offset can reach).
fn search(segs: &[(u32, Vec<SockFilter>)]) -> Vec<SockFilter> {
    if let [(_, block)] = segs {
        return block.clone();
    }
    let mid = segs.len() / 2;
    let pivot = segs[mid].0;
    let lower = search(&segs[..mid]);
    let upper = search(&segs[mid..]);
    let mut out = Vec::with_capacity(lower.len() + upper.len() + 2);
    if let Ok(skip) = u8::try_from(lower.len()) {
        out.push(jump(BPF_JMP | BPF_JGE | BPF_K, pivot, skip, 0));
    } else {
        out.push(jump(BPF_JMP | BPF_JGE | BPF_K, pivot, 0, 1));
        out.push(stmt(BPF_JMP | BPF_JA, lower.len() as u32));
    }
    out.extend(lower);
    out.extend(upper);
    out
}

const fn libc_enosys() -> u16 {
    38
}

/// Run a program against `seccomp_data` (for tests and `nucleus plan --explain`).
pub fn interpret(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let load = |off: u32| -> u32 {
        match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            o if (OFF_ARGS..OFF_ARGS + 48).contains(&o) => {
                let i = ((o - OFF_ARGS) / 8) as usize;
                if (o - OFF_ARGS).is_multiple_of(8) {
                    args[i] as u32
                } else {
                    (args[i] >> 32) as u32
                }
            }
            _ => 0,
        }
    };
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        pc += 1;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => a = load(i.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= i.k,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                pc += usize::from(if a == i.k { i.jt } else { i.jf })
            }
            c if c == BPF_JMP | BPF_JGT | BPF_K => {
                pc += usize::from(if a > i.k { i.jt } else { i.jf })
            }
            c if c == BPF_JMP | BPF_JGE | BPF_K => {
                pc += usize::from(if a >= i.k { i.jt } else { i.jf })
            }
            c if c == BPF_RET | BPF_K => return i.k,
            _ => return u32::MAX,
        }
    }
    u32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = AUDIT_ARCH_X86_64;

    fn run(f: &Filter, nr: u32, args: [u64; 6]) -> u32 {
        interpret(&compile_for(f, A).unwrap(), A, nr, args)
    }

    fn one(op: CmpOp, value: u64, width: ArgWidth) -> Filter {
        Filter {
            default_action: Action::Errno(1),
            rules: vec![Rule {
                nr: 7,
                action: Action::Allow,
                conds: vec![ArgCond {
                    index: 2,
                    op,
                    value,
                    width,
                }],
            }],
        }
    }

    #[test]
    fn arch_and_default() {
        let f = Filter {
            default_action: Action::Errno(38),
            rules: vec![Rule {
                nr: 1,
                action: Action::Allow,
                conds: vec![],
            }],
        };
        let p = compile_for(&f, A).unwrap();
        assert_eq!(interpret(&p, A, 1, [0; 6]), Action::Allow.ret_value());
        assert_eq!(interpret(&p, A, 2, [0; 6]), Action::Errno(38).ret_value());
        assert_eq!(
            interpret(&p, 0x4000_0003, 1, [0; 6]),
            Action::KillProcess.ret_value()
        );
        assert_eq!(
            interpret(&p, A, 1 | X32_SYSCALL_BIT, [0; 6]),
            Action::Errno(38).ret_value()
        );
    }

    /// Every comparison against a reference implementation over interesting values.
    #[test]
    fn comparisons_match_reference() {
        let vals: [u64; 9] = [
            0,
            1,
            5,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0005,
            u64::MAX,
            0x8000_0000_0000_0000,
            4,
        ];
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
            CmpOp::MaskedEq(0xff),
            CmpOp::MaskedEq(0xffff_0000_0000_0001),
        ];
        for width in [ArgWidth::U64, ArgWidth::U32] {
            for op in ops {
                for &k in &vals {
                    let f = one(op, k, width);
                    for &x in &vals {
                        let (xa, ka) = match width {
                            ArgWidth::U64 => (x, k),
                            ArgWidth::U32 => (x & 0xffff_ffff, k & 0xffff_ffff),
                        };
                        let want = match op {
                            CmpOp::Eq => xa == ka,
                            CmpOp::Ne => xa != ka,
                            CmpOp::Lt => xa < ka,
                            CmpOp::Le => xa <= ka,
                            CmpOp::Gt => xa > ka,
                            CmpOp::Ge => xa >= ka,
                            CmpOp::MaskedEq(m) => {
                                let m = if width == ArgWidth::U32 {
                                    m & 0xffff_ffff
                                } else {
                                    m
                                };
                                xa & m == ka & m
                            }
                        };
                        let got = run(&f, 7, [0, 0, x, 0, 0, 0]) == Action::Allow.ret_value();
                        assert_eq!(got, want, "{op:?} {width:?} arg={x:#x} k={k:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn multiple_rules_and_conditions() {
        let f = Filter {
            default_action: Action::Errno(1),
            rules: vec![
                Rule {
                    nr: 16,
                    action: Action::Errno(13),
                    conds: vec![ArgCond {
                        index: 1,
                        op: CmpOp::Eq,
                        value: 0x5412,
                        width: ArgWidth::U32,
                    }],
                },
                Rule {
                    nr: 16,
                    action: Action::Allow,
                    conds: vec![],
                },
                Rule {
                    nr: 41,
                    action: Action::Allow,
                    conds: vec![
                        ArgCond {
                            index: 0,
                            op: CmpOp::Ne,
                            value: 17,
                            width: ArgWidth::U32,
                        },
                        ArgCond {
                            index: 1,
                            op: CmpOp::Lt,
                            value: 100,
                            width: ArgWidth::U64,
                        },
                    ],
                },
            ],
        };
        assert_eq!(
            run(&f, 16, [0, 0x5412, 0, 0, 0, 0]),
            Action::Errno(13).ret_value()
        );
        // High bits set on a 32-bit argument must not evade the check.
        assert_eq!(
            run(&f, 16, [0, 0x1_0000_5412, 0, 0, 0, 0]),
            Action::Errno(13).ret_value()
        );
        assert_eq!(
            run(&f, 16, [0, 0x5401, 0, 0, 0, 0]),
            Action::Allow.ret_value()
        );
        assert_eq!(run(&f, 41, [2, 1, 0, 0, 0, 0]), Action::Allow.ret_value());
        assert_eq!(
            run(&f, 41, [17, 1, 0, 0, 0, 0]),
            Action::Errno(1).ret_value()
        );
        assert_eq!(
            run(&f, 41, [2, 100, 0, 0, 0, 0]),
            Action::Errno(1).ret_value()
        );
    }

    #[test]
    fn long_blocks_use_trampoline() {
        let conds: Vec<ArgCond> = (0..40)
            .map(|i| ArgCond {
                index: 0,
                op: CmpOp::Ne,
                value: i,
                width: ArgWidth::U64,
            })
            .collect();
        let f = Filter {
            default_action: Action::Errno(1),
            rules: vec![
                Rule {
                    nr: 3,
                    action: Action::Allow,
                    conds: conds.clone(),
                },
                Rule {
                    nr: 4,
                    action: Action::Allow,
                    conds: vec![],
                },
            ],
        };
        assert_eq!(run(&f, 3, [99, 0, 0, 0, 0, 0]), Action::Allow.ret_value());
        assert_eq!(run(&f, 3, [7, 0, 0, 0, 0, 0]), Action::Errno(1).ret_value());
        assert_eq!(run(&f, 4, [0; 6]), Action::Allow.ret_value());
    }
}

#[cfg(test)]
mod hex_tests {
    use super::{hex, SockFilter};

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct P(#[serde(with = "hex")] Vec<SockFilter>);

    #[test]
    fn programs_round_trip_as_hex_and_the_list_form_still_reads() {
        let prog = vec![
            SockFilter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 4,
            },
            SockFilter {
                code: 0x15,
                jt: 1,
                jf: 255,
                k: 0xc000_003e,
            },
            SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            },
        ];
        let text = serde_json::to_string(&P(prog.clone())).unwrap();
        assert_eq!(text, "\"2000000004000000150001ff3e0000c0060000000000ff7f\"");
        assert_eq!(serde_json::from_str::<P>(&text).unwrap().0, prog);
        let list = r#"[{"code":32,"jt":0,"jf":0,"k":4}]"#;
        assert_eq!(serde_json::from_str::<P>(list).unwrap().0, prog[..1]);
        for bad in ["\"2000\"", "\"zz00000004000000\"", "3"] {
            assert!(serde_json::from_str::<P>(bad).is_err(), "{bad}");
        }
    }
}
