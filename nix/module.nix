# The NixOS module: services.nucleus.containers.<name> -> one nucleus-<name>.service each.
#
# Each unit is what `nucleus systemd unit` renders (run in a build, from a --config file made
# of the options below), so a container declared here runs exactly as the same flags would on
# the command line: Type=notify, the journal, Restart=, LoadCredential= for its secrets,
# Delegate=yes. `rootfs` is a root filesystem from lib.mkRootfs: it runs attested (its
# manifest and the digest pinned at build time).
{ self }:
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mapAttrs' nameValuePair mapAttrsToList escapeShellArg escapeShellArgs;
  cfg = config.services.nucleus;
  nucleus = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
  container = { name, ... }: {
    options = {
      rootfs = mkOption {
        type = types.package;
        description = "A root filesystem from nucleus.lib.mkRootfs (with its .manifest).";
      };
      command = mkOption {
        type = types.listOf types.str;
        description = "The service's command and arguments.";
      };
      serviceMode = mkOption {
        type = types.enum [ "agent" "strict-agent" "production" ];
        default = "production";
      };
      memory = mkOption { type = types.str; default = "512m"; description = "--memory"; };
      cpus = mkOption { type = types.str; default = "1"; description = "--cpus"; };
      pids = mkOption { type = types.nullOr types.str; default = null; description = "--pids"; };
      user = mkOption { type = types.nullOr types.str; default = null; description = "--user"; };
      environment = mkOption { type = types.attrsOf types.str; default = { }; };
      network = mkOption { type = types.enum [ "none" "bridge" "slirp" ]; default = "none"; };
      dns = mkOption { type = types.listOf types.str; default = [ ]; };
      publish = mkOption { type = types.listOf types.str; default = [ ]; description = "--publish"; };
      egressAllow = mkOption { type = types.listOf types.str; default = [ ]; };
      egressDomains = mkOption { type = types.listOf types.str; default = [ ]; };
      secrets = mkOption {
        type = types.attrsOf types.path;
        default = { };
        description = "NAME = host file: loaded by systemd (LoadCredential), /run/secrets/NAME in the sandbox.";
      };
      readiness = {
        sdNotify = mkOption { type = types.bool; default = false; };
        tcp = mkOption { type = types.nullOr types.port; default = null; };
        exec = mkOption { type = types.nullOr types.str; default = null; };
      };
      restart = mkOption { type = types.str; default = "on-failure"; description = "no, on-failure[:MAX] or always"; };
      health = {
        cmd = mkOption { type = types.nullOr types.str; default = null; };
        interval = mkOption { type = types.str; default = "30s"; };
        retries = mkOption { type = types.int; default = 3; };
      };
      extraFlags = mkOption { type = types.listOf types.str; default = [ ]; description = "More `nucleus run` flags."; };
    };
  };
  # The launch configuration (nucleus run's flags as keys), a JSON --config file.
  configOf = name: c: pkgs.writeText "nucleus-${name}.json" (builtins.toJSON ({
    service_mode = c.serviceMode;
    memory = c.memory;
    cpus = c.cpus;
    rootfs = "${c.rootfs}";
    rootfs_manifest = "${c.rootfs.manifest}/manifest";
    network = c.network;
    env = mapAttrsToList (k: v: "${k}=${v}") c.environment;
    dns = c.dns;
    publish = c.publish;
    egress_allow = c.egressAllow;
    egress_domain = c.egressDomains;
    sd_notify = c.readiness.sdNotify;
    restart = c.restart;
  } // lib.optionalAttrs (c.pids != null) { pids = c.pids; }
    // lib.optionalAttrs (c.user != null) { user = c.user; }
    // lib.optionalAttrs (c.readiness.tcp != null) { readiness_tcp = c.readiness.tcp; }
    // lib.optionalAttrs (c.readiness.exec != null) { readiness_exec = c.readiness.exec; }
    // lib.optionalAttrs (c.health.cmd != null) {
      health_cmd = c.health.cmd;
      health_interval = c.health.interval;
      health_retries = c.health.retries;
    }));
  unitOf = name: c: pkgs.runCommand "nucleus-${name}-unit" { } ''
    mkdir -p $out/lib/systemd/system
    ${nucleus}/bin/nucleus systemd unit ${escapeShellArg name} \
      --nucleus ${nucleus}/bin/nucleus \
      --config ${configOf name c} \
      --rootfs-sha256 "$(cat ${c.rootfs.manifest}/sha256)" \
      ${lib.concatStringsSep " " (mapAttrsToList (n: p: "--load-credential ${escapeShellArg "${n}:${toString p}"}") c.secrets)} \
      ${escapeShellArgs c.extraFlags} \
      -- ${escapeShellArgs c.command} \
      > $out/lib/systemd/system/nucleus-${name}.service
  '';
in
{
  options.services.nucleus.containers = mkOption {
    type = types.attrsOf (types.submodule container);
    default = { };
    description = "Services in nucleus sandboxes, one systemd unit (nucleus-<name>.service) each.";
  };

  config = lib.mkIf (cfg.containers != { }) {
    environment.systemPackages = [ nucleus ];
    systemd.packages = mapAttrsToList unitOf cfg.containers;
    # Units from packages are enabled here (their [Install] section is not read).
    systemd.services = mapAttrs' (name: _: nameValuePair "nucleus-${name}" {
      wantedBy = [ "multi-user.target" ];
      overrideStrategy = "asDropin";
    }) cfg.containers;
  };
}
