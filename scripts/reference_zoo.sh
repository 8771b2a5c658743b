#!/usr/bin/env bash
# The bundled models' reference statistics (out-of-domain flag, TTA intervals): samples of
# their training distribution (the training seed, 0; simulated, as their training data
# was), then `astrocat models reference` on each. About 4 minutes on 2 CPU cores.
# (`astrocat train` writes a new model's reference itself, from its held-out split.)
# Usage: scripts/reference_zoo.sh [DATA_DIR]
set -euo pipefail
data=${1:-data/reference}

astrocat simulate galaxies --n 3000  --seed 0 --merger-fraction 0.08 --out "$data/galaxies" -q
astrocat simulate lenses   --n 3000  --seed 0 --out "$data/lenses" -q
astrocat simulate fields   --n 1500  --seed 0 --out "$data/fields" -q
astrocat simulate spectra  --n 10000 --seed 0 --out "$data/spectra" -q

astrocat models reference gz2-cnn        --data "$data/galaxies"
astrocat models reference lens-lastro    --data "$data/lenses"
astrocat models reference cosmo-cnn      --data "$data/fields"
astrocat models reference redshift-cnn1d --data "$data/spectra/spectra.parquet"
