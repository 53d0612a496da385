"""Writes agreement_fixtures.json: generated inputs for Cohen's kappa, Fleiss' kappa and
Krippendorff's alpha with the values of the reference implementations (scikit-learn's
cohen_kappa_score, statsmodels' fleiss_kappa, the krippendorff package), plus published
worked examples. The Rust tests read the JSON; they need no Python.

    python -m venv v && v/bin/pip install scikit-learn statsmodels krippendorff
    v/bin/python make_agreement_fixtures.py > agreement_fixtures.json
"""
import json
import math
import random
import sys
import warnings

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

warnings.simplefilter("ignore")
rng = random.Random(20261202)


def value(x):
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def cohen_case(i):
    n = rng.randint(5, 80)
    k = rng.randint(2, 5)
    weights = rng.choice([None, "linear", "quadratic"])
    skew = rng.random()
    a = [rng.randrange(k) for _ in range(n)]
    # The second rater agrees with the first with some probability.
    b = [x if rng.random() < skew else rng.randrange(k) for x in a]
    return {
        "kind": "cohen",
        "name": f"cohen-{i}",
        "weights": weights or "none",
        "a": a,
        "b": b,
        "expected": value(cohen_kappa_score(a, b, weights=weights)),
    }


def fleiss_case(i):
    items = rng.randint(5, 50)
    raters = rng.randint(2, 6)
    k = rng.randint(2, 5)
    bias = [rng.random() + 0.05 for _ in range(k)]
    table = []
    for _ in range(items):
        row = [0] * k
        for _ in range(raters):
            row[rng.choices(range(k), weights=bias)[0]] += 1
        table.append(row)
    return {
        "kind": "fleiss",
        "name": f"fleiss-{i}",
        "table": table,
        "expected": value(fleiss_kappa(np.array(table), method="fleiss")),
    }


def kripp_case(i):
    raters = rng.randint(2, 6)
    units = rng.randint(5, 40)
    k = rng.randint(2, 6)
    missing = rng.random() * 0.4
    truth = [rng.randint(1, k) for _ in range(units)]
    data = []
    for _ in range(raters):
        row = []
        for t in truth:
            if rng.random() < missing:
                row.append(None)
            elif rng.random() < 0.6:
                row.append(t)
            else:
                row.append(rng.randint(1, k))
        data.append(row)
    level = rng.choice(["nominal", "ordinal", "interval"])
    arr = np.array([[np.nan if v is None else v for v in r] for r in data], dtype=float)
    try:
        expected = value(krippendorff.alpha(reliability_data=arr, level_of_measurement=level))
    except Exception:
        expected = None
    return {"kind": "krippendorff", "name": f"kripp-{i}", "level": level, "data": data, "expected": expected}


cases = []
for i in range(200):
    cases.append([cohen_case, fleiss_case, kripp_case][i % 3](i))

# Published worked examples.
kripp_c = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
arr = np.array([[np.nan if v is None else v for v in r] for r in kripp_c], dtype=float)
for level in ["nominal", "ordinal", "interval"]:
    cases.append({
        "kind": "krippendorff",
        "name": f"krippendorff-2011-example-{level}",
        "level": level,
        "data": kripp_c,
        "expected": value(krippendorff.alpha(reliability_data=arr, level_of_measurement=level)),
    })
fleiss_1971 = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
               [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
cases.append({"kind": "fleiss", "name": "fleiss-1971-example", "table": fleiss_1971,
              "expected": value(fleiss_kappa(np.array(fleiss_1971), method="fleiss"))})
a = [1] * 25 + [0] * 25
b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
cases.append({"kind": "cohen", "name": "cohen-yes-no-example", "weights": "none", "a": a, "b": b,
              "expected": value(cohen_kappa_score(a, b))})

json.dump({"cases": cases}, sys.stdout, indent=1)
sys.stdout.write("\n")
