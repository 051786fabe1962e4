#!/usr/bin/env bash
# radrl as a user installs it: build the sdist and the wheel (python -m build), install the wheel into a fresh
# virtual environment outside the clone (CPU torch through constraints/cpu.txt), and run the commands from an
# empty folder: --version, recipes list / copy / path, and the demo at smoke size with the packaged recipes.
# A file the commands need but the wheel lacks fails here (tests/test_wheel.py checks the file list too).
# Usage: .ci/wheel_check.sh [PYTHON]   (PYTHON: an interpreter with `build`; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${1:-$REPO/.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/radrl-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
case "$WORK" in "$REPO"/*) echo "wheel_check: $WORK is inside the clone; set TMPDIR elsewhere" >&2; exit 1;; esac

step() { echo "[wheel_check $(date +%H:%M:%S)] $*"; }

step "build sdist + wheel -> $WORK/dist"
"$PY" -m build --outdir "$WORK/dist" "$REPO" > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/radrl-*.whl)
VERSION=$(basename "$WHEEL" | cut -d- -f2)

step "fresh venv + pip install $(basename "$WHEEL") (-c constraints/cpu.txt)"
python3 -m venv "$WORK/venv"
# --no-compile: byte-compiling every module of torch and transformers costs minutes; imports compile what they use.
"$WORK/venv/bin/python" -m pip install -q --no-compile -c "$REPO/constraints/cpu.txt" "$WHEEL" > "$WORK/pip.log" 2>&1 \
  || { grep -v "is ignored: it is neither a file nor a directory" "$WORK/pip.log" | tail -40; exit 1; }

# An empty folder, far from the clone; nothing on PYTHONPATH; no hub.
mkdir "$WORK/user" && cd "$WORK/user"
unset PYTHONPATH
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
RADRL="$WORK/venv/bin/radrl"

step "the installed package is the one imported"
where=$("$WORK/venv/bin/python" -c "import radrl; print(radrl.__file__)")
case "$where" in "$WORK/venv/"*) ;; *) echo "radrl imported from $where, not the fresh venv" >&2; exit 1;; esac

step "radrl --version"
test "$("$RADRL" --version)" = "radrl $VERSION"

step "radrl recipes list / copy / path"
"$RADRL" recipes list > "$WORK/list.txt" && head -3 "$WORK/list.txt"
for f in demo/sft.yaml qwen3vl-8b/grpo_report.yaml accelerate/deepspeed_zero3.yaml; do
  grep -q "  ${f#*/} " "$WORK/list.txt" || { echo "recipes list lacks $f" >&2; exit 1; }
done
"$RADRL" recipes copy qwen3vl-8b ./my-recipes > /dev/null
test -f my-recipes/qwen3vl-8b/sft.yaml
grep -q "^grpo_recipe: my-recipes/qwen3vl-8b/grpo_report.yaml" my-recipes/qwen3vl-8b/four_way_report.yaml
# every file a copied recipe's settings name (its accelerate config) was copied beside it
for f in $(grep -hv "^ *#" my-recipes/qwen3vl-8b/*.yaml | grep -o "my-recipes/[a-z0-9_./-]*\.yaml"); do
  test -f "$f" || { echo "recipes copy left out $f" >&2; exit 1; }
done
"$RADRL" recipes copy demo > /dev/null && test -f recipes/demo/grpo_grounding.yaml
test -f "$("$RADRL" recipes path accelerate/fsdp.yaml)"

step "radrl demo --smoke (packaged recipes, outputs under $WORK/user/runs)"
"$RADRL" demo --smoke --out runs/demo > "$WORK/demo.log" 2>&1 || { tail -60 "$WORK/demo.log"; exit 1; }
grep -a "^\[[0-9]/[0-9]\]\|done in\|^report:" "$WORK/demo.log" | sed 's/^/    /'
for f in report.md results.json compare/leaderboard.md compare/report.html sft/radrl.json eval-sft/manifest.json; do
  test -s "runs/demo/$f" || { echo "radrl demo --smoke wrote no runs/demo/$f" >&2; tail -30 "$WORK/demo.log"; exit 1; }
done
"$WORK/venv/bin/python" - "$VERSION" <<'EOF'
import json, sys
v = sys.argv[1]
recorded = {"results.json": json.load(open("runs/demo/results.json"))["radrl_version"],
            "sft/radrl.json": json.load(open("runs/demo/sft/radrl.json"))["radrl_version"],
            "eval-sft/manifest.json": json.load(open("runs/demo/eval-sft/manifest.json"))["radrl_version"],
            "compare/leaderboard.json": json.load(open("runs/demo/compare/leaderboard.json"))["radrl_version"]}
wrong = {k: r for k, r in recorded.items() if r != v}
assert not wrong, f"version {v} expected, recorded {wrong}"
assert json.load(open("runs/demo/results.json"))["commit"] is None, "an installed wheel has no clone commit"
EOF
step "ok: radrl $VERSION from a wheel, outside the clone"
