#!/usr/bin/env bash
# dynblocks developer commands. Each sets itself up: creates .venv if missing and installs what the command needs.
#   bash dev.sh train [ARGS]   the main job: `dynblocks train ARGS` (default data: CIFAR-10 if found, else the sample);
#                              installs the base package only (torch, fastai and what they need)
#   bash dev.sh test           the whole test suite: notebooks clean and exported, nbdev-test, pytest; installs the `dev` extra
#   bash dev.sh docs           the offline docs site in _docs/ and README.md (no Quarto needed)
#   bash dev.sh docs-check     build the site and check it in headless Chromium (needs Debian's chromium package)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv

installed() {  # $1: 'base' or 'dev'; true if that install is done for this pyproject.toml
  [ -f "$VENV/.dynblocks-$1" ] && [ "$(cat "$VENV/.dynblocks-$1")" = "$(sha256sum pyproject.toml | cut -d' ' -f1)" ] &&
    "$VENV/bin/python" -c 'import dynblocks' 2>/dev/null
}

setup() {  # $1: 'base' (what `dynblocks train` needs) or 'dev' (everything: tests, docs, the extras); safe to re-run
  local what=$1
  if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
  # reinstall only when the project definition changed; the dev install holds the base one
  if installed "$what" || { [ "$what" = base ] && installed dev; }; then return; fi
  local spec=.; [ "$what" = dev ] && spec='.[dev]'
  echo "dev.sh: installing dynblocks ($what) into $VENV (first run: a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  sha256sum pyproject.toml | cut -d' ' -f1 > "$VENV/.dynblocks-$what"
  echo "dev.sh: installed ($what) in ${SECONDS} s"
  if [ "$what" = dev ]; then
    # the docs-only show_doc renderer (tools/dynblocks_docs.py) on the venv's path, never inside the dynblocks package
    "$VENV/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/dynblocks-tools.pth", "w").write(sys.argv[1] + "\n")' "$PWD/tools"
  fi
}

check_nbs() {
  # fail if nbdev-export or nbdev-clean would change anything
  local before after
  before=$(find nbs dynblocks -name '*.ipynb' -o -name '*.py' | sort | xargs sha256sum)
  "$VENV/bin/nbdev-export"
  "$VENV/bin/nbdev-clean"
  after=$(find nbs dynblocks -name '*.ipynb' -o -name '*.py' | sort | xargs sha256sum)
  if [ "$before" != "$after" ]; then
    echo "dev.sh: nbdev-export or nbdev-clean changed these files; run them and commit the result:" >&2
    diff <(echo "$before") <(echo "$after") | grep '^>' | awk '{print "  " $3}' >&2
    exit 1
  fi
  echo "dev.sh: notebooks clean, library in sync (${SECONDS} s)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  train)
    setup base
    exec "$VENV/bin/dynblocks" train "$@" ;;  # its time budget counts from dynblocks' own start, not this script's
  test)
    setup dev
    check_nbs
    echo "dev.sh: nbdev-test (notebook cells; slow and cuda cells skipped; ${SECONDS} s so far)"
    "$VENV/bin/nbdev-test" --n-workers 2 --timing --cell-timing-min 5  # prints each notebook's time and its cells over 5 s
    if [ $# -gt 0 ]; then "$VENV/bin/python" -m pytest tests "$@"; exit; fi  # a chosen selection: one plain run
    # two workers with one thread each fill both cores while the other waits (a subprocess's imports, Python between the
    # tensor ops); the timed and load-aware tests (marked `serial`) then run alone with every thread
    echo "dev.sh: pytest, two workers (${SECONDS} s so far)"
    OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest tests -n 2 -m 'not slow and not browser and not serial' --durations=30
    echo "dev.sh: pytest, the timed tests alone (${SECONDS} s so far)"
    "$VENV/bin/python" -m pytest tests -m 'serial and not slow and not browser' --durations=0 ;;
  docs)
    setup dev
    "$VENV/bin/python" tools/build_docs.py "$@" ;;
  docs-check)
    setup dev
    echo "dev.sh: the docs site in headless Chromium (screenshots in _docs/screenshots/; ${SECONDS} s so far)"
    "$VENV/bin/python" -m pytest tests/test_site.py -m browser "$@" ;;
  *)
    echo "usage: bash dev.sh {train [ARGS]|test [PYTEST ARGS]|docs|docs-check}" >&2; exit 2 ;;
esac
