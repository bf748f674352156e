#!/usr/bin/env bash
# nucleus builds for x86_64-unknown-linux-musl (.cargo/config.toml: one static binary without
# glibc's start-up cost). rustup installs a target with a toolchain only when it installs the
# toolchain, so on a machine whose toolchain came without it this adds it, once; sourced or run
# by the project's scripts before they build.
target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if ! command -v rustup >/dev/null; then
    echo "nucleus: the Rust target $target is needed and rustup is not here to add it; install it with your toolchain (e.g. rustup target add $target)" >&2
    exit 1
  fi
  echo "nucleus: adding the Rust target $target (rustup target add, once)" >&2
  if ! rustup target add "$target" >&2; then
    echo "nucleus: could not add the Rust target $target (no network to the Rust release server?); run: rustup target add $target" >&2
    exit 1
  fi
fi
