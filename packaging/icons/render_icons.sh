#!/usr/bin/env bash
# Renders the committed hicolor PNG icons from io.glassbox.Glassbox.svg.
# Needs rsvg-convert (Debian package librsvg2-bin). Run after editing the SVG.
set -euo pipefail
cd "$(dirname "$0")"
svg=io.glassbox.Glassbox.svg
for size in 16 24 32 48 64 128 256 512; do
    dir="hicolor/${size}x${size}/apps"
    mkdir -p "$dir"
    rsvg-convert --width "$size" --height "$size" --format png "$svg" --output "$dir/io.glassbox.Glassbox.png"
done
echo "rendered: $(ls hicolor | tr '\n' ' ')"
