"""Segmentation quality metrics on numpy arrays (no torch needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def _check_pair(pred: NDArray, target: NDArray) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"Prediction shape {pred.shape} differs from ground-truth shape "
            f"{target.shape}."
        )


def dice_per_class(
    pred: NDArray,
    target: NDArray,
    n_classes: int,
    mask: NDArray | None = None,
) -> NDArray[np.float64]:
    """Dice coefficient of each class id ``0..n_classes-1``.

    Args:
        pred, target: integer class maps of equal shape.
        n_classes: number of classes.
        mask: optional boolean array; only voxels where it is True count.

    Returns:
        ``(n_classes,)`` float64. A class absent from both maps scores 1.0 (nothing
        to find and nothing found); absent from one only scores 0.0.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    _check_pair(pred, target)
    if mask is not None:
        m = np.asarray(mask, bool)
        _check_pair(pred, m)
        pred, target = pred[m], target[m]
    pred = pred.ravel().astype(np.int64)
    target = target.ravel().astype(np.int64)
    valid = (pred >= 0) & (pred < n_classes) & (target >= 0) & (target < n_classes)
    conf = np.bincount(
        target[valid] * n_classes + pred[valid], minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)
    inter = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2 * inter / np.maximum(denom, 1), 1.0)
    return dice


def iou_per_class(
    pred: NDArray, target: NDArray, n_classes: int, mask: NDArray | None = None
) -> NDArray[np.float64]:
    """Intersection over union of each class (same conventions as ``dice_per_class``)."""
    d = dice_per_class(pred, target, n_classes, mask)
    return d / (2.0 - d)


def _check_labels(pred: NDArray, target: NDArray) -> tuple[NDArray, NDArray]:
    pred, target = np.asarray(pred), np.asarray(target)
    _check_pair(pred, target)
    for name, arr in (("prediction", pred), ("ground truth", target)):
        if arr.dtype.kind not in "uib":
            raise ValueError(
                f"The {name} must hold integer labels, got dtype {arr.dtype}."
            )
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise ValueError(f"The {name} holds negative labels; 0 is background.")
    return pred, target


