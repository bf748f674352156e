# nucleus's Nix library: root filesystems as store paths, each with its nucleus manifest.
#
# Thin over tested nucleus commands: a root filesystem is a store path (bin/ with the programs
# of `contents`, etc/passwd and etc/group, the mount points a sandbox needs), and its manifest
# is what `nucleus rootfs manifest --nix-closure` writes for it and its whole closure (read from
# Nix's exportReferencesGraph: a build has no nix-store to ask). Built with a static busybox
# and builtins.derivation only, so it needs no nixpkgs (the flake passes nixpkgs' static
# busybox; the tests pass one added to the store).
#
#   mkRootfs { name, contents ? [ ], passwd ? …, group ? … }
#     -> the root filesystem (a derivation), with `.manifest`: a derivation holding
#        `manifest` (the file for --rootfs-manifest) and `sha256` (for --rootfs-sha256).
{ system, busybox, nucleus }:
let
  sh = "${busybox}/bin/busybox";
in
rec {
  mkRootfs =
    { name
    , contents ? [ ]
    , passwd ? "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    , group ? "root:x:0:\nnogroup:x:65534:\n"
    }:
    let
      rootfs = derivation {
        inherit name system passwd group;
        builder = sh;
        args = [ "sh" "-e" ./mk-rootfs.sh ];
        inherit busybox;
        contents = contents;
      };
      manifest = derivation {
        name = "${name}-manifest";
        inherit system;
        builder = sh;
        args = [ "sh" "-e" ./mk-manifest.sh ];
        inherit busybox nucleus rootfs;
        # The closure of the root filesystem, as a file in the build directory.
        exportReferencesGraph = [ "closure" rootfs ];
      };
    in
    rootfs // { inherit manifest; };
}
