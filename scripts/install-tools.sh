#!/usr/bin/env bash
# Installs the non-Python tools the tests use into $1/bin when missing.
set -euo pipefail
dest=${1:-.tools}
mkdir -p "$dest/bin"
