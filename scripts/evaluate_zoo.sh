#!/usr/bin/env bash
# Evaluate the bundled models on freshly simulated surveys with a seed never used in
# training (99), through the real CLI (simulate -> infer -> summarize --truth), and record
# the figures in each model card's [evaluation] table. About 5 minutes on 2 CPU cores.
# Usage: scripts/evaluate_zoo.sh [DIR]
set -euo pipefail
dir=${1:-data/evaluation}
seed=99

astrocat simulate galaxies --n 3000  --seed $seed --merger-fraction 0.05 --out "$dir/galaxies" -q
astrocat simulate lenses   --n 1000  --seed $seed --out "$dir/lenses" -q
astrocat simulate spectra  --n 20000 --seed $seed --out "$dir/spectra" -q
astrocat simulate fields   --n 500   --seed $seed --out "$dir/fields" -q

astrocat infer --input "$dir" --out "$dir/catalog.parquet" \
    --exclude '*.csv' --exclude '*.json' --exclude 'catalog.parquet*' || [ $? -eq 1 ]
astrocat summarize "$dir/catalog.parquet" --json \
    --truth "$dir/galaxies/training_solutions_rev1.csv" \
    --truth "$dir/lenses/lens_labels.csv" \
    --truth "$dir/fields/fields_truth.csv" > "$dir/summary.json"

python - "$dir/summary.json" <<'PY'
"""Copy the fresh-survey figures into the bundled cards' [evaluation] tables."""
import json
import sys
import tomllib
from pathlib import Path

from astrocat.models.card import write_card
from astrocat.models.zoo import zoo_root

r = json.loads(Path(sys.argv[1]).read_text())
command = "scripts/evaluate_zoo.sh (astrocat simulate --seed 99; infer; summarize --truth)"
m, z, lens, cos = r["morphology"], r["redshift"], r["lens"], r["cosmology"]
merger = m["merger"]
evaluation = {
    "gz2-cnn": {
        "n": m["truth"]["n_matched"], "rmse": m["truth"]["rmse"],
        "baseline_rmse_mean": m["truth"]["rmse_baseline_mean"],
        "auc_median": m["truth"]["auc_median"],
        "merger_fraction": merger["fraction"], "merger_lower": merger["lower"],
        "merger_upper": merger["upper"], "merger_injected": merger["truth"]["fraction"],
    },
    "redshift-cnn1d": {"n": z["n_with_truth"], **{k: z["metrics"][k] for k in
                       ("mae", "bias", "sigma_nmad", "outlier_fraction")}},
    "lens-lastro": {"n": lens["truth"]["n_matched"],
                    **{k: lens["truth"][k] for k in ("auroc", "tpr0", "tpr10")}},
    "cosmo-cnn": {"n": cos["truth"]["n_matched"],
                  "rmse_omega_m": cos["truth"]["omega_m"]["rmse"],
                  "baseline_rmse_omega_m": cos["truth"]["omega_m"]["rmse_baseline"],
                  "rmse_sigma_8": cos["truth"]["sigma_8"]["rmse"],
                  "baseline_rmse_sigma_8": cos["truth"]["sigma_8"]["rmse_baseline"]},
}
for name, figures in evaluation.items():
    folder = zoo_root() / name
    card = tomllib.loads((folder / "card.toml").read_text())
    card["evaluation"] = {"data": "fresh simulated survey, seed 99 (not used in training)",
                          "command": command,
                          **{k: round(v, 6) if isinstance(v, float) else v
                             for k, v in figures.items()}}
    write_card(card, folder)
    print(name, json.dumps(card["evaluation"]))
PY
