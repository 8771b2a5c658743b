#!/usr/bin/env bash
# Rebuild the bundled model zoo from scratch: simulate the training surveys, then train
# each recipe. These are the exact commands behind the bundled weights and their cards.
# About an hour on 2 CPU cores. Usage: scripts/build_zoo.sh [DATA_DIR]
set -euo pipefail
data=${1:-data/training}
zoo=astrocat/models/zoo

astrocat simulate fields   --n 4000   --seed 0 --out "$data/fields"
astrocat simulate lenses   --n 8000   --seed 0 --out "$data/lenses"
astrocat simulate spectra  --n 100000 --seed 0 --out "$data/spectra"
astrocat simulate galaxies --n 16000  --seed 0 --merger-fraction 0.08 --out "$data/galaxies"

astrocat train cosmology  --data "$data/fields"   --out "$zoo/cosmo-cnn" --model-version 0.1.0      --epochs 30 --patience 6
astrocat train lens       --data "$data/lenses"   --out "$zoo/lens-lastro" --model-version 0.1.0    --epochs 20 --patience 6
astrocat train redshift   --data "$data/spectra/spectra.parquet" --out "$zoo/redshift-cnn1d" --model-version 0.1.0 \
    --limit 40000 --epochs 10 --batch-size 64 --patience 3
astrocat train morphology --data "$data/galaxies" --out "$zoo/gz2-cnn" --model-version 0.1.0        --epochs 25 --patience 4
