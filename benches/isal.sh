#!/usr/bin/env bash
# Erasure encode: Cairn's codecs (the GFNI kernel, and reed-solomon-erasure + SIMD) against
# ISA-L, same run, one core each. Needs libisal-dev (installed here if missing) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/include/isa-l/erasure_code.h ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libisal-dev >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/isal-encode" benches/isal/encode.c -lisal
echo "ISA-L (one core):"
"$out/isal-encode"
echo "Cairn's codecs: reed-solomon-erasure + SIMD (rse) and the GFNI kernel (criterion, one core):"
cargo bench --bench erasure -- "encode/(rse|gfni)/" 2>&1 | grep -E "^encode/|thrpt:" | grep -v "change" || true
