//! Landlock rules as data: paths inside the sandbox with explicit access rights. The executor
//! negotiates them down to the kernel's ABI and reports what was enforced.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Filesystem rights, named after the kernel's LANDLOCK_ACCESS_FS_* bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsRight {
    Execute,
    WriteFile,
    ReadFile,
    ReadDir,
    RemoveDir,
    RemoveFile,
    MakeChar,
    MakeDir,
    MakeReg,
    MakeSock,
    MakeFifo,
    MakeBlock,
    MakeSym,
    Refer,
    Truncate,
    IoctlDev,
}

impl FsRight {
    pub const READ: &'static [FsRight] = &[FsRight::ReadFile, FsRight::ReadDir];
    pub const READ_EXEC: &'static [FsRight] =
        &[FsRight::ReadFile, FsRight::ReadDir, FsRight::Execute];
    /// Everything a writable tree needs, except creating device nodes.
    pub const READ_WRITE_EXEC: &'static [FsRight] = &[
        FsRight::Execute,
        FsRight::WriteFile,
        FsRight::ReadFile,
        FsRight::ReadDir,
        FsRight::RemoveDir,
        FsRight::RemoveFile,
        FsRight::MakeDir,
        FsRight::MakeReg,
        FsRight::MakeSock,
        FsRight::MakeFifo,
        FsRight::MakeSym,
        FsRight::Refer,
        FsRight::Truncate,
    ];
    /// Device files the workload reads and writes (null, tty, pts…), including terminal ioctls.
    pub const DEVICE_RW: &'static [FsRight] = &[
        FsRight::ReadFile,
        FsRight::WriteFile,
        FsRight::ReadDir,
        FsRight::Truncate,
        FsRight::IoctlDev,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRule {
    /// Path inside the sandbox (after pivot_root).
    pub path: PathBuf,
    pub rights: Vec<FsRight>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Rights handled (denied unless a rule grants them): everything the kernel knows.
    pub rules: Vec<LandlockRule>,
    /// Also scope signals and abstract unix sockets to the sandbox (ABI 6+).
    pub scope_signals_and_sockets: bool,
    /// Rule paths that must exist (a policy's `missing = "error"`); others grant nothing when
    /// absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<PathBuf>,
    /// Strict modes: the rights of Landlock ABIs up to this one must all be enforced (the
    /// ruleset fails to build rather than drop one; newer rights are best effort). 1 for
    /// every strict plan, a policy's `min_abi` when higher; 0 (agent mode): best effort.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_abi: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
