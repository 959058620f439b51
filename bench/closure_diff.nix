# Benchmark closures for bench/closure_diff.py: `n` packages in a tree (each
# refers to package i/3), a system-path and a toplevel, built offline with
# /bin/sh. `bump` packages at the leaves get a new version (and new bytes),
# so two systems differ in about bump/n of their paths.
{ n ? 2000, bump ? 0, seed ? "cdbench" }:
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin";
    args = [ "-c" script ];
  };
  pkg = i:
    let
      version = if i >= n - bump then "1.1" else "1.0";
      size = 1024 + (i * 7919) - ((i * 7919) / 65536) * 65536;
      dep = if i == 0 then "" else "echo ${pkgs (i / 3)} > $out/ref";
    in
    mk "${seed}-pkg${toString i}-${version}" ''
      mkdir -p $out/bin
      head -c ${toString size} /dev/urandom > $out/data
      printf '#!/bin/sh\necho ${toString i}\n' > $out/bin/run
      chmod +x $out/bin/run
      ${dep}
    '';
  all = builtins.genList pkg n;
  pkgs = i: builtins.elemAt all i;
  syspath = mk "${seed}-system-path" ''
    mkdir $out
    cat > $out/pkgs <<'LIST'
    ${builtins.concatStringsSep "\n" (map toString all)}
    LIST
  '';
in
mk "nixos-system-${seed}-24.11" "mkdir $out; ln -s ${syspath} $out/sw"
