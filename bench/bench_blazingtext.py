"""BlazingText Word2Vec: our image's trainer against gensim called directly, on the same corpus and
settings, interleaved repeats.

Corpus: the English Wikipedia sample gensim ships (`enwiki-latest-pages-articles1...bz2`, 206
pages, about 453,000 tokens through gensim's WikiCorpus tokeniser), one page per line. Each repeat
runs, for each mode (cbow, skipgram, cbow with subwords, batch_skipgram):
- **ours**: a whole BlazingText job through the /opt/ml contract (`run_training`: the channel read
  and checked as UTF-8 into the scratch corpus, vocabulary, training, vectors.txt, vectors.bin,
  WS-353 evaluation), timed as a whole and, from its own log, the training alone;
- **gensim**: `Word2Vec(...)` (or `FastText`) with the same parameters (the ones
  `Word2VecCore.gensim_parameters` passes), `build_vocab(corpus_file=...)` and `train(corpus_file=...)`,
  timed as a whole (vocabulary + training) and the training alone; batch_skipgram's peer is
  gensim's skip-gram (word2vec's own, unbatched) with the same settings (gensim on `cpu_count()`
  worker threads; batch_skipgram on one CPU thread, see its module docstring).
Words/s are raw corpus words x epochs / seconds. Both are scored by the same WS-353 scorer
(`smalgos_blazingtext.evaluation.score_pairs`). Prints a Markdown table of medians.

Supervised (`--part supervised`): our torch classifier (`SupervisedCore`, CPU) against fastText's
own (`fasttext.train_supervised`, when the `fasttext` or `fasttext-wheel` package imports: run
this script with that environment's python) on a generated set where word order decides the label
(tests/unit/blazingtext/data.py: 20-word lines, 10 % of labels flipped), same settings (dim 10,
word_ngrams 2, 100,000 buckets, lr 0.1, 5 epochs, min_count 1); precision at 1 on a held-out
split, tokens/s, and the share of test lines on which fastText, loading our model.bin, predicts
our label.

    PYTHONPATH=common:containers/blazingtext python bench/bench_blazingtext.py [--repeats 3] [--epochs 5]
        [--part word2vec|supervised|all]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "common"), str(ROOT / "containers" / "blazingtext"), str(ROOT / "tests" / "unit")]

from smalgos.localjob import LocalJob  # noqa: E402
from smalgos.training.runner import run_training  # noqa: E402
from smalgos_blazingtext.evaluation import WS353_ALL, read_pairs, score_pairs, wordsim353_file  # noqa: E402
from smalgos_blazingtext.word2vec import Word2VecCore, cpu_count  # noqa: E402

WIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MODES = {"cbow": {"mode": "cbow"}, "skipgram": {"mode": "skipgram"},
         "cbow+subwords": {"mode": "cbow", "subwords": True, "buckets": 200000},
         "batch_skipgram": {"mode": "batch_skipgram"}}


def wiki_corpus(path: Path) -> int:
    """gensim's Wikipedia sample as one tokenised page per line; returns the token count."""
    from gensim.corpora.wikicorpus import WikiCorpus
    from gensim.test.utils import datapath

    tokens = 0
    with open(path, "w", encoding="utf-8") as out:
        for page in WikiCorpus(datapath(WIKI), dictionary={}, processes=1).get_texts():
            out.write(" ".join(page) + "\n")
            tokens += len(page)
    return tokens


