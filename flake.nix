{
  description = "nucleus: a daemonless Linux container runtime for agent sandboxes and hardened services";

  # Only nixpkgs: for the toolchain that builds the static binary, the static busybox that
  # builds root filesystems, and the packages of the agent toolchain root filesystem.
  # (docs/nix.md: what of this was evaluated where.)
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      nucleusFor = pkgs:
        pkgs.pkgsStatic.rustPlatform.buildRustPackage {
          pname = "nucleus";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).workspace.package.version;
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "nucleus" ];
          # The tests are privileged end-to-end tests (scripts/test.sh), not for a build sandbox.
          doCheck = false;
          meta = {
            description = "Daemonless Linux container runtime for agent sandboxes and hardened services";
            mainProgram = "nucleus";
            platforms = nixpkgs.lib.platforms.linux;
          };
        };
      libFor = system: pkgs:
        let
          base = import ./nix/lib.nix {
            inherit system;
            busybox = pkgs.pkgsStatic.busybox;
            nucleus = nucleusFor pkgs;
          };
        in
        base // {
          # An agent's tools as a root filesystem: python3, node, git, coreutils, bash (and
          # whatever `extraContents` adds).
          mkAgentToolchainRootfs = { name ? "agent-toolchain", extraContents ? [ ] }:
            base.mkRootfs {
              inherit name;
              contents = [
                pkgs.bashInteractive
                pkgs.coreutils
                pkgs.git
                pkgs.nodejs
                pkgs.python3
                pkgs.cacert
              ] ++ extraContents;
            };
        };
    in
    {
      packages = forAll (system: pkgs: { default = nucleusFor pkgs; nucleus = nucleusFor pkgs; });

      # lib.mkRootfs { name, contents, ... } and lib.mkAgentToolchainRootfs { ... }: per system,
      # and for x86_64-linux directly (`nucleus.lib.mkRootfs`).
      lib = forAll libFor // libFor "x86_64-linux" nixpkgs.legacyPackages.x86_64-linux;

      # services.nucleus.containers.<name> -> nucleus-<name>.service.
      nixosModules.default = import ./nix/module.nix { inherit self; };
    };
}