def iou_matrix(pred: NDArray, target: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """IoU between every predicted and every true object (label 0 = background).

    Returns:
        ``(iou, pred_ids, true_ids)`` with ``iou`` of shape (n_pred, n_true).
    """
    pred, target = _check_labels(pred, target)
    p = pred.ravel().astype(np.int64)
    t = target.ravel().astype(np.int64)
    pred_ids = np.unique(p[p > 0])
    true_ids = np.unique(t[t > 0])
    if pred_ids.size == 0 or true_ids.size == 0:
        return np.zeros((pred_ids.size, true_ids.size)), pred_ids, true_ids
    pi = np.searchsorted(pred_ids, p)  # index+1 for objects, 0 for background
    pi = np.where(p > 0, pi + 1, 0)
    ti = np.where(t > 0, np.searchsorted(true_ids, t) + 1, 0)
    n_p, n_t = pred_ids.size + 1, true_ids.size + 1
    overlap = np.bincount(pi * n_t + ti, minlength=n_p * n_t).reshape(n_p, n_t)
    inter = overlap[1:, 1:].astype(np.float64)
    size_p = overlap[1:, :].sum(1)[:, None]
    size_t = overlap[:, 1:].sum(0)[None, :]
    union = size_p + size_t - inter
    return inter / np.maximum(union, 1), pred_ids, true_ids


DEFAULT_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def match_instances(
    pred: NDArray, target: NDArray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[dict[str, float]]:
    """Optimal one-to-one matching of objects at each IoU threshold.

    For each threshold ``t`` the pairs with IoU >= t are matched one-to-one so as to
    maximise the summed IoU (``scipy.optimize.linear_sum_assignment``). Matched
    pairs are true positives, unmatched predictions false positives, unmatched true
    objects false negatives.

    Returns:
        One dict per threshold with ``threshold, tp, fp, fn, precision, recall, f1,
        ap`` (``ap = tp / (tp + fp + fn)``, the DSB 2018 definition) and
        ``mean_matched_iou``. With no objects on either side every score is 1.0;
        with objects on one side only, 0.0.
    """
    from scipy.optimize import linear_sum_assignment

    iou, pred_ids, true_ids = iou_matrix(pred, target)
    rows = []
    for thr in thresholds:
        if iou.size:
            weights = np.where(iou >= thr, iou, 0.0)
            r, c = linear_sum_assignment(weights, maximize=True)
            good = weights[r, c] >= thr
            tp = int(good.sum())
            matched = float(weights[r, c][good].mean()) if tp else 0.0
        else:
            tp, matched = 0, 0.0
        fp, fn = pred_ids.size - tp, true_ids.size - tp
        if pred_ids.size == 0 and true_ids.size == 0:
            prec = rec = f1 = ap = 1.0
        else:
            prec = tp / (tp + fp) if tp + fp else 0.0
            rec = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * tp / (2 * tp + fp + fn)
            ap = tp / (tp + fp + fn)
        rows.append(
            {
                "threshold": float(thr),
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": prec,
                "recall": rec,
                "f1": f1,
                "ap": ap,
                "mean_matched_iou": matched,
            }
        )
    return rows


def hd95(
    pred: NDArray, target: NDArray, voxel_size: Sequence[float] | None = None
) -> float:
    """95th-percentile Hausdorff distance between two masks' surfaces.

    The larger of the two directed 95th percentiles (prediction surface to truth
    surface and back), in physical units when ``voxel_size`` is given. Both masks
    empty: 0.0. Exactly one empty: ``inf`` (the distance is undefined).
    """
    a, b = np.asarray(pred) > 0, np.asarray(target) > 0
    _check_pair(a, b)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    sampling = (
        None if voxel_size is None else tuple(float(v) for v in voxel_size)[-a.ndim :]
    )
    structure = ndimage.generate_binary_structure(a.ndim, 1)

    def surface(m):
        return m & ~ndimage.binary_erosion(m, structure, border_value=0)

    sa, sb = surface(a), surface(b)
    da = ndimage.distance_transform_edt(~sb, sampling=sampling)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=sampling)[sb]
    return float(max(np.percentile(da, 95), np.percentile(db, 95)))


def segmentation_scores(pred: NDArray, target: NDArray) -> dict[str, float]:
    """Adapted Rand error and variation of information (dense neuron labels).

    Computed with scikit-image; true-label 0 voxels are ignored by the Rand error.
    ``vi_split`` is H(pred | truth) in bits (over-segmentation), ``vi_merge`` is
    H(truth | pred) (under-segmentation).
    """
    from skimage.metrics import adapted_rand_error, variation_of_information

    pred, target = _check_labels(pred, target)
    if not (target > 0).any():
        raise ValueError(
            "The ground truth has no labelled voxel: Rand error is undefined."
        )
    are, prec, rec = adapted_rand_error(target, pred)
    # skimage returns (H(pred|truth), H(truth|pred)) in bits
    split, merge = variation_of_information(target, pred)
    return {
        "adapted_rand_error": float(are),
        "rand_precision": float(prec),
        "rand_recall": float(rec),
        "vi_split": float(split),
        "vi_merge": float(merge),
        "vi": float(split + merge),
    }


def evaluate(
    pred: NDArray,
    target: NDArray,
    mode: str = "auto",
    voxel_size: Sequence[float] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    n_classes: int | None = None,
) -> dict[str, Any]:
    """All metrics for a prediction against ground truth, as one nested dict.

    Args:
        pred, target: integer label images of equal shape (0 = background).
        mode: ``"semantic"`` (class ids: per-class Dice/IoU, foreground HD95),
            ``"instance"`` (object ids: matching scores plus foreground
            Dice/IoU/HD95 and, for 3D, Rand error and VI), or ``"auto"``
            (``"instance"`` when either image holds an id above 2).
        voxel_size: physical voxel size per axis (for HD95).
        thresholds: IoU thresholds for instance matching.
        n_classes: classes for semantic mode (default: from the data).

    Returns:
        ``{"mode", "semantic": {...}, "instance": [...], "summary": {...}}``.
        Empty cases are defined, not errors: see :func:`match_instances` and
        :func:`hd95`.
    """
    pred, target = _check_labels(pred, target)
    if mode == "auto":
        top = max(int(pred.max(initial=0)), int(target.max(initial=0)))
        mode = "instance" if top > 2 else "semantic"
    if mode not in ("semantic", "instance"):
        raise ValueError(f"Unknown mode {mode!r}; use auto, semantic or instance.")
    out: dict[str, Any] = {"mode": mode}
    if mode == "semantic":
        n = n_classes or max(
            2, int(max(pred.max(initial=0), target.max(initial=0))) + 1
        )
        dice = dice_per_class(pred, target, n)
        iou = iou_per_class(pred, target, n)
        out["semantic"] = {
            "dice": dice.tolist(),
            "iou": iou.tolist(),
            "hd95": hd95(pred, target, voxel_size),
        }
        out["summary"] = {
            "mean_fg_dice": float(dice[1:].mean()),
            "mean_fg_iou": float(iou[1:].mean()),
            "hd95": out["semantic"]["hd95"],
        }
        return out
    fg_p, fg_t = (pred > 0).astype(np.uint8), (target > 0).astype(np.uint8)
    dice = dice_per_class(fg_p, fg_t, 2)
    rows = match_instances(pred, target, thresholds)
    out["semantic"] = {
        "dice": dice.tolist(),
        "iou": (dice / (2 - dice)).tolist(),
        "hd95": hd95(fg_p, fg_t, voxel_size),
    }
    out["instance"] = rows
    summary = {
        "n_pred": int(rows[0]["tp"] + rows[0]["fp"]),
        "n_true": int(rows[0]["tp"] + rows[0]["fn"]),
        "f1@0.5": rows[0]["f1"] if rows[0]["threshold"] == 0.5 else float("nan"),
        "ap@0.5": rows[0]["ap"] if rows[0]["threshold"] == 0.5 else float("nan"),
        "mean_ap": float(np.mean([r["ap"] for r in rows])),
        "fg_dice": float(dice[1]),
        "hd95": out["semantic"]["hd95"],
    }
    if (target > 0).any() and pred.ndim == 3:
        out["segmentation"] = segmentation_scores(pred, target)
        summary.update(
            adapted_rand_error=out["segmentation"]["adapted_rand_error"],
            vi=out["segmentation"]["vi"],
        )
    out["summary"] = summary
    return out


def metrics_table(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten :func:`evaluate`'s result into (metric, value) rows for display/CSV."""
    rows: list[tuple[str, str]] = [("mode", result["mode"])]
    for k, v in result["summary"].items():
        rows.append((k, _fmt(v)))
    sem = result.get("semantic", {})
    for c, (d, i) in enumerate(zip(sem.get("dice", []), sem.get("iou", []))):
        rows.append((f"class {c} dice", _fmt(d)))
        rows.append((f"class {c} iou", _fmt(i)))
    for r in result.get("instance", []):
        t = f"{r['threshold']:.2f}"
        for key in ("precision", "recall", "f1", "ap"):
            rows.append((f"{key}@{t}", _fmt(r[key])))
    for k, v in result.get("segmentation", {}).items():
        if k not in result["summary"]:
            rows.append((k, _fmt(v)))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if np.isinf(v) else f"{v:.4f}"
    return str(v)
