#!/bin/sh
# The TextMate engine tests/test_textmate.py tokenises the specs with: vscode-textmate and
# vscode-oniguruma (the versions of tests/textmate/package.json), installed into
# tests/textmate/node_modules (git-ignored). Needs node and npm; tools/test.sh calls it when
# npm is there, and the test skips without them.
set -e
cd "$(dirname "$0")/../tests/textmate"
npm install --no-audit --no-fund --loglevel=error
