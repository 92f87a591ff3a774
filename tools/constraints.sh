#!/usr/bin/env bash
# The suite on the newest releases of every dependency, in a fresh venv; with --write, constraints.txt
# is then rewritten to the versions it passed with.
#
#   bash tools/constraints.sh            # newest versions: install into .venv-newest, run the whole suite
#   bash tools/constraints.sh --write    # the same, and on a pass pin those versions in constraints.txt
#
# torch stays at the CPU wheel the README names (unpinned torch pulls GBs of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
write=false
[ "${1:-}" = "--write" ] && write=true
venv=.venv-newest
rm -rf "$venv"
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install torch==2.13.0
pip install --upgrade -e ".[test]"
bash tests/install_browser.sh
python -m pytest -q
if $write; then
  {
    echo "# Exact versions the whole suite passed with (bash tools/constraints.sh --write, $(date -u +%Y-%m-%d))."
    echo "# Python $(python -c 'import platform; print(platform.python_version())'); used by both README commands."
    pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' | grep -v '^neurospec'
  } > constraints.txt.tmp
  mv constraints.txt.tmp constraints.txt
  echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
fi
