# Builder of lib.nix's mkRootfs (run by a static busybox's sh): a root filesystem holding the
# programs of $contents (their bin/, linked), etc/passwd and etc/group, and the mount points a
# sandbox needs, so that its sealed image can be the sandbox's root as it is.
b="$busybox/bin/busybox"
$b mkdir -p "$out/bin" "$out/etc" "$out/proc" "$out/sys" "$out/dev" "$out/tmp" "$out/run" \
  "$out/root" "$out/home" "$out/usr"
for c in $contents; do
  # A busybox: its applets too.
  if [ -x "$c/bin/busybox" ]; then
    for n in $("$c/bin/busybox" --list); do
      [ -e "$out/bin/$n" ] || [ -L "$out/bin/$n" ] || $b ln -s "$c/bin/busybox" "$out/bin/$n"
    done
  fi
  if [ -d "$c/bin" ]; then
    for f in "$c"/bin/*; do
      n=$($b basename "$f")
      [ -e "$out/bin/$n" ] || [ -L "$out/bin/$n" ] || $b ln -s "$f" "$out/bin/$n"
    done
  fi
done
# /usr/bin/env, as scripts expect it.
$b ln -s ../bin "$out/usr/bin"
printf '%s' "$passwd" > "$out/etc/passwd"
printf '%s' "$group" > "$out/etc/group"
