#!/usr/bin/env bash
# Set up .venv with the test extras (and Debian's chromium for the browser tests, when this
# machine can install it) and run the whole test suite: every marker, slow, browser and server
# tests included (plain `pytest` runs the quick selection of pyproject.toml). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed; the browser tests will be skipped" >&2
  fi
fi

if ! python3 -m venv .venv; then
  # Some Pythons ship without ensurepip (Debian's python3 without python3-venv).
  echo "python3 -m venv failed; creating .venv with virtualenv from the package index" >&2
  python3 -m pip install -q --user virtualenv \
    || python3 -m pip install -q --user --break-system-packages virtualenv
  python3 -m virtualenv -q --clear .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
exec .venv/bin/python -m pytest -m "" "$@"
