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
"$FRLITE" pack "$CKPT" --model unet --out "$OUT/unet.frl"

echo
echo "== 3. PyTorch Dice on the fixture images at full 640x959 (README: 0.978770 0.979274 0.974674 0.980772)"
"$FRLITE" evaluate unet --weights "$OUT/unet.frl" \
  --images "$FIXTURE"/in000{0,1,2,3}.png --masks "$FIXTURE"/gt000{0,1,2,3}.png
