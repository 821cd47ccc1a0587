"""Reference implementations for LabelFleet's agreement tests (test/integration/agreement-reference.test.ts).

Reads one JSON request on stdin, writes one JSON answer on stdout. Runs in the reference-tools venv
(scripts/env/reference-venv.sh): the published `krippendorff` and `crowd-kit` packages.

  {"kind": "alpha", "data": [[coder rows, null = missing]], "metric": "nominal"|...}
      -> {"alpha": float}
  {"kind": "dawid_skene", "answers": [[item, annotator, label], ...], "n_iter": int, "tol": float,
   "truth": {item: label} (optional)}
      -> {"items": [...], "classes": [...], "posteriors": [[...]], "priors": [...], "iterations": int,
          "confusion": {annotator: [[P(answer k | truth c) for k] for c]}}
  {"kind": "majority", "answers": [...]} -> {"items": [...], "classes": [...], "posteriors": [[...]]}
  {"kind": "batch", "requests": [request, ...]} -> [answer, ...]   (one interpreter start for many)
"""
import json
import sys

import numpy as np
import pandas as pd


def alpha(req):
    import krippendorff

    data = np.array([[np.nan if v is None else v for v in row] for row in req["data"]], dtype=float)
    return {"alpha": float(krippendorff.alpha(reliability_data=data, level_of_measurement=req["metric"]))}


def frame(answers):
    return pd.DataFrame(answers, columns=["task", "worker", "label"])


def dawid_skene(req):
    from crowdkit.aggregation import DawidSkene

    df = frame(req["answers"])
    truth = req.get("truth")
    true_labels = None
    if truth:
        true_labels = pd.Series({type(df.task.iloc[0])(k): v for k, v in truth.items()})
    ds = DawidSkene(n_iter=req["n_iter"], tol=req["tol"])
    probas = ds.fit_predict_proba(df, true_labels)
    classes = [c.item() if hasattr(c, "item") else c for c in probas.columns]
    items = [t.item() if hasattr(t, "item") else t for t in probas.index]
    errors = ds.errors_
    confusion = {}
    for worker in errors.index.get_level_values("worker").unique():
        m = errors.loc[worker]  # rows: observed label, columns: true label
        confusion[str(worker)] = [
            [float(m.loc[k, c]) if k in m.index else 0.0 for k in probas.columns] for c in probas.columns
        ]
    return {
        "items": items,
        "classes": classes,
        "posteriors": probas.to_numpy().tolist(),
        "priors": [float(ds.priors_[c]) for c in probas.columns],
        "iterations": len(ds.loss_history_),
        "confusion": confusion,
    }


def majority(req):
    from crowdkit.aggregation import MajorityVote

    probas = MajorityVote().fit_predict_proba(frame(req["answers"]))
    return {
        "items": [t.item() if hasattr(t, "item") else t for t in probas.index],
        "classes": [c.item() if hasattr(c, "item") else c for c in probas.columns],
        "posteriors": probas.to_numpy().tolist(),
    }


if __name__ == "__main__":
    request = json.load(sys.stdin)
    handlers = {"alpha": alpha, "dawid_skene": dawid_skene, "majority": majority}
    handlers["batch"] = lambda req: [handlers[r["kind"]](r) for r in req["requests"]]
    json.dump(handlers[request["kind"]](request), sys.stdout)
