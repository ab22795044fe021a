#!/usr/bin/env bash
# Each CI gate fails on a fault seeded for it (issue 15: "each was shown to fail on a seeded fault").
# For every gate: a fresh copy of HEAD in a temporary directory (a git repository of its own, so the
# secret scan sees what git would commit; node_modules linked entry by entry from this checkout and
# never written), the fault applied, then the gate's own command from .ci/run. The gate must fail, and
# its output must name the fault (so it failed for that reason, not another).
#
#   bash scripts/seeded-faults.sh              every gate (about 6 minutes)
#   bash scripts/seeded-faults.sh lint audit   only these
#
# Prints one line per gate and exits 1 if a gate passed with its fault in place. The results of the
# last run are in CONTRIBUTING.md ("Every gate fails on a seeded fault").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/opendip-seeded-faults.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A copy of HEAD to break. node_modules: a link per package; for the licences gate, whose SBOM comes
# from `npm ls` (which takes linked packages for extraneous ones), a tree of hard links instead (only
# new files are added to it, so this checkout's are never written).
copy() {
  local dir="$work/$1"
  mkdir -p "$dir"
  git -C "$root" archive HEAD | tar -x -C "$dir"
  if [ "$1" = licences ]; then
    cp -al "$root/node_modules" "$dir/node_modules"
  else
    mkdir "$dir/node_modules"
    for entry in "$root"/node_modules/* "$root"/node_modules/.bin "$root"/node_modules/.package-lock.json; do
      [ -e "$entry" ] && ln -s "$entry" "$dir/node_modules/"
    done
  fi
  git -C "$dir" init -q
  git -C "$dir" add -A
  git -C "$dir" -c user.name=seeded -c user.email=seeded@localhost commit -qm 'HEAD as it is'
  printf '%s' "$dir"
}

# The faults, one per gate: what is done to the copy.
fault_lint() { # product code that evaluates a string
  printf 'export const run = (code: string): unknown => eval(code);\n' > src/seeded-fault.ts
}
fault_audit() { # a high advisory nobody accepted, in a saved `npm audit --json` report (the registry
  # mirror of CI answers no audit requests, so the gate is fed the report the service would give)
  cat > seeded-audit.json <<'JSON'
{"auditReportVersion":2,"vulnerabilities":{"undici":{"name":"undici","severity":"high","isDirect":true,
"via":[{"source":9001,"name":"undici","dependency":"undici","title":"seeded: request smuggling","url":"https://github.com/advisories/GHSA-seed-seed-seed","severity":"high","range":"<99"}],
"effects":[],"range":"<99","nodes":["node_modules/undici"],"fixAvailable":false}},
"metadata":{"vulnerabilities":{"info":0,"low":0,"moderate":0,"high":1,"critical":0,"total":1}}}
JSON
}
fault_secrets() { # a private key left in the tree (untracked, not ignored: git would commit it)
  openssl genrsa 2048 > seeded.pem 2>/dev/null
}
fault_licences() { # a production dependency under GPL-3.0
  rm "node_modules/.package-lock.json"
  mkdir node_modules/seeded-gpl
  printf '{"name":"seeded-gpl","version":"1.0.0","license":"GPL-3.0-only","main":"index.js"}\n' > node_modules/seeded-gpl/package.json
  : > node_modules/seeded-gpl/index.js
  node -e "const f='package.json',p=require('./'+f);p.dependencies['seeded-gpl']='1.0.0';require('fs').writeFileSync(f,JSON.stringify(p,null,2))"
}
fault_tests() { # the replay guard stops refusing a replayed signature
  sed -i 's/    if (seen.replayed) {/    if (seen.replayed \&\& Date.now() < 0) {/' src/pipeline/authenticate.ts
  grep -q 'Date.now() < 0' src/pipeline/authenticate.ts
}
fault_fuzzing() { # a participant's status-message webhook route loses its owner check
  sed -i "s/{ config: { access: 'self' }/{ config: { access: 'participant' }/g" src/api/routes/status.ts
  grep -q "access: 'participant' }, schema: { body: publishedSchema('WebhookConfig')" src/api/routes/status.ts
}

# gate name | command (as .ci/run runs it, narrowed where noted) | what its output must say
declare -A command expect
command[lint]='npm run --silent lint'
expect[lint]='no-eval|detect-eval-with-expression'
command[audit]='npm run --silent audit:deps -- --allow-unavailable --report seeded-audit.json'
expect[audit]='GHSA-seed-seed-seed'
command[secrets]='npm run --silent secrets'
expect[secrets]='seeded\.pem'
command[licences]='npm run --silent security:summary -- --check'
expect[licences]='seeded-gpl'
# npm test (type check, layers, vitest) with vitest narrowed to the suite that covers the fault.
command[tests]='npm test -- test/hostile/identity.test.ts'
expect[tests]='FAIL .*replayed signatures'
command[fuzzing]='npm run --silent test:fuzz'
expect[fuzzing]='in :recipientId'

gates=("$@")
[ ${#gates[@]} -eq 0 ] && gates=(lint audit secrets licences tests fuzzing)
passed_with_fault=()
for gate in "${gates[@]}"; do
  [ -n "${command[$gate]:-}" ] || { echo "unknown gate: $gate"; exit 2; }
  dir=$(copy "$gate")
  (cd "$dir" && "fault_$gate") || { echo "gate $gate: the fault could not be applied"; passed_with_fault+=("$gate"); continue; }
  start=$SECONDS
  (cd "$dir" && eval "${command[$gate]}") > "$work/$gate.log" 2>&1
  rc=$?
  finding=$(grep -E -m1 "${expect[$gate]}" "$work/$gate.log" | sed 's/^[[:space:]]*//' | cut -c1-160)
  if [ $rc -ne 0 ] && [ -n "$finding" ]; then
    echo "gate $gate: FAILED as it should (exit $rc, $((SECONDS - start)) s): $finding"
  else
    echo "gate $gate: NOT failed by its fault (exit $rc); last lines:"
    tail -20 "$work/$gate.log"
    passed_with_fault+=("$gate")
  fi
done
if [ ${#passed_with_fault[@]} -gt 0 ]; then
  echo "gates that did not fail on their fault: ${passed_with_fault[*]}"
  exit 1
fi
echo "every gate failed on its seeded fault: ${gates[*]}"
