"""Word-similarity evaluation after Word2Vec training (`evaluation=True`): Spearman's rho between
human similarity ratings and the cosine similarity of the word vectors, over WordSim-353.

AWS scores three files, EN-WS-353-ALL (353 pairs), -REL (252) and -SIM (203), and reports their
mean as `mean_rho`. The image has only the combined set: gensim ships `wordsim353.tsv` (the 353
pairs of ALL); the REL/SIM split (Agirre et al. 2009) is in no package installed here. So
`eval.json` holds EN-WS-353-ALL alone and `mean_rho` is its rho: the mean of the subsets we can
compute. A pair is `not_found` when either word has no vector (looked up as written, else in lower
case, the most frequent spelling first); rho is over the pairs found, as AWS's counts show.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

WS353_ALL = "EN-WS-353-ALL.txt"
EVAL_FILE = "eval.json"


def wordsim353_file() -> Path:
    """gensim's copy of WordSim-353 (the 353 pairs of the combined set), shipped in its package."""
    from gensim.test.utils import datapath

    return Path(datapath("wordsim353.tsv"))


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    """`word1<TAB>word2<TAB>score` lines; `#` lines are comments."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}: line {number} is not word1<TAB>word2<TAB>score: {line!r}")
        pairs.append((fields[0], fields[1], float(fields[2])))
    return pairs


class Lookup:
    """Word → row of `vectors`, as written or else lower-cased (the most frequent spelling wins)."""

    def __init__(self, words: Sequence[str]):
        self.exact = {w: i for i, w in enumerate(words)}
        self.lower: dict[str, int] = {}
        for i, w in enumerate(words):  # words come most frequent first
            self.lower.setdefault(w.lower(), i)

    def __call__(self, word: str) -> int | None:
        row = self.exact.get(word)
        return row if row is not None else self.lower.get(word.lower())


def score_pairs(words: Sequence[str], vectors: np.ndarray, pairs: Sequence[tuple[str, str, float]]) -> dict:
    """`{"not_found", "spearmans_rho", "total_pairs"}` of one pair file; rho is None (JSON null)
    when fewer than two pairs are found or the similarities are all equal."""
    lookup = Lookup(words)
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    human, model, not_found = [], [], 0
    for a, b, score in pairs:
        i, j = lookup(a), lookup(b)
        if i is None or j is None:
            not_found += 1
            continue
        denominator = norms[i] * norms[j]
        human.append(score)
        model.append(float(vectors[i] @ vectors[j] / denominator) if denominator > 0 else 0.0)
    rho = None
    if len(human) >= 2 and len(set(model)) > 1:
        value = float(spearmanr(human, model).statistic)
        rho = value if math.isfinite(value) else None
    return {"not_found": not_found, "spearmans_rho": rho, "total_pairs": len(pairs)}


def evaluate(words: Sequence[str], vectors: np.ndarray, files: Mapping[str, Path] | None = None) -> dict:
    """eval.json's content: one entry per pair file, and `mean_rho`, the mean of their rhos
    (None when no file has one)."""
    files = files if files is not None else {WS353_ALL: wordsim353_file()}
    result: dict = {name: score_pairs(words, vectors, read_pairs(path)) for name, path in files.items()}
    rhos = [r["spearmans_rho"] for r in result.values() if r["spearmans_rho"] is not None]
    result["mean_rho"] = sum(rhos) / len(rhos) if rhos else None
    return result
