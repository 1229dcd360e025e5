"""Seq2Seq on generated translation-like tasks: held-out BLEU of greedy and beam search, perplexity,
training and greedy-decoding speed, for the RNN (LSTM + MLP attention), ConvS2S and (ours) Transformer models.

- `reverse`: 3-12 tokens over 50 words → the same tokens reversed (20,000 training pairs).
- `numbers`: a number's digits ("4 0 7") → its English words ("four hundred seven"), below 10,000.

Per run: validation perplexity of the best checkpoint, BLEU (sacrebleu, tokenize="none") of 1,000
held-out sources with greedy search and with beam search (beam 5), training target tokens/s, and
greedy decoding tokens/s on CPU (one batch of 64 sentences, and one sentence at a time).

    PYTHONPATH=containers/seq2seq python bench/bench_seq2seq.py [--threads 1] [--quick] [--tasks reverse]
        [--networks rnn,cnn,transformer]

Sockeye 3 is not a peer here: it has only transformer models (no RNN or ConvS2S to compare with)
and pins torch<1.14, which does not install beside this project's torch 2.13.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from seq2seq.tasks import number_words, reversal  # noqa: E402

from smalgos_seq2seq.model import Seq2Seq, pairs_of  # noqa: E402
from smalgos_seq2seq.vocab import Vocabulary  # noqa: E402

WORDS = [f"w{i}" for i in range(50)]
TASKS = {"reverse": lambda n, seed: reversal(n, seed, 3, 12, WORDS), "numbers": number_words}
MODELS = {
    "rnn": dict(rnn_num_hidden=128, num_embed_source=64, num_embed_target=64, rnn_attention_type="mlp"),
    "cnn": dict(encoder_type="cnn", decoder_type="cnn", cnn_num_hidden=128, num_embed_source=64,
                num_embed_target=64, num_layers_encoder=4, num_layers_decoder=4),
    "transformer": dict(encoder_type="transformer", decoder_type="transformer", transformer_model_size=128,
                        transformer_attention_heads=4, transformer_feed_forward_num_hidden=256, transformer_dropout=0.0,
                        num_embed_source=128, num_embed_target=128, num_layers_encoder=2, num_layers_decoder=2),
}


def decode_speed(model: Seq2Seq, sources: list[list[int]]) -> tuple[float, float]:
    t = time.perf_counter()
    found = model.translate(sources[:64], beam_size=1)
    batched = sum(len(h.ids) + 1 for h in found) / (time.perf_counter() - t)
    t, tokens = time.perf_counter(), 0
    for s in sources[:32]:
        tokens += len(model.translate([s], beam_size=1)[0].ids) + 1
    return batched, tokens / (time.perf_counter() - t)


def run(task: str, network: str, n_train: int, epochs: int) -> dict:
    make = TASKS[task]
    train, valid, test = make(n_train, 0), make(500, 1), make(1000, 2)
    sv, tv = Vocabulary.build(train[0]), Vocabulary.build(train[1])
    model = Seq2Seq(**MODELS[network], batch_size=64, learning_rate=0.002, max_num_epochs=epochs,
                    checkpoint_frequency_num_batches=300, bleu_sample_size=200, beam_size=5,
                    optimized_metric="bleu")
    t = time.perf_counter()
    model.fit(pairs_of(*train, sv, tv), pairs_of(*valid, sv, tv), sv, tv)
    seconds = time.perf_counter() - t
    tokens = sum(c.tokens for c in model.checkpoints_)
    held = pairs_of(*test, sv, tv)
    sources = [list(s) for s in held.source]
    batched, single = decode_speed(model, sources)
    return {"task": task, "network": network, "train_pairs": n_train, "updates": model.updates_,
            "fit_s": seconds, "train_tok_s": tokens / seconds,
            "val_perplexity": model.best_checkpoint_[3]["perplexity"],
            "bleu_greedy": model.bleu(held, beam_size=1), "bleu_beam5": model.bleu(held, beam_size=5),
            "greedy_tok_s_batch64": batched, "greedy_tok_s_single": single}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer pairs and epochs")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list of: " + ", ".join(TASKS))
    parser.add_argument("--networks", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, epochs = (5000, 3) if args.quick else (20000, 6)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    header = ("task", "network", "updates", "fit_s", "train_tok_s", "val_perplexity", "bleu_greedy", "bleu_beam5",
              "greedy_tok_s_batch64", "greedy_tok_s_single")
    print(" | ".join(header))
    for task in args.tasks.split(","):
        for network in args.networks.split(","):
            r = run(task, network, n, epochs)
            print(" | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in header), flush=True)


if __name__ == "__main__":
    main()
