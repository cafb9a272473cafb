#!/usr/bin/env python3
"""Write tests/fixtures/torchjd_new.json: what a newer torchjd answers for
the methods torchjd 0.8.1 lacks, for tests/fidelity.rs: runs of
CRMOGMWeighting (CR-MOGM, torchjd 0.11 on) over fixed sequences of gradient
matrices, which taskgrad's `cr_mogm:METHOD:α` follows; and MoDoWeighting and
SDMGradWeighting (0.13 and 0.15 on) over the same three-minibatch runs that
tests/fixtures/fidelity.json has LibMTL's answers for (taskgrad follows
LibMTL; torchjd's are the second reference, with LibMTL's settings: the
cross matrix G₀G₁ᵀ for MoDo and G₁G₂ᵀ for SDMGrad, SDMGrad's rate 5 where
torchjd's default is 10).

torchjd's other fixtures (scripts/fidelity_fixtures.py) are made with
torchjd 0.8.1, which has no CRMOGMWeighting and whose API later versions
changed; this script runs a newer torchjd installed beside it:

    pip install --no-deps --target /tmp/tjd-new torchjd==0.18.0 quadprog qpsolvers
    PYTHONPATH=/tmp/tjd-new python3 scripts/fidelity_torchjd_new.py > tests/fixtures/torchjd_new.json

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
        MoDoWeighting,
        SDMGradWeighting,
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
    # MoDo and SDMGrad on LibMTL's fixture runs.
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "tests", "fixtures", "fidelity.json")) as f:
        libmtl = json.load(f)
    three = {"modo": [], "sdmgrad": []}
    for method in ["modo", "sdmgrad"]:
        for run in libmtl[method]:
            k, p = run["k"], run["p"]
            if method == "modo":
                w = MoDoWeighting(gamma=run["gamma"], rho=run["rho"])
                cross, combine = (0, 1), 2
            else:
                w = SDMGradWeighting(lr=5.0, momentum=0.5, n_iter=run["iters"], lambda_=run["lambda_"])
                cross, combine = (1, 2), 0
            directions = []
            for flat in run["steps"]:
                g = torch.tensor(flat).reshape(3, k, p)
                weights = w(g[cross[0]] @ g[cross[1]].T)
                directions.append((weights @ g[combine]).numpy().tolist())
            three[method].append({"source": f"torchjd {version('torchjd')} {type(w).__name__} "
                                            f"on LibMTL's run ({run['source']})",
                                  "directions": directions})

    fixture = {
        "made_by": "scripts/fidelity_torchjd_new.py",
        "provenance": {"torchjd": version("torchjd"), "torch": torch.__version__,
                       "numpy": np.__version__, "dtype": "float64 on float32-representable inputs"},
        "runs": runs,
        "modo": three["modo"],
        "sdmgrad": three["sdmgrad"],
    }
    text = json.dumps(fixture, indent=1)
    text = re.sub(r"\[\s+([-0-9.e+,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
