#!/usr/bin/env bash
# Quick start: install napari-resunet (with napari and Qt) into .venv with the CPU
# build of torch, then open napari with the shipped 2D nuclei sample and the
# Segment and Fine-tune widgets docked.
#   --headless: instead train a 2D nuclei model on the sample from the command line,
#               segment the image with it and describe it (outputs in ./quickstart/).
# Re-running reuses the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e ".[all]"
CLI="$VENV/bin/napari-resunet"
if [ "${1:-}" != "--headless" ]; then
  exec "$CLI" demo --sample nuclei2d
fi
OUT=quickstart
mkdir -p "$OUT"
"$CLI" sample nuclei2d -o "$OUT" --overwrite
"$CLI" train "$OUT/nuclei2d_image.tif" "$OUT/nuclei2d_labels.tif" --labels-are instances \
    --steps 150 --patch 128,128 --batch-size 4 -o "$OUT/nuclei2d.pt" --overwrite
"$CLI" predict "$OUT/nuclei2d_image.tif" --model "$OUT/nuclei2d.pt" -o "$OUT/nuclei2d_pred.tif" --overwrite
"$CLI" info "$OUT/nuclei2d.pt"
echo "Done: open $OUT/nuclei2d_image.tif and $OUT/nuclei2d_pred.tif in napari to compare."
