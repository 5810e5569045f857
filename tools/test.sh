#!/bin/sh
# The whole test suite on a fresh machine: Graphviz's `dot` (the diagram tests render with
# it; installed with apt when missing, which needs root), zsh and Chromium when root and apt
# can (tools/install_chromium.sh), the package with its test extra
# (pytest, torch, torchvision and onnx as references; torch 2.14.1 and torchvision 0.29.1) into
# the virtual environment .venv-test (created here, reused later; never the active Python's
# site-packages), then pytest in it, one worker per core (pytest-xdist; ARCHSPEC_TEST_WORKERS=0
# runs in one process). Arguments go to pytest.
set -e
cd "$(dirname "$0")/.."
if ! command -v dot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y graphviz
    else
        echo "tools/test.sh: Graphviz is missing: install it (apt-get install graphviz," \
             "brew install graphviz, or https://graphviz.org/download/) and run again" >&2
        exit 2
    fi
fi
# zsh, for the completion tests of tests/test_completion.py (they skip without it)
if ! command -v zsh >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
then
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y zsh; } || \
        echo "tools/test.sh: zsh did not install; its completion tests will skip" >&2
fi
# TeX Live with booktabs and siunitx, for the test that compiles `summary --format latex`:
# only with ARCHSPEC_TEST_TEX=1 (about 5 minutes to install, too much of CI's budget; without
# it the test parses the table instead)
if [ "${ARCHSPEC_TEST_TEX:-0}" = 1 ] && ! command -v pdflatex >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        texlive-latex-base texlive-latex-recommended texlive-science || \
        echo "tools/test.sh: TeX Live did not install; the LaTeX compile test will skip" >&2
fi
# headless Chromium for the HTML diagram's browser test (skipped without one)
sh tools/install_chromium.sh || echo "tools/test.sh: no Chromium: its test will skip" >&2
# the torch and torchvision the references were checked against (tests/test_library.py
# compares with torchvision's own definitions of these versions)
if [ ! -x .venv-test/bin/python ]; then
    python3 -m venv .venv-test || {
        echo "tools/test.sh: could not create the virtual environment .venv-test (on Debian and" \
             "Ubuntu: apt-get install python3-venv)" >&2
        exit 2
    }
fi
.venv-test/bin/python -m pip install '.[test]' 'torch==2.14.1' 'torchvision==0.29.1'
# the TextMate engine of tests/test_textmate.py (which skips without node)
if command -v npm >/dev/null 2>&1; then
    sh tools/setup_textmate.sh || echo "tools/test.sh: npm could not install the TextMate" \
        "engine; tests/test_textmate.py will skip" >&2
fi
.venv-test/bin/python -m pytest -n "${ARCHSPEC_TEST_WORKERS:-auto}" "$@"
