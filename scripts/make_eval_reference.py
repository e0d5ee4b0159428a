#!/usr/bin/env python3
"""Writes Tests/EvaluationTests/Fixtures/verification_reference.json for the Evaluation module.

The metrics are computed by a faithful copy of insightface's verification protocol
(recognition/arcface_torch/eval/verification.py: calculate_roc, calculate_accuracy, calculate_val,
calculate_val_far, evaluate), on seeded synthetic data. Run with the repository's venv:

    /work/venv/bin/python scripts/make_eval_reference.py

Needs numpy, scipy and scikit-learn (KFold and roc_auc_score come from sklearn, as in insightface).

One deliberate deviation, forced by scipy: insightface calls
`interpolate.interp1d(far_train, thresholds, kind='slinear')`. far_train always holds repeated values
(FAR is a step function of the threshold). scipy <= 1.8 accepted that; newer scipy raises
"Expect x to not have duplicates" (scipy/scipy#21550). `slinear_interp1d` below rebuilds exactly what
scipy <= 1.8 built -- a stable mergesort of x, then make_interp_spline's k=1 special case
BSpline(t = r_[x[0], x, x[-1]], c = y, k = 1) -- without the duplicate check, and evaluates it with
scipy's own BSpline. With repeated x this yields the y of the LAST point of a run of equal x, and 0 when
the target equals max(x) and the last two x are equal (a zero-length knot interval); the Swift port
reproduces both, and the "coarse" / "capped" cases below exercise them.

Distances of the synthetic sets are rounded to 10 decimals before the reference runs, so the JSON holds
exactly the inputs the reference saw.
"""
import json
import os

import numpy as np
from scipy import interpolate
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "EvaluationTests", "Fixtures",
                   "verification_reference.json")


class LFold:
    def __init__(self, n_splits=2, shuffle=False):
        self.n_splits = n_splits
        if self.n_splits > 1:
            self.k_fold = KFold(n_splits=n_splits, shuffle=shuffle)

    def split(self, indices):
        if self.n_splits > 1:
            return self.k_fold.split(indices)
        return [(indices, indices)]


