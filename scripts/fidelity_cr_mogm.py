#!/usr/bin/env python3
"""Write tests/fixtures/cr_mogm.json: runs of torchjd's CRMOGMWeighting (the
CR-MOGM weight smoothing, torchjd 0.11 on) over fixed sequences of gradient
matrices, for tests/fidelity.rs to compare taskgrad's `cr_mogm:METHOD:α`
against through `mtl::Aggregator`.

torchjd's other fixtures (scripts/fidelity_fixtures.py) are made with
torchjd 0.8.1, which has no CRMOGMWeighting and whose API later versions
changed; this script runs a newer torchjd installed beside it:

    pip install --no-deps --target /tmp/tjd-new torchjd==0.18.0 quadprog qpsolvers
    PYTHONPATH=/tmp/tjd-new python3 scripts/fidelity_cr_mogm.py > tests/fixtures/cr_mogm.json

(torch and numpy from the environment of the other script.) Inputs are
float32-representable, the computation float64.
"""

import json
import re
import sys
from importlib.metadata import version

import numpy as np


def main():
    import torch
    from torchjd.aggregation import (
        CRMOGMWeighting,
        GramianWeightedAggregator,
        IMTLGWeighting,
        UPGradWeighting,
    )

    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(23)
    runs = []
    for inner, make, k, p, alpha in [
        ("upgrad", UPGradWeighting, 3, 20, 0.9),
        ("upgrad", UPGradWeighting, 2, 12, 0.5),
        ("imtl_g", IMTLGWeighting, 3, 16, 0.7),
    ]:
        steps = [
            (rng.standard_normal((k, p)) * rng.uniform(0.1, 5.0, size=(k, 1)))
            .astype(np.float32)
            .astype(np.float64)
            for _ in range(5)
        ]
        weighting = CRMOGMWeighting(make(), alpha=alpha)
        aggregator = GramianWeightedAggregator(weighting)
        directions, weights = [], []
        for g in steps:
            d = aggregator(torch.tensor(g))
            directions.append(d.numpy().tolist())
            weights.append(weighting._lambda.numpy().tolist())
        runs.append({
            "inner": inner, "alpha": alpha, "k": k, "p": p,
            "steps": [g.reshape(-1).tolist() for g in steps],
            "directions": directions, "weights": weights,
            "source": f"torchjd {version('torchjd')} CRMOGMWeighting({make.__name__}(), alpha={alpha}), 5 steps",
        })
    fixture = {
        "made_by": "scripts/fidelity_cr_mogm.py",
        "provenance": {"torchjd": version("torchjd"), "torch": torch.__version__,
                       "numpy": np.__version__, "dtype": "float64 on float32-representable inputs"},
        "runs": runs,
    }
    text = json.dumps(fixture, indent=1)
    text = re.sub(r"\[\s+([-0-9.e+,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
