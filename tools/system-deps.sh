#!/usr/bin/env bash
# Install the Debian packages named as arguments when any is missing.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -euo pipefail
missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# A Python from elsewhere (pyenv, a distribution build) that already has
# venv and headers is fine: only ask for Debian's python3 packages when the
# interpreter we will use cannot make a venv.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  keep=()
  for pkg in "${missing[@]:-}"; do
    case "$pkg" in python3|python3-venv|python3-dev|"") ;; *) keep+=("$pkg");; esac
  done
  missing=("${keep[@]:-}")
fi
[ -z "${missing[*]:-}" ] && exit 0
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "not a Debian system: install the equivalents of: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
