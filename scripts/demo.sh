#!/usr/bin/env bash
# The main job on the bundled real model: the authors' FR UNet from ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
FIXTURE=${1:-../shared/fixtures/frereg_unet}
OUT=${2:-out/demo}
FRLITE=.venv/bin/frlite
CKPT="$FIXTURE/unet_fr.tar.xz"
mkdir -p "$OUT"

echo "== 1. the authors' checkpoint, loaded into the built-in FR UNet"
"$FRLITE" inspect "$CKPT" --model unet

echo
echo "== 2. frlite's compact checkpoint (authors' unet_fr.pt: 40,539 bytes)"
"$FRLITE" pack "$CKPT" --model unet --out "$OUT/unet.frl" --overwrite

echo
echo "== 3. PyTorch Dice on the fixture images (README: 0.978770 0.979274 0.974674 0.980772)"
"$FRLITE" evaluate unet --weights "$CKPT" --images "$FIXTURE"/in000{0,1,2,3}.png --masks "$FIXTURE"/gt000{0,1,2,3}.png

echo
echo "== 4. convert at 1x3x640x959: dense, idct and factorized; ONNX + TFLite (CPU/GPU/NNAPI), fp32 + fp16"
# two fixture images are the checks' inputs (quick parity, fp16 rewrites, fp16 verdicts)
"$FRLITE" convert unet --weights "$CKPT" --input input:1x3x640x959 --mode dense idct factorized \
  --target onnx tflite-cpu tflite-gpu tflite-nnapi --precision fp32 fp16 --out "$OUT/unet" --overwrite \
  --inputs "$FIXTURE"/in000{0,1}.png

echo
echo "== 5. parity: the four fixture images through PyTorch, ONNX Runtime and LiteRT"
# host numerics (ONNX Runtime, LiteRT XNNPACK); fp16 arithmetic is step 6
"$FRLITE" parity "$OUT/unet" --inputs "$FIXTURE"/in000{0,1,2,3}.png --variants default xnnpack --out "$OUT/parity" --overwrite

echo
echo "== 6. fp16 arithmetic (GPU delegate with precision loss allowed, NNAPI allow_fp16), measured by convert"
# the verdicts convert measured; `frlite parity DIR --variants fp16-arith` runs them on the images
grep "fp16 arithmetic" "$OUT/unet/convert.log"
echo
echo "converted files, manifest and delegate reports: $OUT/unet (compat/*.md)"
echo "parity report: $OUT/parity/parity.html (also parity.md, parity.json)"
