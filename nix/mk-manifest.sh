# Builder of lib.nix's mkRootfs manifest: `nucleus rootfs manifest --nix-closure` of the root
# filesystem and its closure ($closure: exportReferencesGraph); the digest to pin beside it.
b="$busybox/bin/busybox"
$b mkdir -p "$out"
"$nucleus/bin/nucleus" rootfs manifest --nix-closure "$rootfs" --nix-graph closure \
  -o "$out/manifest" > "$out/sha256"
