#!/usr/bin/env bash
# Secret scan (secretlint, .secretlintrc.json) of every file git would commit: tracked files plus
# untracked ones not ignored, so a key is caught before its first commit. Exits non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done \
  | xargs -0 node_modules/.bin/secretlint --no-glob --format stylish
echo "secret scan: $(git ls-files --cached --others --exclude-standard | wc -l) files, no finding"
