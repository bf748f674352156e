#!/usr/bin/env bash
# vm-run.sh: run a script as root inside a throwaway Linux VM with a pure cgroup-v2 hierarchy.
#
# This host has hybrid cgroups (v1 controllers, a v2 mount without resource controllers), so the
# cgroup-v2 code paths cannot be proven here directly. This script boots a stock Debian 6.1
# cloud kernel under qemu TCG (software emulation; /dev/kvm here cannot boot a stock kernel)
# with `cgroup_no_v1=all`, on a busybox-static initramfs built fresh for each run, and runs a
# guest script in it.
#
# Usage:
#   scripts/vm-run.sh [--mem MB] [--smp N] [--timeout SECS] [--append KERNEL_ARGS] [--verbose]
#                     --script GUEST_SCRIPT [FILE...]
#
#   --script GUEST_SCRIPT  a /bin/sh (busybox ash) script run in the guest as root, from /root,
#                          with stdin /dev/null and
#                          PATH=/opt/bin:/bin:/sbin:/usr/bin:/usr/sbin, VMRUN=1.
#   FILE...                host files copied into the guest as /opt/bin/<basename>. For every
#                          dynamically linked ELF among them, the shared libraries `ldd` names
#                          and the dynamic loader are copied to the same paths in the guest.
#   --mem MB               guest memory (default 1024)
#   --smp N                guest CPUs (default 1; TCG is slow, the host has 2 cores)
#   --timeout SECS         wall-clock limit for the whole VM (default 900)
#   --append ARGS          extra kernel command-line arguments
#   --modules NAMES        kernel modules (comma- or space-separated names, e.g. veth,nf_tables)
#                          loaded with their dependencies before the script runs (the cloud
#                          kernel builds veth, nf_tables, overlay... as modules)
#   --verbose              boot without `quiet` and stream the whole guest console to stderr
#
# Output and exit status:
#   - The guest script's stdout and stderr (merged, as one stream) are the only thing written
#     to this script's stdout. They travel on their own serial port (ttyS1); the kernel console
#     (ttyS0) goes to a log file, so kernel messages never mix into the script's output.
#   - Progress lines (`vm-run: ...`: guest kernel, cgroup controllers, timings) go to stderr.
#   - The exit status is the guest script's. The guest init reports it as `VMRUN-EXIT=<n>` on
#     the console; 125 means the VM failed (no marker: timeout, kernel panic, bad setup),
#     2 a usage error.
#
# Guest environment: kernel 6.1 cloud (cached under target/vm/), cgroup2 mounted at
# /sys/fs/cgroup (nsdelegate,memory_recursiveprot, as systemd does) with cpuset, cpu, io, memory,
# pids enabled at the root where available; proc, sysfs, devtmpfs, devpts, /dev/shm, tmpfs at
# /tmp and /run; `lo` up; no network otherwise. The root filesystem is a tmpfs (not the
# initramfs rootfs, where pivot_root(2) fails) laid out like a host: busybox at /bin/busybox
# with every applet linked in /bin, real /usr/bin, /sbin, /usr/sbin, /lib, /lib64, /etc (minimal
# passwd, group), /tmp, /root. Kernel modules are not available: only what the cloud kernel
# has built in (for example no overlayfs or veth, which are modules there) and what --modules
# names.
#
# Needs: qemu-system-x86, busybox-static, cpio (installed with apt-get when missing, which
# needs root), and the kernel package, downloaded once with `apt-get download`.
#
# Environment overrides: VMRUN_CACHE (default <repo>/target/vm), VMRUN_KERNEL_PKG (a specific
# linux-image-6.1.0-*-cloud-amd64 package), VMRUN_BUSYBOX (a static busybox binary).

set -euo pipefail

prog=vm-run
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 125; }
usage_error() { printf '%s: %s\nusage: %s\n' "$prog" "$*" \
  "vm-run.sh [--mem MB] [--smp N] [--timeout SECS] [--append ARGS] [--modules NAMES] [--verbose] --script GUEST_SCRIPT [FILE...]" >&2
  exit 2; }
