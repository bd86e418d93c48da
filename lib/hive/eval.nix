# The hive evaluator of nixos-rebuild-remote (embedded in the binary by the Makefile, see
# lib/hive.c): reads a colmena hive as colmena does and answers one question about it.
#
#   raw        the raw hive: an attrset, a function (called with {}), or a __functor set
#   evaluated  or an already evaluated hive (a flake's `colmenaHive`), used as it is
#   hermetic   true for flakes: meta.nixpkgs must be an initialized package set, no <nixpkgs>
#   what       "info"        node names, meta, every node's deployment options (key text
#                            left out: it is read later, only by the deploy that uploads it)
#              "toplevels"   { NAME = { drv; out; }; }, the system's derivation and out
#                            paths of each node in `names` (not outPath: a set with an outPath
#                            would be written to JSON as that string)
#              "introspect"  `expr` called with { lib, pkgs, nodes }
#              "keytexts"    { NAME = { KEY = text; }; }, the text keys' texts of each node
#                            in `names` (read only by a deploy that uploads them)
#              "shard"       info and toplevels at once for apply without --on: `nodes` and
#                            `meta` of the hive, `deployment` and `toplevels` of its nodes
#                            number shard, shard + shards, ... (in name order); or
#                            { nodes; tooMany = true; } when the hive has more than `limit`
#                            nodes or sets allowApplyAll = false (then nothing is evaluated)
#              "failing"     after a failed "info" or "toplevels": which of the nodes in
#                            `names` (all if empty) fail the same question (`part` is
#                            "deployment" or "toplevel"), found with tryEval, so that an
#                            error can be put under its node's name
#
# A node must build the very system colmena builds for it, so it is evaluated with
# colmena's modules in colmena's order: the nixpkgs module, the key assertions, the key
# ownership activation script, the key units, the deployment options, `defaults`, then the
# node's own modules; with specialArgs { name; nodes; } // meta.specialArgs //
# meta.nodeSpecialArgs.NAME. Only the nixpkgs lib API (and nixos/lib/eval-config.nix) is
# used: the tests' stand-in nixpkgs and a real one must both work.
{ raw ? null, evaluated ? null, hermetic ? false, what ? "info", names ? [ ], expr ? null
, node ? null, key ? null, part ? "deployment", shard ? 0, shards ? 1, limit ? 0 }:
let
  inherit (builtins) attrNames elem filter hasAttr isAttrs length listToAttrs typeOf;

  schema = "v0.5";
  reserved = [ "defaults" "network" "meta" ];

  # --- the raw hive ------------------------------------------------------------------------
  hive0 =
    if typeOf raw == "lambda" || (isAttrs raw && raw ? __functor) then raw { }
    else if isAttrs raw then raw
    else throw "the hive must be an attribute set (or a function returning one), not a ${typeOf raw}";

  rawMeta =
    if hive0 ? meta && hive0 ? network then
      throw "the hive has both `meta` and `network`: keep `meta` (`network` is its NixOps name)"
    else hive0.meta or hive0.network or { };

  # A package set from what meta.nixpkgs or meta.nodeNixpkgs.NAME holds.
  toPkgs = where: v:
    let
      refuse = what': throw ''
        ${where} is ${what'}, which a flake's hive may not use: give an initialized package set,
        e.g. ${where} = import nixpkgs { system = "x86_64-linux"; };'';
    in
    if typeOf v == "path" || (isAttrs v && v ? outPath) then
      (if hermetic then refuse "a path or a flake input" else toPkgs where (import v))
    else if typeOf v == "lambda" then
      (if hermetic then refuse "a function (import nixpkgs)" else v { overlays = [ ]; })
    else if isAttrs v then
      (if v ? outputs then refuse "a flake input" else v)
    else throw "${where} must be a path to nixpkgs, the nixpkgs function, or a package set (not a ${typeOf v})";

  pkgs =
    if rawMeta ? nixpkgs && rawMeta.nixpkgs != null then toPkgs "meta.nixpkgs" rawMeta.nixpkgs
    else if hermetic then throw "meta.nixpkgs must be set in a flake's hive"
    else toPkgs "meta.nixpkgs" <nixpkgs>;
  lib = pkgs.lib;
  types = lib.types;

  # --- meta, checked as colmena checks it ------------------------------------------------
  metaModule = { lib, ... }: {
    options = {
      name = lib.mkOption { type = types.str; default = "hive"; };
      description = lib.mkOption { type = types.str; default = "A Colmena Hive"; };
      nixpkgs = lib.mkOption { type = types.unspecified; default = null; };
      nodeNixpkgs = lib.mkOption { type = types.attrsOf types.unspecified; default = { }; };
      nodeSpecialArgs = lib.mkOption { type = types.attrsOf types.unspecified; default = { }; };
      machinesFile = lib.mkOption {
        type = types.nullOr types.path;
        default = null;
        apply = v: if v == null then null else toString v;
      };
      specialArgs = lib.mkOption { type = types.attrsOf types.unspecified; default = { }; };
      allowApplyAll = lib.mkOption { type = types.bool; default = true; };
    };
  };
  meta = (lib.evalModules { modules = [ metaModule rawMeta ]; }).config;

  hive =
    if hive0 ? __schema then
      throw "this is an evaluated hive (it has __schema): use it as the flake's `colmenaHive` output, not `colmena`"
    else removeAttrs ({ defaults = { }; } // hive0) [ "meta" "network" ];
  nodeNames = filter (n: !elem n reserved) (attrNames hive);
  modulesOf = name:
    let v = hive.${name}; in
    if typeOf v == "list" then v else [ v ];

  # --- the modules colmena adds to every node ------------------------------------------------
  keyOptions = { name, config, ... }: {
    options = {
      name = lib.mkOption { type = types.str; default = name; };
      text = lib.mkOption { type = types.nullOr types.str; default = null; };
      keyFile = lib.mkOption {
        type = types.nullOr types.path;
        default = null;
        apply = v: if v == null then null else toString v;
      };
      keyCommand = lib.mkOption {
        type = types.nullOr (types.addCheck (types.listOf types.str) (l: length l > 0));
        default = null;
      };
      destDir = lib.mkOption { type = types.path; default = "/run/keys"; };
      path = lib.mkOption {
        type = types.path;
        default = "${config.destDir}/${config.name}";
        internal = true;
      };
      user = lib.mkOption { type = types.str; default = "root"; };
      group = lib.mkOption { type = types.str; default = "root"; };
      permissions = lib.mkOption { type = types.str; default = "0600"; };
      uploadAt = lib.mkOption {
        type = types.enum [ "pre-activation" "post-activation" ];
        default = "pre-activation";
      };
    };
  };

  deploymentModule = { name, ... }: {
    options.deployment = {
      targetHost = lib.mkOption { type = types.nullOr types.str; default = name; };
      targetPort = lib.mkOption { type = types.nullOr types.ints.unsigned; default = null; };
      targetUser = lib.mkOption { type = types.nullOr types.str; default = "root"; };
      allowLocalDeployment = lib.mkOption { type = types.bool; default = false; };
      buildOnTarget = lib.mkOption { type = types.bool; default = false; };
      tags = lib.mkOption { type = types.listOf types.str; default = [ ]; };
      keys = lib.mkOption { type = types.attrsOf (types.submodule keyOptions); default = { }; };
      replaceUnknownProfiles = lib.mkOption { type = types.bool; default = true; };
      privilegeEscalationCommand = lib.mkOption {
        type = types.listOf types.str;
        default = [ "sudo" "-H" "--" ];
      };
      sshOptions = lib.mkOption { type = types.listOf types.str; default = [ ]; };
    };
  };

  keySources = k: filter (s: k.${s} != null) [ "text" "keyCommand" "keyFile" ];

  keyAssertions = name: { config, ... }: {
    assertions = lib.mapAttrsToList (k: v: {
      assertion = length (keySources v) == 1;
      message = "deployment.keys.${k} of node '${name}' must set exactly one of text, keyCommand and keyFile";
    }) config.deployment.keys;
  };

  # What follows ends up in the system, so its text must be, byte for byte, what colmena's
  # modules produce: the same store path for the same node is the point.
  textLines = ls: lib.concatStringsSep "\n" ls + "\n";

  keyChown = { config, ... }:
    let
      early = lib.filterAttrs (_: k: k.uploadAt == "pre-activation") config.deployment.keys;
      chownOne = _: k:
        let p = "${k.destDir}/${k.name}"; in
        textLines [
          ''if [ -f "${p}" ]; then''
          "  if ! chown ${k.user}:${k.group} \"${p}\"; then"
          "    # Error should be visible in stderr"
          "    failed=1"
          "  fi"
          "else"
          "  >&2 echo \"Key ${p} does not exist. Skipping chown.\""
          "fi"
        ];
      chowns = lib.mapAttrsToList chownOne early;
      after = if config.system.activationScripts ? groups then [ "groups" ] else [ "users" ];
    in {
      system.activationScripts.colmena-chown-keys = lib.mkIf (length chowns != 0)
        (lib.stringAfter after (textLines [
          "# This script is injected by Colmena to change the ownerships"
          "# of keys (`deployment.keys`) deployed before system activation."
          ""
          ''>&2 echo "setting up key ownerships..."''
          ""
          "# We set the ownership of as many keys as possible before failing"
          "failed="
          ""
          (lib.concatStringsSep "\n" chowns)
          ""
          ''if [ -n "$failed" ]; then''
          "  >&2 echo \"Failed to set the ownership of some keys.\""
          ""
          "  # The activation script has a trap to handle failed"
          "  # commands and print out various debug information."
          "  # Let's trigger that instead of `exit 1`."
          "  false"
          "fi"
        ]));
    };

  keyUnits = { config, pkgs, ... }:
    let
      unitsOf = f: lib.mapAttrs' (n: k: lib.nameValuePair "${n}-key" (f k)) config.deployment.keys;
    in {
      systemd.paths = unitsOf (k: {
        wantedBy = [ "paths.target" ];
        pathConfig = { PathExists = k.path; };
      });
      systemd.services = unitsOf (k: {
        enable = true;
        serviceConfig = {
          TimeoutStartSec = "infinity";
          Restart = "always";
          RestartSec = "100ms";
        };
        path = [ pkgs.inotify-tools ];
        preStart = textLines [
          ''(while read f; do if [ "$f" = "${k.name}" ]; then break; fi; done \''
          "  < <(inotifywait -qm --format '%f' -e create,move ${k.destDir}) ) &"
          ''if [[ -e "${k.path}" ]]; then''
          "  echo 'flapped down'"
          "  kill %1"
          "  exit 0"
          "fi"
          "wait %1"
        ];
        script = textLines [
          ''inotifywait -qq -e delete_self "${k.path}" &''
          ''if [[ ! -e "${k.path}" ]]; then''
          "  echo 'flapped up'"
          "  exit 0"
          "fi"
          "wait %1"
        ];
      });
    };

  # --- nodes -------------------------------------------------------------------------------
  evalNode = name: modules:
    let
      npkgs =
        if hasAttr name meta.nodeNixpkgs then toPkgs "meta.nodeNixpkgs.${name}" meta.nodeNixpkgs.${name}
        else pkgs;
      nixpkgsModule = { config, lib, ... }:
        let typed = lib.versionAtLeast lib.version "22.11pre"; in {
          nixpkgs.overlays = lib.mkBefore npkgs.overlays;
          nixpkgs.config = if typed then lib.mkBefore npkgs.config else lib.mkOptionDefault npkgs.config;
          warnings =
            let
              ignored = filter (k: !elem k ([ "doCheckByDefault" "warnings" "allowAliases" ] ++ attrNames config.nixpkgs.config))
                (attrNames npkgs.config);
            in lib.optional (!typed && ignored != [ ])
              "meta.nixpkgs sets nixpkgs.config keys that this nixpkgs (before 22.11) ignores: ${toString ignored}";
        };
    in
    import (npkgs.path + "/nixos/lib/eval-config.nix") {
      inherit (npkgs) system;
      modules = [ nixpkgsModule (keyAssertions name) keyChown keyUnits deploymentModule hive.defaults ] ++ modules;
      specialArgs = { inherit name; nodes = uncheckedNodes; }
        // meta.specialArgs // (meta.nodeSpecialArgs.${name} or { });
    };

  forNames = ns: f: listToAttrs (map (n: { name = n; value = f n; }) ns);
  # The `nodes` argument of modules: evaluated without checking every option, as colmena does.
  uncheckedNodes = forNames nodeNames (n: evalNode n ([ { _module.check = false; } ] ++ modulesOf n));
  nodes = forNames nodeNames (n: evalNode n (modulesOf n));

  # --- answers -----------------------------------------------------------------------------
  checkName = n: if elem n nodeNames then n else throw "the hive has no node '${n}'";

  # A key without its secret: which sources are set, and the ones that are not secret.
  keyInfo = k: removeAttrs k [ "text" ] // { sources = keySources k; };
  # builtins only: an evaluated hive has no pkgs here
  textsOf = keys: listToAttrs (filter (x: x.value != null)
    (map (n: { name = n; value = keys.${n}.text or null; }) (attrNames keys)));
  deploymentInfo = d: d // { keys = builtins.mapAttrs (_: keyInfo) d.keys; };

  fromRaw = {
    info = {
      __schema = schema;
      nodes = nodeNames;
      meta = { inherit (meta) name description machinesFile allowApplyAll; };
      deployment = forNames nodeNames (n: deploymentInfo nodes.${n}.config.deployment);
    };
    toplevels = forNames (map checkName names) (n:
      let t = nodes.${n}.config.system.build.toplevel; in { drv = t.drvPath; out = t.outPath; });
    introspect = expr { inherit lib pkgs; nodes = uncheckedNodes; };
    keytexts = forNames (map checkName names) (n: textsOf nodes.${n}.config.deployment.keys);
    failing = failingOf nodeNames (n:
      if part == "toplevel" then nodes.${n}.config.system.build.toplevel.drvPath
      else deploymentInfo nodes.${n}.config.deployment);
    shard = shardOf nodeNames fromRaw.info.meta
      (n: deploymentInfo nodes.${n}.config.deployment);
  };

  # every shards-th name from number shard on
  pick = all: builtins.genList (i: builtins.elemAt all (shard + i * shards))
    ((length all - shard + shards - 1) / shards);
  shardOf = all: meta': dep:
    if limit > 0 && length all > limit || !meta'.allowApplyAll then { nodes = all; tooMany = true; }
    else let ns = pick all; in {
      __schema = schema;
      nodes = all;
      meta = meta';
      deployment = forNames ns dep;
      toplevels = forNames ns (n:
        let t = nodes.${n}.config.system.build.toplevel; in { drv = t.drvPath; out = t.outPath; });
    };

  failingOf = all: get: filter
    (n: !(builtins.tryEval (let v = get n; in builtins.deepSeq v v)).success)
    (if names == [ ] then all else names);

  ev =
    if !(evaluated ? __schema) then
      throw "the flake's colmenaHive output is not an evaluated hive (make it with colmena's makeHive)"
    else if evaluated.__schema != schema then
      throw "the flake's colmenaHive output has hive schema ${evaluated.__schema}, not ${schema}: use a colmena of the 0.5 series in the flake"
    else evaluated;
  evNames = attrNames ev.nodes;
  fromEvaluated = {
    info = {
      __schema = schema;
      nodes = evNames;
      meta = ev.metaConfig;
      deployment = builtins.mapAttrs (_: deploymentInfo) ev.deploymentConfig;
    };
    toplevels = builtins.mapAttrs (n: drv: { inherit drv; out = ev.toplevel.${n}.outPath; })
      (ev.evalSelectedDrvPaths (map (n: if elem n evNames then n else throw "the hive has no node '${n}'") names));
    introspect = ev.introspect expr;
    keytexts = forNames names (n: textsOf ev.deploymentConfig.${n}.keys);
    failing = failingOf evNames (n:
      if part == "toplevel" then ev.toplevel.${n}.drvPath
      else deploymentInfo ev.deploymentConfig.${n});
    shard =
      if limit > 0 && length evNames > limit || !(ev.metaConfig.allowApplyAll or true)
      then { nodes = evNames; tooMany = true; }
      else let ns = pick evNames; in {
        __schema = schema;
        nodes = evNames;
        meta = ev.metaConfig;
        deployment = forNames ns (n: deploymentInfo ev.deploymentConfig.${n});
        toplevels = builtins.mapAttrs (n: drv: { inherit drv; out = ev.toplevel.${n}.outPath; })
          (ev.evalSelectedDrvPaths ns);
      };
  };
in
(if evaluated != null then fromEvaluated else fromRaw).${what}
