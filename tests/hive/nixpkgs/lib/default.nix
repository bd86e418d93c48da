# A small stand-in for nixpkgs' lib, for the hive tests (there is no nixpkgs on the test
# machines). It has the functions that hives and our hive evaluator use, with the behaviour
# of nixpkgs' lib for them, and a module system of its own that behaves like nixpkgs' for
# what NixOS configurations written for colmena use: imports (paths deduplicated, breadth
# first as nixpkgs' genericClosure walk), function modules called with only the arguments
# they name (config, options, lib, specialArgs, then _module.args), shorthand modules,
# mkIf/mkMerge/mkOverride (mkForce 50, plain 100, mkDefault 1000, mkOptionDefault 1500 and
# option defaults), mkOrder (mkBefore 500, 1000, mkAfter 1500), typed options with checks,
# submodules with `name`, and definitions of options that do not exist rejected unless
# _module.check = false.
#
# Written for these tests only; what it lacks (freeform types, disabledModules, renamed
# options, documentation) no test hive uses.
let
  inherit (builtins) attrNames concatMap elem elemAt filter genList head isAttrs isBool
    isInt isList isPath isString length listToAttrs tail typeOf;

  lib = rec {
    version = "25.05pre-standin";
    trivial = { inherit version; };

    id = x: x;
    const = x: _: x;
    flip = f: a: b: f b a;
    fix = f: let x = f x; in x;
    extends = overlay: f: self: let super = f self; in super // overlay self super;
    foldl' = builtins.foldl';
    foldl = builtins.foldl';
    foldr = op: nul: list:
      let n = length list; go = i: if i == n then nul else op (elemAt list i) (go (i + 1));
      in go 0;
    last = l: elemAt l (length l - 1);
    init = l: genList (elemAt l) (length l - 1);
    flatten = x: if isList x then concatMap flatten x else [ x ];
    unique = builtins.foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: l: if c then l else [ ];
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: s: if c then s else { };
    toList = x: if isList x then x else [ x ];
    imap1 = f: l: genList (i: f (i + 1) (elemAt l i)) (length l);
    imap0 = f: l: genList (i: f i (elemAt l i)) (length l);
    concatLists = builtins.concatLists;
    concatMap = builtins.concatMap;
    any = builtins.any;
    all = builtins.all;
    elem = builtins.elem;
    filter = builtins.filter;
    head = builtins.head;
    concatStrings = builtins.concatStringsSep "";
    concatStringsSep = builtins.concatStringsSep;
    concatMapStrings = f: l: concatStrings (map f l);
    concatMapStringsSep = sep: f: l: concatStringsSep sep (map f l);
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    versionAtLeast = v1: v2: builtins.compareVersions v1 v2 >= 0;
    versionOlder = v1: v2: builtins.compareVersions v2 v1 > 0;
    assertMsg = pred: msg: pred || builtins.throw msg;
    mapAttrs = builtins.mapAttrs;
    attrValues = builtins.attrValues;
    attrNames = builtins.attrNames;
    hasAttr = builtins.hasAttr;
    nameValuePair = name: value: { inherit name value; };
    filterAttrs = pred: set: listToAttrs (concatMap
      (n: let v = set.${n}; in if pred n v then [ { name = n; value = v; } ] else [ ])
      (attrNames set));
    mapAttrs' = f: set: listToAttrs (map (n: f n set.${n}) (attrNames set));
    mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
    genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
    zipAttrsWith = builtins.zipAttrsWith;
    attrByPath = path: default: set:
      if path == [ ] then set
      else if isAttrs set && set ? ${head path} then attrByPath (tail path) default set.${head path}
      else default;
    setAttrByPath = path: v: if path == [ ] then v else { ${head path} = setAttrByPath (tail path) v; };
    isDerivation = x: isAttrs x && (x.type or null) == "derivation";
    recursiveUpdate = a: b: a // builtins.mapAttrs
      (n: v: if isAttrs v && isAttrs (a.${n} or null) && !(isDerivation v) then recursiveUpdate a.${n} v else v)
      b;
    functionArgs = f:
      if f ? __functor then f.__functionArgs or (functionArgs (f.__functor f))
      else builtins.functionArgs f;
    setFunctionArgs = f: args: { __functor = self: f; __functionArgs = args; };
    isFunction = f: builtins.isFunction f || (f ? __functor && isFunction (f.__functor f));
    stringAfter = deps: text: { inherit text deps; };
    showOption = concatStringsSep ".";

    # --- properties ----------------------------------------------------------------------
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool; default = false; description = "Whether to enable ${name}.";
    };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkVMOverride = mkOverride 10;
    mkOrder = priority: content: { _type = "order"; inherit priority content; };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;

    # What a value looks like in an error message.
    showVal = v:
      if isString v || isInt v || isBool v || v == null then builtins.toJSON v
      else if isPath v then toString v
      else "<${typeOf v}>";
    showDefs = defs: concatMapStrings (d: "\n- In `${d.file}': ${showVal d.value}") defs;

    # mkIf and mkMerge taken apart: the plain values of one definition.
    discharge = v:
      let t = if isAttrs v then v._type or null else null; in
      if t == "merge" then concatMap discharge v.contents
      else if t == "if" then
        (if !isBool v.condition then throw "mkIf called with a non-Boolean condition"
         else if v.condition then discharge v.content else [ ])
      else [ v ];

    # mkIf, mkMerge and mkOverride of an attribute set pushed down to its attributes: a list
    # of attribute sets.
    pushDown = v:
      let t = if isAttrs v then v._type or null else null; in
      if t == "merge" then concatMap pushDown v.contents
      else if t == "if" then map (builtins.mapAttrs (_: mkIf v.condition)) (pushDown v.content)
      else if t == "override" then map (builtins.mapAttrs (_: mkOverride v.priority)) (pushDown v.content)
      else [ v ];

    propOf = type: default: d: if isAttrs d.value && (d.value._type or null) == type then d.value.priority else default;
    stripProp = type: d: if isAttrs d.value && (d.value._type or null) == type then d // { value = d.value.content; } else d;

    # Definitions [{ file, value }] of the option at loc merged by type: properties taken
    # apart, the highest priority kept, sorted by order, each checked, then merged.
    mergeDefinitions = loc: type: defs:
      let
        discharged = concatMap (d: map (v: d // { value = v; }) (discharge d.value)) defs;
        prio = propOf "override" 100;
        highestPrio = builtins.foldl' (m: d: let p = prio d; in if p < m then p else m) 9999 discharged;
        kept = concatMap (d: map (v: d // { value = v; }) (discharge d.value))
          (map (stripProp "override") (filter (d: prio d == highestPrio) discharged));
        sorted = map (stripProp "order") (builtins.sort (a: b: propOf "order" 1000 a < propOf "order" 1000 b) kept);
        checked = map (d: if type.check d.value then d
          else throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs [ d ]}")
          sorted;
        isDefined = sorted != [ ];
        mergedValue = type.merge loc checked;
      in {
        inherit highestPrio isDefined mergedValue;
        defsFinal = sorted;
        optionalValue = if isDefined then { value = mergedValue; } else { };
      };

    mergeEqualOption = loc: defs:
      (builtins.foldl' (first: d: if d.value != first.value
        then throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first d ]}"
        else first) (head defs) (tail defs)).value;
    mergeOneOption = loc: defs:
      if length defs == 1 then (head defs).value
      else throw "The unique option `${showOption loc}' is defined multiple times. Definition values:${showDefs defs}";
    mergeDefaultOption = loc: defs:
      let list = map (d: d.value) defs; in
      if length list == 1 then head list
      else if builtins.all isList list then builtins.concatLists list
      else if builtins.all isAttrs list then builtins.foldl' (a: b: a // b) { } list
      else if builtins.all isBool list then builtins.any id list
      else if builtins.all isString list then concatStrings list
      else if builtins.all (x: x == head list) list then head list
      else throw "Cannot merge definitions of `${showOption loc}'. Definition values:${showDefs defs}";

    # --- types ---------------------------------------------------------------------------
    mkOptionType = { name, description ? name, check ? (_: true), merge ? mergeDefaultOption, ... }@a:
      { _type = "option-type"; inherit description check merge; nestedTypes = { }; } // a;

    types = rec {
      unspecified = mkOptionType { name = "unspecified"; };
      anything = mkOptionType { name = "anything"; };
      raw = mkOptionType { name = "raw"; merge = mergeOneOption; };
      bool = mkOptionType { name = "bool"; description = "boolean"; check = isBool; merge = mergeEqualOption; };
      int = mkOptionType { name = "int"; description = "signed integer"; check = isInt; merge = mergeEqualOption; };
      ints = rec {
        between = lo: hi: addCheck int (x: x >= lo && x <= hi) // {
          name = "intBetween"; description = "integer between ${toString lo} and ${toString hi} (both inclusive)";
        };
        unsigned = addCheck int (x: x >= 0) // { name = "unsignedInt"; description = "unsigned integer, meaning >=0"; };
        positive = addCheck int (x: x > 0) // { name = "positiveInt"; description = "positive integer, meaning >0"; };
        u16 = between 0 65535;
      };
      port = ints.u16;
      str = mkOptionType { name = "str"; description = "string"; check = isString; merge = mergeEqualOption; };
      nonEmptyStr = addCheck str (s: s != "");
      lines = mkOptionType {
        name = "lines"; description = "strings concatenated with \"\\n\""; check = isString;
        merge = loc: defs: concatStringsSep "\n" (map (d: d.value) defs);
      };
      path = mkOptionType {
        name = "path"; description = "path"; merge = mergeEqualOption;
        check = x: isPath x || ((isString x || (isAttrs x && x ? outPath)) && builtins.substring 0 1 (toString x) == "/");
      };
      package = mkOptionType {
        name = "package"; description = "package"; merge = mergeOneOption;
        check = x: isDerivation x || (isString x && hasPrefix builtins.storeDir x);
      };
      attrs = mkOptionType {
        name = "attrs"; description = "attribute set"; check = isAttrs;
        merge = loc: defs: builtins.foldl' (a: d: a // d.value) { } defs;
      };
      enum = values: mkOptionType {
        name = "enum"; merge = mergeEqualOption; check = x: elem x values;
        description = "one of ${concatMapStringsSep ", " (v: "\"${toString v}\"") values}";
      };
      addCheck = t: c: t // { check = x: t.check x && c x; };
      uniq = t: t // { merge = mergeOneOption; };
      nullOr = t: mkOptionType {
        name = "nullOr"; description = "null or ${t.description}";
        check = x: x == null || t.check x;
        nestedTypes.elemType = t;
        merge = loc: defs:
          let nulls = filter (d: d.value == null) defs; in
          if length nulls == length defs then null
          else if nulls == [ ] then t.merge loc defs
          else throw "The option `${showOption loc}' is defined both null and not null:${showDefs defs}";
        mergeWith = o: nullOr (mergeTypes t o.nestedTypes.elemType);
      };
      listOf = t: mkOptionType {
        name = "listOf"; description = "list of ${t.description}"; check = isList;
        nestedTypes.elemType = t;
        merge = loc: defs: map (x: x.value) (filter (x: x ? value) (builtins.concatLists (imap1
          (n: d: imap1 (m: v: (mergeDefinitions (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) t
            [ { inherit (d) file; value = v; } ]).optionalValue) d.value)
          defs)));
        mergeWith = o: listOf (mergeTypes t o.nestedTypes.elemType);
      };
      nonEmptyListOf = t: addCheck (listOf t) (l: l != [ ]);
      attrsOf = t: mkOptionType {
        name = "attrsOf"; description = "attribute set of ${t.description}"; check = isAttrs;
        nestedTypes.elemType = t;
        merge = loc: defs: builtins.mapAttrs (_: v: v.value) (filterAttrs (_: v: v ? value)
          (builtins.zipAttrsWith (n: ds: (mergeDefinitions (loc ++ [ n ]) t ds).optionalValue)
            (map (d: builtins.mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) defs)));
        mergeWith = o: attrsOf (mergeTypes t o.nestedTypes.elemType);
      };
      lazyAttrsOf = attrsOf;
      either = a: b: mkOptionType {
        name = "either"; description = "${a.description} or ${b.description}";
        check = x: a.check x || b.check x;
        merge = loc: defs:
          if builtins.all (d: a.check d.value) defs then a.merge loc defs
          else if builtins.all (d: b.check d.value) defs then b.merge loc defs
          else throw "The option `${showOption loc}' has definitions of both types:${showDefs defs}";
      };
      oneOf = ts: builtins.foldl' either (head ts) (tail ts);
      submoduleWith = { modules, specialArgs ? { }, shorthandOnlyDefinesConfig ? false }@args: mkOptionType {
        name = "submodule"; description = "submodule";
        check = x: isAttrs x || isFunction x || isPath x;
        getSubModules = modules;
        merge = loc: defs:
          let
            asModule = d:
              if !shorthandOnlyDefinesConfig then { _file = d.file; imports = [ d.value ]; }
              else if isFunction d.value then
                setFunctionArgs (a: { _file = d.file; config = d.value a; }) (functionArgs d.value)
              else if isAttrs d.value then { _file = d.file; config = d.value; }
              else { _file = d.file; imports = [ d.value ]; };
          in (evalModules {
            modules = [ { _module.args.name = mkOptionDefault (last loc); } ] ++ modules ++ map asModule defs;
            inherit specialArgs;
            prefix = loc;
          }).config;
        mergeWith = o: submoduleWith (args // { modules = modules ++ o.getSubModules; });
      };
      submodule = m: submoduleWith { shorthandOnlyDefinesConfig = true; modules = toList m; };
    };

    # Two declarations of one option: only types that know how (submodules and the types
    # holding them) merge.
    mergeTypes = a: b:
      if a ? mergeWith && a.name == b.name then a.mergeWith b
      else if a.name == b.name then a
      else throw "conflicting option types: ${a.description} and ${b.description}";

    # --- evalModules -----------------------------------------------------------------------
    evalModules = { modules, specialArgs ? { }, prefix ? [ ], ... }:
      let
        internal = {
          _file = "lib/modules.nix";
          key = "lib/modules.nix#internal";
          options._module = {
            args = mkOption { type = types.lazyAttrsOf types.raw; default = { }; };
            check = mkOption { type = types.bool; default = true; };
          };
        };

        # Module arguments are looked up only when used, so that modules may read config.
        baseArgs = { inherit lib options specialArgs; config = rawConfig; _prefix = prefix; } // specialArgs;
        call = key: m:
          if isFunction m then
            m (builtins.mapAttrs (n: _: if baseArgs ? ${n} then baseArgs.${n}
              else rawConfig._module.args.${n} or (throw "module argument `${n}' is not available (in ${key})"))
              (functionArgs m))
          else m;

        normalize = file: key: raw:
          let
            m = call key raw;
            structured = m ? config || m ? options;
          in
          if !isAttrs m then throw "module `${key}' is not an attribute set or a function returning one"
          else {
            key = toString (m.key or key);
            _file = toString (m._file or file);
            imports = m.imports or [ ];
            options = m.options or { };
            config = if structured then m.config or { }
              else removeAttrs m [ "_file" "key" "imports" "disabledModules" "meta" "_class" ];
          };

        item = parentKey: parentFile: i: m:
          let
            isP = isPath m || (isString m && hasPrefix "/" m);
            n = if isP then normalize (toString m) (toString m) (import m)
              else normalize parentFile "${parentKey}:anon-${toString i}" m;
          in { key = n.key; mod = n; };

        mods = map (x: x.mod) (builtins.genericClosure {
          startSet = imap1 (item "" "<unknown-file>") (modules ++ [ internal ]);
          operator = x: imap1 (item x.mod.key x.mod._file) x.mod.imports;
        });

        isOption = x: isAttrs x && (x._type or null) == "option";
        mergeDecl = loc: a: b:
          if a.opt ? default && b.opt ? default then
            throw "The option `${showOption loc}' in `${b.file}' is already declared in `${a.file}'."
          else {
            file = a.file;
            opt = a.opt // b.opt // (if a.opt ? type && b.opt ? type then { type = mergeTypes a.opt.type b.opt.type; } else { });
          };
        declTree = loc: decls:
          let opts = filter (d: isOption d.value) decls; in
          if opts == [ ] then
            builtins.zipAttrsWith (n: ds: declTree (loc ++ [ n ]) ds)
              (map (d: builtins.mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) decls)
          else if length opts != length decls then
            throw "The option `${showOption (prefix ++ loc)}' is declared both as an option and as a set of options."
          else {
            __standinLeaf = true;
            inherit loc;
            declarations = map (d: d.file) opts;
            opt = (builtins.foldl' (mergeDecl loc) { inherit (head opts) file; opt = (head opts).value; }
              (map (d: { inherit (d) file; opt = d.value; }) (tail opts))).opt;
          };
        decls = declTree [ ] (map (m: { file = m._file; value = m.options; }) mods);

        evalOpt = leaf: defs:
          let
            opt = leaf.opt;
            loc = prefix ++ leaf.loc;
            type = opt.type or types.unspecified;
            defaults = if opt ? default then [ { file = "the default of `${showOption loc}'"; value = mkOptionDefault opt.default; } ] else [ ];
            res = mergeDefinitions loc type (defaults ++ defs);
            value0 = if res.isDefined then res.mergedValue
              else throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option.";
          in opt // {
            value = if opt ? apply then opt.apply value0 else value0;
            inherit (res) isDefined highestPrio;
            definitions = map (d: d.value) res.defsFinal;
            files = map (d: d.file) res.defsFinal;
            inherit loc type;
            inherit (leaf) declarations;
          };

        evalTree = loc: tree: defs:
          let
            pushed = concatMap (d: map (v:
              if isAttrs v then d // { value = v; }
              else throw "A definition of `${showOption (prefix ++ loc)}' in `${d.file}' is not an attribute set.")
              (pushDown d.value)) defs;
            sub = n: concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) pushed;
            results = builtins.mapAttrs (n: t:
              if t ? __standinLeaf then evalOpt t (sub n) else evalTree (loc ++ [ n ]) t (sub n)) tree;
            here = concatMap (d: map (n: { loc = loc ++ [ n ]; inherit (d) file; value = d.value.${n}; })
              (filter (n: !(tree ? ${n})) (attrNames d.value))) pushed;
          in {
            config = builtins.mapAttrs (n: r: if tree.${n} ? __standinLeaf then r.value else r.config) results;
            options = builtins.mapAttrs (n: r: if tree.${n} ? __standinLeaf then r else r.options) results;
            unmatched = here ++ concatMap (n: if tree.${n} ? __standinLeaf then [ ] else results.${n}.unmatched)
              (attrNames tree);
          };

        top = evalTree [ ] decls (map (m: { file = m._file; value = m.config; }) mods);
        rawConfig = top.config;
        options = top.options;
        checked =
          if rawConfig._module.check && top.unmatched != [ ] then
            let u = head top.unmatched; in
            throw "The option `${showOption (prefix ++ u.loc)}' does not exist. Definition values:${showDefs [ u ]}"
          else true;
      in {
        _type = "configuration";
        config = builtins.seq checked (removeAttrs rawConfig [ "_module" ]);
        options = builtins.seq checked options;
        _module = rawConfig._module;
        type = types.submoduleWith { inherit modules specialArgs; };
      };

    modules = { inherit evalModules mkIf mkMerge mkOverride mkOrder mergeDefinitions; };
    options = { inherit mkOption mkEnableOption mergeEqualOption mergeOneOption mergeDefaultOption; };
  };
in
lib