info() { printf '%s: %s\n' "$prog" "$*" >&2; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_dir=${VMRUN_CACHE:-$repo_root/target/vm}

mem=1024
smp=1
timeout_secs=900
extra_append=
modules=
verbose=0
guest_script=
files=()

while [ $# -gt 0 ]; do
  case $1 in
    --mem) [ $# -ge 2 ] || usage_error "--mem needs a value"; mem=$2; shift 2 ;;
    --mem=*) mem=${1#*=}; shift ;;
    --smp) [ $# -ge 2 ] || usage_error "--smp needs a value"; smp=$2; shift 2 ;;
    --smp=*) smp=${1#*=}; shift ;;
    --timeout) [ $# -ge 2 ] || usage_error "--timeout needs a value"; timeout_secs=$2; shift 2 ;;
    --timeout=*) timeout_secs=${1#*=}; shift ;;
    --append) [ $# -ge 2 ] || usage_error "--append needs a value"; extra_append=$2; shift 2 ;;
    --append=*) extra_append=${1#*=}; shift ;;
    --modules) [ $# -ge 2 ] || usage_error "--modules needs a value"; modules=$2; shift 2 ;;
    --modules=*) modules=${1#*=}; shift ;;
    --script) [ $# -ge 2 ] || usage_error "--script needs a value"; guest_script=$2; shift 2 ;;
    --script=*) guest_script=${1#*=}; shift ;;
    --verbose|-v) verbose=1; shift ;;
    -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    --) shift; files+=("$@"); break ;;
    -*) usage_error "unknown option $1" ;;
    *) files+=("$1"); shift ;;
  esac
done

[ -n "$guest_script" ] || usage_error "--script is required"
[ -f "$guest_script" ] || usage_error "guest script $guest_script is not a file"
for v in "$mem" "$smp" "$timeout_secs"; do
  case $v in ''|*[!0-9]*) usage_error "--mem, --smp and --timeout take positive integers, got '$v'" ;; esac
done
[ "$mem" -ge 128 ] || usage_error "--mem must be at least 128"
if [ "$smp" -lt 1 ] || [ "$timeout_secs" -lt 1 ]; then usage_error "--smp and --timeout must be at least 1"; fi
declare -A seen_names=()
for f in ${files[@]+"${files[@]}"}; do
  [ -f "$f" ] || usage_error "$f is not a regular file"
  b=$(basename "$f")
  [ -z "${seen_names[$b]:-}" ] || usage_error "two files are named $b (they would both be /opt/bin/$b)"
  seen_names[$b]=1
done

# ---------------------------------------------------------------------------------------------
# Host tools

apt_install() {
  [ "$(id -u)" = 0 ] || die "missing packages ($*) and not root: install them with apt-get"
  info "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
  fi
}

is_static_busybox() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
busybox=${VMRUN_BUSYBOX:-/bin/busybox}
if ! is_static_busybox "$busybox"; then
  [ -z "${VMRUN_BUSYBOX:-}" ] || die "VMRUN_BUSYBOX=$VMRUN_BUSYBOX is not a static executable"
  missing+=(busybox-static)
fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
is_static_busybox "$busybox" || die "$busybox is not a static busybox (install busybox-static)"
for t in qemu-system-x86_64 cpio ldd timeout tail flock; do
  command -v "$t" >/dev/null || die "$t not found"
done

# ---------------------------------------------------------------------------------------------
# Kernel: the newest linux-image-6.1.0-*-cloud-amd64 apt offers, downloaded and extracted once
# into $cache_dir/<package>/ (vmlinuz and config in boot/).

newest_cached_kernel() {
  local k
  k=$(find "$cache_dir" -mindepth 3 -maxdepth 3 -path "$cache_dir/linux-image-*/boot/vmlinuz-*" \
        -type f 2>/dev/null | sort -V | tail -n 1)
  printf '%s' "$k"
}

newest_apt_kernel_pkg() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null \
    | awk '{print $1}' | sort -V | tail -n 1
}

