#!/usr/bin/env bash
# npm run build [-- OUT]: compiles src/ to dist/ (or OUT) so the DIP runs on plain Node, without tsx:
#   node dist/cli/main.js serve        (npm run start:prod, which execs it)
# The interface catalogue is data read at run time, not imported: it is copied beside its module.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
rm -rf "$out"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$out"
mkdir -p "$out/catalogue/generated"
cp src/catalogue/generated/*.json "$out/catalogue/generated/"
echo "built $out/ ($(find "$out" -name '*.js' | wc -l) modules); run: node $out/cli/main.js serve"