def calculate_accuracy(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def calculate_roc(thresholds, dist, actual_issame, nrof_folds=10):
    """insightface calculate_roc with pca=0, taking the distances directly; also returns the chosen thresholds."""
    nrof_pairs = len(actual_issame)
    nrof_thresholds = len(thresholds)
    k_fold = LFold(n_splits=nrof_folds, shuffle=False)
    accuracy = np.zeros((nrof_folds))
    best = np.zeros((nrof_folds))
    indices = np.arange(nrof_pairs)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        acc_train = np.zeros((nrof_thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = calculate_accuracy(threshold, dist[train_set], actual_issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        _, _, accuracy[fold_idx] = calculate_accuracy(thresholds[best_threshold_index], dist[test_set],
                                                      actual_issame[test_set])
        best[fold_idx] = thresholds[best_threshold_index]
    return accuracy, best


def slinear_interp1d(x, y):
    """scipy <= 1.8 interp1d(x, y, kind='slinear') (bounds_error=True), see the module docstring."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ind = np.argsort(x, kind="mergesort")
    x = x[ind]
    y = y[ind]
    spline = interpolate.BSpline.construct_fast(np.r_[x[0], x, x[-1]], np.ascontiguousarray(y), 1)

    def f(v):
        if v < x[0] or v > x[-1]:
            raise ValueError("A value in x_new is out of the interpolation range.")
        return spline(v)
    return f


def calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    val = float(true_accept) / float(n_same)
    far = float(false_accept) / float(n_diff)
    return val, far


def calculate_val(thresholds, dist, actual_issame, far_target, nrof_folds=10):
    nrof_pairs = len(actual_issame)
    nrof_thresholds = len(thresholds)
    k_fold = LFold(n_splits=nrof_folds, shuffle=False)
    val = np.zeros(nrof_folds)
    far = np.zeros(nrof_folds)
    chosen = np.zeros(nrof_folds)
    indices = np.arange(nrof_pairs)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        far_train = np.zeros(nrof_thresholds)
        for threshold_idx, threshold in enumerate(thresholds):
            _, far_train[threshold_idx] = calculate_val_far(threshold, dist[train_set], actual_issame[train_set])
        if np.max(far_train) >= far_target:
            f = slinear_interp1d(far_train, thresholds)
            threshold = f(far_target)
        else:
            threshold = 0.0
        chosen[fold_idx] = threshold
        val[fold_idx], far[fold_idx] = calculate_val_far(threshold, dist[test_set], actual_issame[test_set])
    return np.mean(val), np.std(val), np.mean(far), chosen


def evaluate(dist, issame, far_target=1e-3, nrof_folds=10):
    issame = np.asarray(issame)
    accuracy, best = calculate_roc(np.arange(0, 4, 0.01), dist, issame, nrof_folds)
    val, val_std, far, chosen = calculate_val(np.arange(0, 4, 0.001), dist, issame, far_target, nrof_folds)
    return {
        "accuracy_mean": float(np.mean(accuracy)),
        "accuracy_std": float(np.std(accuracy)),
        "fold_accuracies": [float(a) for a in accuracy],
        "fold_thresholds": [float(t) for t in best],
        "threshold_mean": float(np.mean(best)),
        "val_mean": float(val),
        "val_std": float(val_std),
        "far_mean": float(far),
        "fold_val_thresholds": [float(t) for t in chosen],
        "auc": float(roc_auc_score(issame.astype(int), -dist)),
    }


def normalize(x):
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    n[n == 0.0] = 1.0
    return x / n[:, None]


def synthetic_pairs(rng, pairs, dim, noise):
    """Unit embeddings (2P, E): pair i = rows 2i, 2i+1; same pairs share an identity centre."""
    issame = rng.random(pairs) < 0.5
    centres_a = normalize(rng.standard_normal((pairs, dim)))
    centres_b = np.where(issame[:, None], centres_a, normalize(rng.standard_normal((pairs, dim))))
    a = normalize(centres_a + noise * rng.standard_normal((pairs, dim)) / np.sqrt(dim))
    b = normalize(centres_b + noise * rng.standard_normal((pairs, dim)) / np.sqrt(dim))
    emb = np.empty((2 * pairs, dim))
    emb[0::2] = a
    emb[1::2] = b
    return emb, issame


def distances(emb):
    diff = np.subtract(emb[0::2], emb[1::2])
    return np.sum(np.square(diff), 1)


def case(name, dist, issame, far_target=1e-3, note="", extra=None):
    c = {
        "name": name,
        "note": note,
        "folds": 10,
        "far_target": far_target,
        "distances": [float(d) for d in dist],
        "issame": "".join("1" if s else "0" for s in issame),
        "expected": evaluate(np.asarray(dist, dtype=np.float64), np.asarray(issame), far_target),
    }
    if extra:
        c.update(extra)
    return c


def main():
    cases = []
    for name, seed, pairs, noise in [("easy_600", 1, 600, 0.6), ("hard_600", 2, 600, 1.6),
                                     ("hard_6000", 3, 6000, 1.3), ("uneven_605", 4, 605, 1.2)]:
        rng = np.random.default_rng(seed)
        emb, issame = synthetic_pairs(rng, pairs, 32, noise)
        dist = np.round(distances(emb), 10)
        cases.append(case(name, dist, issame, note=f"seed {seed}, E=32, noise {noise}, distances rounded to 1e-10"))

    # Coarse distances: many ties (accuracy argmax ties, repeated FAR values). Every fold: 5 same, 5 diff.
    rng = np.random.default_rng(5)
    dist, issame = [], []
    for _ in range(10):
        s = [True] * 5 + [False] * 5
        rng.shuffle(s)
        for x in s:
            issame.append(x)
            dist.append(float(rng.choice([0.25, 0.5, 1.0, 1.5]) if x else rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])))
    cases.append(case("coarse_100", dist, issame, far_target=0.2,
                      note="distances from a few values; far_target 0.2 = 9/45 is attained exactly on a run of equal FARs"))

    # Capped: every fold has one different pair at distance 4.0 (never accepted: thresholds < 4), so the training
    # FAR saturates at 36/45 = 0.8 on a long run; asking for exactly 0.8 hits scipy<=1.8's zero-length last interval.
    dist, issame = [], []
    for f in range(10):
        for j in range(10):
            same = j % 2 == 0
            issame.append(same)
            dist.append(0.3 + 0.01 * f if same else (4.0 if j == 9 else 1.0))
    cases.append(case("capped_100", dist, issame, far_target=0.8,
                      note="target = max training FAR on a run of equal FARs at the end: threshold 0"))
    cases.append(case("jump_100", dist, issame, far_target=0.5,
                      note="training FAR jumps from 0 to 0.8 between thresholds 1.000 and 1.001: interpolated"))
    cases.append(case("unreachable_100", dist, issame, far_target=0.9,
                      note="max training FAR 0.8 < target: threshold 0"))

    # Plateau: training FAR is 0 up to threshold 1.000, 18/45 = 0.4 on (1.000, 2.000], 0.8 above. Asking for exactly
    # 0.4 lands on a run of equal FARs in the middle: scipy<=1.8 returns the LAST threshold of the run (2.000).
    dist, issame = [], []
    for f in range(10):
        for j in range(10):
            same = j < 5
            issame.append(same)
            dist.append(0.3 + 0.01 * f if same else [1.0, 1.0, 2.0, 2.0, 4.0][j - 5])
    cases.append(case("plateau_100", dist, issame, far_target=0.4,
                      note="target equals a FAR attained on a run of thresholds: the last one of the run"))

    # Flip test on stored float32 embeddings: e_i + flipped_i, L2-normalized in float64 (insightface's test()).
    rng = np.random.default_rng(6)
    emb, issame = synthetic_pairs(rng, 40, 8, 1.0)
    plain = (emb * 3.0).astype(np.float32)
    flipped = (emb * 3.0 + 0.3 * rng.standard_normal(emb.shape)).astype(np.float32)
    summed = normalize(plain.astype(np.float64) + flipped.astype(np.float64))
    dist = distances(summed)
    cases.append(case("flip_40", dist, issame, note="seed 6, E=8, float32 embeddings and their flips",
                      extra={"dimension": 8,
                             "plain": [float(v) for v in plain.ravel()],
                             "flipped": [float(v) for v in flipped.ravel()]}))

    doc = {
        "generator": "scripts/make_eval_reference.py (insightface arcface_torch eval/verification.py logic)",
        "accuracy_thresholds": "np.arange(0, 4, 0.01)",
        "val_thresholds": "np.arange(0, 4, 0.001)",
        "cases": cases,
    }
    with open(OUT, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    for c in cases:
        e = c["expected"]
        print(f'{c["name"]:16s} acc {e["accuracy_mean"]:.5f}+-{e["accuracy_std"]:.5f} '
              f'val {e["val_mean"]:.4f} far {e["far_mean"]:.5f} auc {e["auc"]:.5f}')


if __name__ == "__main__":
    main()