fetch_kernel() {
  local pkg=${VMRUN_KERNEL_PKG:-}
  if [ -z "$pkg" ]; then
    pkg=$(newest_apt_kernel_pkg)
    if [ -z "$pkg" ]; then
      [ "$(id -u)" = 0 ] || die "apt-cache knows no linux-image-6.1.0-*-cloud-amd64; run apt-get update"
      info "apt-cache knows no 6.1 cloud kernel; running apt-get update"
      apt-get update -qq >/dev/null || die "apt-get update failed"
      pkg=$(newest_apt_kernel_pkg)
      [ -n "$pkg" ] || die "no linux-image-6.1.0-*-cloud-amd64 package in the apt sources"
    fi
  fi
  info "downloading and extracting $pkg into $cache_dir (once)"
  local dl
  dl=$(mktemp -d "$cache_dir/.download.XXXXXX")
  ( cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null ) \
    || { rm -rf "$dl"; die "apt-get download $pkg failed"; }
  local deb
  deb=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n 1)
  [ -n "$deb" ] || { rm -rf "$dl"; die "apt-get download $pkg produced no .deb"; }
  rm -rf "${cache_dir:?}/$pkg"
  dpkg-deb -x "$deb" "$dl/root" || { rm -rf "$dl"; die "dpkg-deb -x $deb failed"; }
  mv "$dl/root" "$cache_dir/$pkg"
  rm -rf "$dl"
}

mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
flock 9
if [ -n "${VMRUN_KERNEL_PKG:-}" ]; then
  vmlinuz=$(find "$cache_dir/$VMRUN_KERNEL_PKG/boot" -maxdepth 1 -name 'vmlinuz-*' -type f 2>/dev/null | head -n 1)
else
  vmlinuz=$(newest_cached_kernel)
fi
if [ -z "$vmlinuz" ]; then
  fetch_kernel
  if [ -n "${VMRUN_KERNEL_PKG:-}" ]; then
    vmlinuz=$(find "$cache_dir/$VMRUN_KERNEL_PKG/boot" -maxdepth 1 -name 'vmlinuz-*' -type f | head -n 1)
  else
    vmlinuz=$(newest_cached_kernel)
  fi
fi
exec 9>&-
if [ -z "$vmlinuz" ] || [ ! -f "$vmlinuz" ]; then die "no kernel image found under $cache_dir"; fi
kernel_release=${vmlinuz##*/vmlinuz-}

# ---------------------------------------------------------------------------------------------
# Run state and cleanup: qemu must never outlive this script.

work=$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX")
qemu_job=
reader_job=

# shellcheck disable=SC2317  # (called from traps)
stop_vm() {
  if [ -n "$qemu_job" ] && kill -0 "$qemu_job" 2>/dev/null; then
    # timeout(1) forwards TERM to qemu; qemu's pid file is the fallback.
    kill -TERM "$qemu_job" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$qemu_job" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$qemu_job" 2>/dev/null; then
      if [ -s "$work/qemu.pid" ]; then kill -KILL "$(cat "$work/qemu.pid")" 2>/dev/null || true; fi
      kill -KILL "$qemu_job" 2>/dev/null || true
    fi
    wait "$qemu_job" 2>/dev/null || true
  fi
  qemu_job=
  if [ -n "$reader_job" ]; then kill "$reader_job" 2>/dev/null || true; reader_job=; fi
}
# shellcheck disable=SC2317
cleanup() { stop_vm; rm -rf "$work"; }
# shellcheck disable=SC2317
on_signal() { info "interrupted; stopping the VM"; trap - EXIT; cleanup; exit "$1"; }
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# ---------------------------------------------------------------------------------------------
# Initramfs

root=$work/root
mkdir -p "$root"
(cd "$root" && mkdir -p bin sbin usr/bin usr/sbin usr/lib lib lib64 etc root tmp var/tmp run \
  proc sys dev mnt opt/bin vmrun home)
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
while IFS= read -r applet; do
  case $applet in ''|busybox|*/*) continue ;; esac
  ln -s busybox "$root/bin/$applet"
done < <("$busybox" --list)
ln -s /bin/busybox "$root/usr/bin/env"   # for `#!/usr/bin/env sh` scripts

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
echo vmrun >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost vmrun\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
ln -s /proc/self/mounts "$root/etc/mtab"

# Payload files and the shared libraries of the dynamic ELF ones.
copy_libs() {
  local f=$1 out lib
  if ! out=$(ldd "$f" 2>/dev/null); then return 0; fi   # static binary or not an ELF
  if grep -q 'not found' <<<"$out"; then
    die "$f: ldd cannot resolve every library:$(printf '\n%s' "$out")"
  fi
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(awk '$2 == "=>" { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }' <<<"$out")
}
for f in ${files[@]+"${files[@]}"}; do
  b=$(basename "$f")
  cp -L "$f" "$root/opt/bin/$b"
  chmod u+rwx,go+rx "$root/opt/bin/$b"
  copy_libs "$f"
done
for f in ${files[@]+"${files[@]}"}; do
  b=$(basename "$f")
  interp=$(head -c 256 "$root/opt/bin/$b" | sed -n '1{s/^#![[:space:]]*\([^[:space:]]*\).*/\1/p}' 2>/dev/null || true)
  if [ -n "$interp" ] && [ ! -e "$root$interp" ] && [ ! -L "$root$interp" ]; then
    info "warning: $b starts with #!$interp, which the guest does not have"
  fi
