"""Object2Vec on generated data with known answers (bigger than the unit tests' versions):

- ratings from latent factors (users × items, rank 4, items in 4 clusters, noise 0.25): held-out
  RMSE of Object2Vec (pooled_embedding both sides, regression, enc_dim = rank + 1) against a biased
  matrix factorisation of rank 4 fitted on the same training ratings; the item embeddings' mean
  distance within a latent cluster against across clusters; training records/second.
- sentence pairs (paraphrase: a shuffled copy with synonyms swapped in; or an unrelated sentence):
  held-out accuracy of each encoder (pooled_embedding, hcnn, bilstm), training records/second.

    PYTHONPATH=containers/object2vec python bench/bench_object2vec.py [--users 600 --items 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from object2vec.data import mf_rmse, ratings, sentence_pairs  # noqa: E402

from smalgos_object2vec.model import Object2Vec  # noqa: E402
from smalgos_object2vec.records import Sequences  # noqa: E402

RANK = 4


def timed_fit(model: Object2Vec, train, validation):
    records, seconds = [], []
    model.fit(train, validation=validation,
              callback=lambda r: (records.append(r.records), seconds.append(r.seconds)))
    return sum(records) / sum(seconds)


def bench_ratings(users: int, items: int, per_user: int) -> None:
    data, cluster = ratings(users, items, RANK, per_user)
    n = len(data)
    train, validation, test = data[:int(.7 * n)], data[int(.7 * n):int(.8 * n)], data[int(.8 * n):]
    started = time.time()
    peer = mf_rmse(train, test, users, items, RANK, steps=400)
    mf_seconds = time.time() - started
    dim = RANK + 1
    model = Object2Vec(enc0_max_seq_len=1, enc0_vocab_size=users, enc0_network="pooled_embedding",
                       enc1_network="pooled_embedding", enc1_vocab_size=items, enc1_max_seq_len=1, enc_dim=dim,
                       enc0_token_embedding_dim=dim, enc1_token_embedding_dim=dim, output_layer="mean_squared_error",
                       comparator_list="hadamard, concat", mlp_layers=1, mlp_dim=dim, epochs=60, learning_rate=0.01,
                       mini_batch_size=64, early_stopping_patience=5, early_stopping_tolerance=1e-4)
    started = time.time()
    speed = timed_fit(model, train, validation)
    ours = model.evaluate(test)["mean_squared_error"] ** 0.5
    vectors = model.embed("in1", Sequences(np.arange(items)[:, None], np.ones(items, np.int64)))
    distance = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    same = (cluster[:, None] == cluster[None]) & ~np.eye(items, dtype=bool)
    print(f"ratings: {users} users x {items} items, {n} ratings ({len(train)} train)")
    print(f"  MF rank {RANK} RMSE {peer:.4f} ({mf_seconds:.1f} s)   Object2Vec RMSE {ours:.4f}   ratio {ours / peer:.3f}"
          f"   best epoch {model.best_epoch_} of {model.epochs_trained_} ({time.time() - started:.1f} s)")
    print(f"  item embeddings: mean distance within a cluster {distance[same].mean():.3f}, across "
          f"{distance[cluster[:, None] != cluster[None]].mean():.3f}")
    print(f"  training throughput {speed:,.0f} records/s")


def bench_sentences(n: int) -> None:
    data = sentence_pairs(n)
    cut = int(.8 * n), int(.9 * n)
    train, validation, test = data[:cut[0]], data[cut[0]:cut[1]], data[cut[1]:]
    print(f"sentence pairs: {len(train)} train, {len(test)} test (vocabulary 60, 5-8 words)")
    for network in ("pooled_embedding", "hcnn", "bilstm"):
        model = Object2Vec(enc0_max_seq_len=10, enc0_vocab_size=60, enc0_network=network, enc0_layers=2, enc_dim=32,
                           enc0_token_embedding_dim=16, tied_token_embedding_weight=True, mlp_dim=32,
                           mlp_activation="relu", epochs=10, learning_rate=0.005, early_stopping_patience=2,
                           early_stopping_tolerance=0.001)
        started = time.time()
        speed = timed_fit(model, train, validation)
        accuracy = model.evaluate(test)["accuracy"]
        print(f"  {network:16s} accuracy {accuracy:.3f}   best epoch {model.best_epoch_}   "
              f"{speed:,.0f} records/s   ({time.time() - started:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--per-user", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    bench_ratings(args.users, args.items, args.per_user)
    bench_sentences(args.pairs)


if __name__ == "__main__":
    main()
