"""Rank statistics of scores: the ROC AUC (Mann–Whitney, ties counting one half)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for 0/1 `labels` (ties count one half); None when only
    one class is present."""
    from scipy.stats import rankdata

    labels = np.asarray(labels) > 0.5
    pos = int(labels.sum())
    neg = labels.size - pos
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def separation_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The ROC AUC of `positive` scores against `negative` ones (IP Insights' discriminator AUC)."""
    positive, negative = np.asarray(positive), np.asarray(negative)
    auc = roc_auc(np.concatenate([positive, negative]),
                  np.concatenate([np.ones(len(positive)), np.zeros(len(negative))]))
    if auc is None:
        raise InputError("an AUC needs positive and negative scores")
    return auc