done
cp "$guest_script" "$root/vmrun/script"

# Kernel modules (--modules) and their dependencies (the `depends=` of each .ko's .modinfo), in
# load order: dependencies first. The list goes to /vmrun/modules/order for stage 2.
mkdir -p "$root/vmrun/modules"
: >"$root/vmrun/modules/order"
if [ -n "$modules" ]; then
  moddir=$(dirname "$(dirname "$vmlinuz")")/lib/modules/$kernel_release
  [ -f "$moddir/modules.order" ] || die "no modules.order under $moddir"
  declare -A mod_done=()
  add_module() { # name
    local name=${1//-/_} rel dep
    [ -z "${mod_done[$name]:-}" ] || return 0
    mod_done[$name]=1
    rel=$(grep -E "(^|/)${name//_/[-_]}\.ko$" "$moddir/modules.order" | head -n 1 || true)
    if [ -z "$rel" ]; then
      grep -qE "(^|/)${name//_/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null && return 0
      die "--modules: no module $name in $kernel_release"
    fi
    rel=${rel#kernel/}
    for dep in $( (grep -a -o 'depends=[A-Za-z0-9_,-]*' "$moddir/kernel/$rel" || true) | head -n 1 | sed 's/^depends=//; s/,/ /g'); do
      add_module "$dep"
    done
    cp "$moddir/kernel/$rel" "$root/vmrun/modules/$name.ko"
    echo "$name" >>"$root/vmrun/modules/order"
  }
  for m in ${modules//,/ }; do add_module "$m"; done
fi
chmod 0755 "$root/vmrun/script"

# Stage 1 (/init): the initramfs rootfs cannot be pivot_root(2)ed away from, so move its
# content to a tmpfs and switch_root into that.
cat >"$root/init" <<'EOF'
#!/bin/sh
# vm-run stage 1
export PATH=/bin
fail() { echo "VMRUN-ERROR: stage 1: $*" >/dev/kmsg; echo "VMRUN-ERROR: stage 1: $*"; reboot -f; sleep 5; }
/bin/busybox mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
exec </dev/console >/dev/console 2>&1
mkdir -p /newroot
mount -t tmpfs -o mode=0755,size=80% tmpfs /newroot || fail "mount tmpfs /newroot"
# mv (copy, then free) keeps the peak memory low for large payloads. /bin is copied last,
# since every command here runs from it, and /init too: switch_root checks that it is there.
for f in /* ; do
  case $f in /newroot|/dev|/proc|/sys|/bin|/init) continue ;; esac
  mv "$f" /newroot/ || fail "move $f"
done
cp -a /bin /init /newroot/ || fail "copy /bin"
mkdir -p /newroot/dev /newroot/proc /newroot/sys
mount --move /dev /newroot/dev || fail "move /dev"
exec switch_root /newroot /vmrun/init2
fail "switch_root"
EOF

# Stage 2 (/vmrun/init2, PID 1 on the tmpfs root): host-like mounts, cgroup2, lo, then the
# guest script with its output on ttyS1, then the exit marker and a reboot (qemu -no-reboot
# exits).
cat >"$root/vmrun/init2" <<'EOF'
#!/bin/sh
# vm-run stage 2
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
# Lines for the host go through /dev/kmsg at KERN_EMERG: printk writes them to the serial
# console synchronously, so none is lost to the reboot and `quiet` does not hide them.
say() { echo "<0>VMRUN-INFO: $*" >/dev/kmsg 2>/dev/null || echo "VMRUN-INFO: $*"; }
finish() {
  echo "<0>VMRUN-EXIT=$1" >/dev/kmsg 2>/dev/null || { echo; echo "VMRUN-EXIT=$1"; sleep 1; }
  sync
  reboot -f
  sleep 10
}
fail() { echo "<0>VMRUN-ERROR: stage 2: $*" >/dev/kmsg 2>/dev/null || echo "VMRUN-ERROR: stage 2: $*"; finish 125; }

[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs /dev"
mount -t proc -o nosuid,nodev,noexec proc /proc || fail "mount proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "mount sysfs"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fail "mount devpts"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm || fail "mount /dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp || fail "mount /tmp"
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run || fail "mount /run"
mount -t securityfs -o nosuid,nodev,noexec securityfs /sys/kernel/security 2>/dev/null || true
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup 2>/dev/null \
  || mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
for m in $(cat /vmrun/modules/order); do
  insmod "/vmrun/modules/$m.ko" || fail "insmod $m"
done
hostname vmrun
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null || say "warning: could not bring lo up"

cg=/sys/fs/cgroup
avail=$(cat $cg/cgroup.controllers)
for c in cpuset cpu io memory pids; do
  case " $avail " in *" $c "*) echo "+$c" >$cg/cgroup.subtree_control 2>/dev/null || say "warning: could not enable $c" ;; esac
done
say "kernel $(uname -r); cgroup2 controllers available: $avail; enabled at the root: $(cat $cg/cgroup.subtree_control)"

# The script's stdout/stderr: a pipe (as under CI, not a tty) drained by cat onto ttyS1, raw so
# no CR is added. cat's last close of ttyS1 waits until the UART has sent everything.
stty -F /dev/ttyS1 raw -echo 2>/dev/null || say "warning: stty on /dev/ttyS1 failed"
mkdir -p /run/vmrun
mkfifo /run/vmrun/out || fail "mkfifo"
cat /run/vmrun/out >/dev/ttyS1 &
drain=$!
drained() { # the cat has exited (gone, or a zombie)
  st=
  read -r _ _ st _ </proc/$drain/stat 2>/dev/null || return 0
  [ "$st" = Z ]
}
start=$(cut -d' ' -f1 /proc/uptime)
say "script-start uptime=$start"
cd /root
env -i PATH=/opt/bin:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root USER=root LOGNAME=root SHELL=/bin/sh \
  TERM=dumb VMRUN=1 /bin/sh /vmrun/script </dev/null >/run/vmrun/out 2>&1
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
cd /
# Processes the script left behind may hold the pipe open: after a short grace, kill them so
# that cat sees EOF and its exit flushes ttyS1.
i=0
while ! drained && [ $i -lt 10 ]; do sleep 0.1; i=$((i + 1)); done
if ! drained; then
  say "warning: processes left running by the script hold its output open; killing them"
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = 1 ] || [ "$p" = "$drain" ] || kill -KILL "$p" 2>/dev/null
  done
  i=0
  while ! drained && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  drained || say "warning: the script's output could not be flushed completely"
fi
say "script-end uptime=$end rc=$rc"
finish "$rc"
EOF
chmod 0755 "$root/init" "$root/vmrun/init2"

# A tiny cpio archive with dev/ and the dev/console node (so the kernel gives /init a console),
# written by hand so that no mknod (root) is needed; the kernel unpacks concatenated archives.
cpio_entry() { # name mode(hex) rdevmajor rdevminor
  local name=$1 hdr pad
  hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "0x$2" 0 0 1 0 0 0 0 "$3" "$4" $((${#name} + 1)) 0)
  pad=$(( (4 - (110 + ${#name} + 1) % 4) % 4 ))
  printf '%s%s\0' "$hdr" "$name"
  head -c "$pad" /dev/zero
}
initrd=$work/initrd.img
{
  cpio_entry dev 41ED 0 0
  cpio_entry dev/console 2180 5 1
  cpio_entry 'TRAILER!!!' 0 0 0
  (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc -R 0:0 --quiet)
} >"$initrd" || die "building the initramfs failed"

# ---------------------------------------------------------------------------------------------
# Boot

append="console=ttyS0 cgroup_no_v1=all panic=-1 rdinit=/init 8250.nr_uarts=2"
if [ "$verbose" = 1 ]; then append+=" loglevel=7"; else append+=" quiet loglevel=3"; fi
[ -z "$extra_append" ] || append+=" $extra_append"

console_log=$work/console.log
: >"$console_log"
qemu_cmd=(qemu-system-x86_64 -accel tcg -nodefaults -no-user-config -no-reboot
  -m "$mem" -smp "$smp" -display none -nic none -monitor none
  -chardev "file,id=con,path=$console_log,append=on" -serial chardev:con
  -chardev "stdio,id=out,signal=off" -serial chardev:out
  -pidfile "$work/qemu.pid"
  -kernel "$vmlinuz" -initrd "$initrd" -append "$append")
# A qemu whose parent dies gets SIGKILL (setpriv --pdeathsig): even `kill -9` of this script
# leaves no qemu behind.
pdeath=()
if command -v setpriv >/dev/null && setpriv --help 2>&1 | grep -q -- --pdeathsig; then
  pdeath=(setpriv --pdeathsig KILL)
fi

info "booting $kernel_release (mem ${mem}M, smp $smp, timeout ${timeout_secs}s, initramfs $(( $(stat -c %s "$initrd") / 1024 )) KiB)"
t0=$EPOCHREALTIME

follow_console() {
  local line now
  while IFS= read -r line; do
    line=${line//$'\r'/}
    case $line in
      *VMRUN-INFO:\ script-start*)
        now=$EPOCHREALTIME
        info "guest ready, script started: $(awk -v a="$t0" -v b="$now" 'BEGIN{printf "%.1f", b-a}')s after qemu start (guest uptime ${line##*uptime=}s)" ;;
      *VMRUN-INFO:\ script-end*) ;;
      *VMRUN-INFO:*) info "${line#*VMRUN-INFO: }" ;;
      *VMRUN-ERROR:*) info "guest: ${line#*VMRUN-ERROR: }" ;;
      *VMRUN-EXIT=*) ;;
      *) if [ "$verbose" = 1 ]; then printf 'console: %s\n' "$line" >&2; fi ;;
    esac
  done < <(tail -n +1 -f -s 0.2 --pid="$1" "$console_log" 2>/dev/null)
}

"${pdeath[@]}" timeout -k 10 "$timeout_secs" "${pdeath[@]}" "${qemu_cmd[@]}" </dev/null &
qemu_job=$!
follow_console "$qemu_job" &
reader_job=$!
qemu_rc=0
wait "$qemu_job" || qemu_rc=$?
qemu_job=
wait "$reader_job" 2>/dev/null || true
reader_job=
t1=$EPOCHREALTIME
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')

marker=$(tr -d '\r' <"$console_log" | sed -n 's/.*VMRUN-EXIT=\([0-9][0-9]*\).*/\1/p' | tail -n 1)
script_time=$(tr -d '\r' <"$console_log" \
  | sed -n 's/.*VMRUN-INFO: script-end uptime=\([0-9.]*\).*/\1/p' | tail -n 1)
script_start=$(tr -d '\r' <"$console_log" \
  | sed -n 's/.*VMRUN-INFO: script-start uptime=\([0-9.]*\).*/\1/p' | tail -n 1)

if [ -n "$marker" ]; then
  if [ -n "$script_time" ] && [ -n "$script_start" ]; then
    info "guest script exited with $marker after $(awk -v a="$script_start" -v b="$script_time" 'BEGIN{printf "%.1f", b-a}')s; VM wall time ${wall}s"
  else
    info "guest script exited with $marker; VM wall time ${wall}s"
  fi
  exit "$marker"
fi

if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
  info "timed out after ${timeout_secs}s (VM stopped); no exit status from the guest"
else
  info "the VM ended (qemu status $qemu_rc) without reporting the script's exit status"
fi
info "last lines of the guest console:"
tr -d '\r' <"$console_log" | tail -n 40 | sed 's/^/  | /' >&2
exit 125
