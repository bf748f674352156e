//! nucleus-spec: the pure half of nucleus.
//!
//! Everything here is *deciding* and *compiling*: typed launch configuration, host facts as plain
//! data, the [`plan::Plan`] built from both, and compiled policies (seccomp BPF, Landlock rules,
//! the ordered mount list). Nothing in this crate touches the host: no file writes, no
//! processes, no clock. That makes every decision printable (`nucleus run --dry-run`) and
//! golden-testable.
#![forbid(unsafe_code)]

pub mod attest;
pub mod cgroup;
pub mod checkpoint;
pub mod compose;
pub mod config;
pub mod cp;
pub mod dns;
pub mod enforce;
pub mod etc;
pub mod gvisor;
pub mod health;
pub mod host;
pub mod landlock;
pub mod mcp;
pub mod mounts;
pub mod net;
pub mod nft;
pub mod oci;
pub mod otlp;
pub mod plan;
pub mod policy;
pub mod seccomp;
pub mod stage;
pub mod state;

pub use config::RunConfig;

/// Lower-case hex of bytes (ids, digests, trace and span ids).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
pub use host::HostFacts;
pub use plan::{Plan, PlanError};
