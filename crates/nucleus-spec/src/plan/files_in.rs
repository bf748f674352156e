//! Files in: `--context`, `--workspace`, `--volume`, `--tmpfs` and `--provider-config-ro`,
//! each a mount with its Landlock rights ([`Draft::grant`]), or a tree the parent copies
//! in before start ([`PreparedTree`]).

use super::{cfg_err, p, tmpfs_size, Draft, Identity, PlanError, PreparedTree};
use crate::config::{ContextMode, WorkspaceMode, DEFAULT_WORKSPACE_MAX};
use crate::landlock::FsRight;
use crate::mounts::MountOp;
use std::path::{Path, PathBuf};

/// Mounts every file-in; returns the workload's directory when a workspace gives one.
pub(super) fn files_in(d: &mut Draft, who: &Identity) -> Result<Option<PathBuf>, PlanError> {
    let cfg = d.cfg;
    // Bind mounts map the sandbox's ids onto the caller's files (as root).
    let idmap = !who.rootless;
    let max_bytes = cfg.workspace_max_size.unwrap_or(DEFAULT_WORKSPACE_MAX);
    if let Some(ctx) = &cfg.context {
        abs("--context", ctx)?;
        let dst = p("/context");
        match cfg.context_mode {
            ContextMode::Copy => {
                if who.rootless {
                    return Err(cfg_err(
                        "--context-mode",
                        "copy needs root (the copy goes to a tmpfs the runtime makes on the host); unprivileged, use --context-mode bind (read-only)",
                    ));
                }
                let slot = d.prepare(PreparedTree {
                    src: ctx.clone(),
                    copy_back: false,
                    max_bytes,
                    secrets: Vec::new(),
                });
                d.grant(
                    MountOp::Attach {
                        slot,
                        dst: dst.clone(),
                        readonly: true,
                        noexec: true,
                    },
                    FsRight::READ,
                );
            }
            ContextMode::Bind => lend_data(d, ctx, dst, idmap),
        }
    }
    let mut cwd = None;
    if let Some(ws) = &cfg.workspace {
        abs("--workspace", ws)?;
        let dst = p("/workspace");
        match cfg.workspace_mode {
            WorkspaceMode::BindRw | WorkspaceMode::BindRo => {
                let ro = cfg.workspace_mode == WorkspaceMode::BindRo;
                d.grant(
                    MountOp::Bind {
                        src: ws.clone(),
                        dst: dst.clone(),
                        readonly: ro,
                        noexec: false,
                        idmap,
                    },
                    rights(ro),
                );
            }
            WorkspaceMode::CopyInOut if who.rootless => {
                return Err(cfg_err(
                    "--workspace-mode",
                    "copy-in-out needs root (the copy goes to a tmpfs the runtime makes on the host); unprivileged, use bind-rw or bind-ro",
                ));
            }
            WorkspaceMode::CopyInOut => {
                let slot = d.prepare(PreparedTree {
                    src: ws.clone(),
                    copy_back: true,
                    max_bytes,
                    secrets: Vec::new(),
                });
                d.grant(
                    MountOp::Attach {
                        slot,
                        dst: dst.clone(),
                        readonly: false,
                        noexec: false,
                    },
                    FsRight::READ_WRITE_EXEC,
                );
            }
        }
        cwd = Some(dst);
    }
    for v in &cfg.volumes {
        d.grant(
            MountOp::Bind {
                src: v.src.clone(),
                dst: v.dst.clone(),
                readonly: v.readonly,
                noexec: false,
                idmap,
            },
            rights(v.readonly),
        );
    }
    let default_size = tmpfs_size(cfg);
    for t in &cfg.tmpfs {
        d.grant(
            MountOp::tmpfs(
                t.dst.clone(),
                0o1777,
                t.size_bytes.unwrap_or(default_size),
                false,
            ),
            FsRight::READ_WRITE_EXEC,
        );
    }
    for pc in &cfg.provider_configs {
        let dst = if pc.dst.is_absolute() {
            pc.dst.clone()
        } else {
            who.home.join(&pc.dst)
        };
        lend_data(d, &pc.src, dst, idmap);
    }
    Ok(cwd)
}

/// Where secrets are.
pub(super) const SECRETS_DIR: &str = "/run/secrets";

/// `--secret`, `--systemd-credential`: an in-memory tmpfs at /run/secrets the runtime fills
/// (read-only, noexec for the workload). On an image root, /run becomes a small tmpfs of its
/// own (as on any booted system) so the mount point can be made.
pub(super) fn secrets(
    d: &mut Draft,
    who: &Identity,
    root: &crate::mounts::RootSource,
) -> Result<(), PlanError> {
    let cfg = d.cfg;
    let notify = cfg.readiness == crate::config::Readiness::Notify;
    if cfg.secrets.is_empty() && !notify {
        return Ok(());
    }
    let user_run = d
        .mounts
        .iter()
        .filter_map(MountOp::creates)
        .any(|m| m == Path::new("/run"));
    if *root != crate::mounts::RootSource::Tmpfs && !user_run {
        d.mount(MountOp::tmpfs(p("/run"), 0o755, 1 << 20, true));
    }
    if notify {
        let Some(sock) = &cfg.notify_socket else {
            return Err(cfg_err("--sd-notify", "no socket to relay from"));
        };
        // (Bound by the parent, idmapped, as user binds are: it lies under the state root,
        // which the sandbox cannot search.)
        d.mount(MountOp::Bind {
            src: sock.clone(),
            dst: p(crate::config::NOTIFY_SOCKET_IN_SANDBOX),
            readonly: false,
            noexec: true,
            idmap: !who.rootless,
        });
    }
    if cfg.secrets.is_empty() {
        return Ok(());
    }
    crate::config::Secret::check_unique(&cfg.secrets)?;
    if who.rootless {
        return Err(cfg_err(
            "--secret",
            "secrets need root (they go to a tmpfs the runtime makes on the host)",
        ));
    }
    let max_bytes = (cfg.secrets.len() as u64) * crate::config::MAX_SECRET_BYTES + (64 << 10);
    let slot = d.prepare(PreparedTree {
        src: PathBuf::new(),
        copy_back: false,
        max_bytes,
        secrets: cfg.secrets.clone(),
    });
    d.grant(
        MountOp::Attach {
            slot,
            dst: p(SECRETS_DIR),
            readonly: true,
            noexec: true,
        },
        FsRight::READ,
    );
    Ok(())
}

/// Host data the workload may read and not run: a read-only, noexec bind.
fn lend_data(d: &mut Draft, src: &Path, dst: PathBuf, idmap: bool) {
    d.grant(
        MountOp::Bind {
            src: src.to_path_buf(),
            dst: dst.clone(),
            readonly: true,
            noexec: true,
            idmap,
        },
        FsRight::READ,
    );
}

/// A directory the workload may change (and run programs from) unless read-only.
fn rights(readonly: bool) -> &'static [FsRight] {
    if readonly {
        FsRight::READ_EXEC
    } else {
        FsRight::READ_WRITE_EXEC
    }
}

fn abs(flag: &str, path: &Path) -> Result<(), PlanError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(cfg_err(
            flag,
            format!("{}: must be an absolute path", path.display()),
        ))
    }
}
