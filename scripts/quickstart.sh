#!/usr/bin/env bash
# Quick start: install napari-resunet into .venv (CPU torch), then train a 2D nuclei
# model on the shipped BBBC039 sample, segment the image with it and describe it.
# Outputs land in ./quickstart/. Re-running reuses the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e .
CLI="$VENV/bin/napari-resunet"
OUT=quickstart
mkdir -p "$OUT"
"$CLI" sample nuclei2d -o "$OUT" --overwrite
"$CLI" train "$OUT/nuclei2d_image.tif" "$OUT/nuclei2d_labels.tif" --labels-are instances \
    --steps 150 --patch 128,128 --batch-size 4 -o "$OUT/nuclei2d.pt" --overwrite
"$CLI" predict "$OUT/nuclei2d_image.tif" --model "$OUT/nuclei2d.pt" -o "$OUT/nuclei2d_pred.tif" --overwrite
"$CLI" info "$OUT/nuclei2d.pt"
echo "Done: open $OUT/nuclei2d_image.tif and $OUT/nuclei2d_pred.tif in napari to compare."