class LogTap(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def ours(corpus: Path, hps: dict, scratch: Path) -> dict:
    job = LocalJob(scratch)
    job.write_config(hps, {"train": {"ContentType": "text/plain"}})
    job.add_file("train", "corpus.txt", corpus.read_bytes())
    tap = LogTap()
    logging.getLogger("smalgos").addHandler(tap)
    started = time.perf_counter()
    try:
        rc = run_training("blazingtext", job.paths, install_signal_handler=False)
    finally:
        logging.getLogger("smalgos").removeHandler(tap)
    seconds = time.perf_counter() - started
    if rc != 0:
        raise RuntimeError(job.failure)
    train_seconds = float(next(re.search(r"Total training time in seconds: (\S+)", line).group(1)
                               for line in tap.lines if line.startswith("Total training time")))
    result = json.loads((job.paths.model_dir / "eval.json").read_text())
    return {"seconds": seconds, "train_seconds": train_seconds, "rho": result[WS353_ALL]["spearmans_rho"]}


def gensim_direct(corpus: Path, hps: dict) -> dict:
    from gensim.models import FastText, Word2Vec

    params = {**DEFAULTS, **hps}
    if params["mode"] == "batch_skipgram":  # the peer: gensim's (unbatched) skip-gram
        params["mode"] = "skipgram"
    kwargs = Word2VecCore.from_hyperparameters(params, workers=cpu_count()).gensim_parameters()
    started = time.perf_counter()
    model = (FastText if params["subwords"] else Word2Vec)(**kwargs)
    model.build_vocab(corpus_file=str(corpus))
    training = time.perf_counter()
    model.train(corpus_file=str(corpus), total_words=model.corpus_total_words, epochs=model.epochs)
    done = time.perf_counter()
    wv = model.wv
    return {"seconds": done - started, "train_seconds": done - training,
            "rho": score_pairs(wv.index_to_key, wv.vectors, PAIRS)["spearmans_rho"]}


DEFAULTS: dict = {}
PAIRS: list = []


def supervised_bench(repeats: int, lines: int = 50000) -> None:
    from blazingtext.data import as_text, order_set
    from smalgos_blazingtext.supervised import SupervisedCore

    try:
        import fasttext
    except ImportError:
        fasttext = None
    train, test = order_set(lines, 0, noise=0.1, length=20), order_set(lines // 5, 1, noise=0.1, length=20)
    tokens = sum(len(line) + 1 for line in train) * 5
    results = {"ours": [], "fastText": []}
    accuracy = {"ours": [], "fastText": []}
    agreement = []
    with tempfile.TemporaryDirectory(prefix="bench-bt-sup-") as tmp:
        tmp = Path(tmp)
        (tmp / "train.txt").write_bytes(as_text(train))
        (tmp / "test.txt").write_bytes(as_text(test))
        for r in range(repeats):
            started = time.perf_counter()
            core = SupervisedCore(vector_dim=10, word_ngrams=2, buckets=100000, learning_rate=0.1, epochs=5,
                                  min_count=1, seed=r, device="cpu").fit(train)
            results["ours"].append(tokens / (time.perf_counter() - started))
            accuracy["ours"].append(core.accuracy(test))
            if fasttext is None:
                continue
            started = time.perf_counter()
            peer = fasttext.train_supervised(str(tmp / "train.txt"), dim=10, wordNgrams=2, bucket=100000, lr=0.1,
                                             epoch=5, minCount=1, verbose=0, seed=r)
            results["fastText"].append(tokens / (time.perf_counter() - started))
            accuracy["fastText"].append(peer.test(str(tmp / "test.txt"))[1])
            core.save(tmp / "ours")
            loaded = fasttext.load_model(str(tmp / "ours" / "model.bin"))
            ours = core.predict([line[1:] for line in test], k=1)
            same = sum(loaded.f.predict(" ".join(line[1:]) + "\n", 1, 0.0, "strict")[0][1] == labels[0]
                       for line, (labels, _) in zip(test, ours))
            agreement.append(same / len(test))
    med = statistics.median
    print(f"\nsupervised: {len(train)} training / {len(test)} test lines of 20 words, 10 % labels flipped (best "
          f"possible accuracy 0.90); dim 10, word_ngrams 2, 100,000 buckets, lr 0.1, 5 epochs\n")
    print("| classifier | precision@1 | M tokens/s |")
    print("|---|---|---|")
    for name in results:
        if results[name]:
            print(f"| {name} | {med(accuracy[name]):.4f} | {med(results[name]) / 1e6:.3f} |")
    if agreement:
        print(f"\nfastText loading our model.bin predicts our label on {med(agreement):.4%} of test lines")
    else:
        print("\n(fastText is not installed here: no peer figures)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--part", choices=("word2vec", "supervised", "all"), default="all")
    args = parser.parse_args()
    if args.part in ("supervised", "all"):
        supervised_bench(args.repeats)
    if args.part == "supervised":
        return
    logging.getLogger("gensim").setLevel(logging.WARNING)
    from smalgos.declaration import load_algorithm

    DEFAULTS.update(load_algorithm("blazingtext").hyperparameters.parse({"mode": "cbow"}))
    PAIRS.extend(read_pairs(wordsim353_file()))
    with tempfile.TemporaryDirectory(prefix="bench-bt-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "wiki.txt"
        tokens = wiki_corpus(corpus)
        print(f"corpus: gensim's Wikipedia sample, {tokens} tokens; {args.epochs} epochs, dim 100, window 5, "
              f"negative 5, min_count 5, sample 1e-4, lr 0.05; {cpu_count()} worker threads\n")
        rows = {m: {"ours": [], "ours_train": [], "gensim": [], "gensim_train": [], "rho_ours": [], "rho_gensim": []}
                for m in MODES}
        for r in range(args.repeats):
            for name, hps in MODES.items():  # interleaved: each repeat runs every mode both ways
                hps = {**hps, "epochs": args.epochs}
                a = ours(corpus, hps, tmp / f"job-{name}-{r}")
                b = gensim_direct(corpus, hps)
                words = tokens * args.epochs
                rows[name]["ours"].append(words / a["seconds"])
                rows[name]["ours_train"].append(words / a["train_seconds"])
                rows[name]["gensim"].append(words / b["seconds"])
                rows[name]["gensim_train"].append(words / b["train_seconds"])
                rows[name]["rho_ours"].append(a["rho"])
                rows[name]["rho_gensim"].append(b["rho"])
    med = statistics.median
    print("| mode | training: ours (M words/s) | gensim | gensim / ours | whole: ours job | gensim vocab+train "
          "| gensim / ours | WS-353 rho ours | rho gensim | rho difference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, v in rows.items():
        print(f"| {name} | {med(v['ours_train']) / 1e6:.3f} | {med(v['gensim_train']) / 1e6:.3f} | "
              f"{med(v['gensim_train']) / med(v['ours_train']):.3f} | {med(v['ours']) / 1e6:.3f} | "
              f"{med(v['gensim']) / 1e6:.3f} | {med(v['gensim']) / med(v['ours']):.3f} | "
              f"{med(v['rho_ours']):.4f} | {med(v['rho_gensim']):.4f} | "
              f"{med(v['rho_ours']) - med(v['rho_gensim']):+.4f} |")
    print("\n(medians of", args.repeats, "interleaved repeats; rho over the WS-353 pairs found in the vocabulary)")


if __name__ == "__main__":
    main()
