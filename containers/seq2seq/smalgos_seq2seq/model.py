"""Seq2Seq as SageMaker's `seq2seq:1` describes it, usable from a notebook:

    sv, tv = Vocabulary.build(sources), Vocabulary.build(targets)
    model = Seq2Seq(rnn_num_hidden=64, num_embed_source=32, num_embed_target=32, max_num_epochs=10)
    model.fit(pairs_of(sources, targets, sv, tv), pairs_of(val_src, val_trg, sv, tv), sv, tv)
    model.translate_text(["you are so good !"])      # → ["..."]

Parameters are the declaration's hyperparameters (checked by it, defaults from it), plus
`random_state` and `device`.

Training (Sockeye 1's loop): batches of `batch_size` pairs from length buckets, shuffled; the mean
token cross-entropy (padding ignored) minimised with `optimizer_type`, gradients clipped
component-wise at `clip_gradient`; every `checkpoint_frequency_num_batches` updates the validation
perplexity and accuracy (teacher-forced) and, with `bleu_sample_size`, the BLEU (sacrebleu,
tokenize="none", of beam search with `beam_size`) of that many validation sentences. A checkpoint
better on `optimized_metric` keeps its weights; `checkpoint_threshold` checkpoints in a row that
are not stop training, once `min_num_epochs` epochs are done (never with `max_num_epochs`, which
trains exactly that many). `max_num_batches` caps the updates. Training that ends between
checkpoints evaluates once more. The best checkpoint's weights are the model.

The learning rate: `plateau_reduce` multiplies it by `plateau_reduce_lr_factor` after
`plateau_reduce_lr_threshold` checkpoints without improvement; `fixed_rate_inv_t` and
`fixed_rate_inv_sqrt_t` halve it after `fixed_rate_lr_half_life` checkpoints' worth of updates.

Artifacts: `model_algo-1.safetensors` (the network's tensors), `model_algo-1.json` (format,
architecture, decoding settings, training summary) and the two vocabularies (`vocab.src.json`,
`vocab.trg.json`): model.tar.gz alone serves.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from smalgos.errors import InputError, NotFittedError
from smalgos.estimator import read_metadata, write_metadata
from smalgos.training.neural import (
    InverseSqrtTimeDecay, InverseTimeDecay, PlateauReduce, optimizer_by_name, scale_gradients, set_learning_rate,
)

from .data import Pairs, batches, num_batches, pad, parallel_buckets
from .declaration import HYPERPARAMETERS, VOCAB_SOURCE, VOCAB_TARGET
from .network import build_network, network_config, token_loss
from .search import Hypothesis, beam_search, greedy_search
from .vocab import BOS, EOS, PAD, Vocabulary

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"
META_FILE = "model_algo-1.json"
FILES = (MODEL_FILE, META_FILE, VOCAB_SOURCE, VOCAB_TARGET)
FORMAT, FORMAT_VERSION = "smalgos-seq2seq", 1
DECODE_BATCH = 64
LOWER_IS_BETTER = {"perplexity": True, "accuracy": False, "bleu": False}


def pairs_of(sources: Sequence[str], targets: Sequence[str], sv: Vocabulary, tv: Vocabulary,
             max_source: int = 100, max_target: int = 100) -> Pairs:
    """Whitespace-tokenised sentence pairs as ids (what read_pairs gives for their records)."""
    src = [np.array(sv.ids(s)[:max_source], np.int32) for s in sources]
    trg = [np.array(tv.ids(t)[:max_target], np.int32) for t in targets]
    return Pairs(src, trg)


@dataclass
class Checkpoint:
    number: int
    epoch: int
    updates: int
    train: dict            # perplexity, accuracy of the updates since the last checkpoint
    validation: dict       # perplexity, accuracy[, bleu]
    improved: bool
    learning_rate: float
    sentences: int         # trained since the last checkpoint
    tokens: int
    seconds: float


def decoder_input(trg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(<s> y, y </s>) padded one longer than `trg` (B, T)."""
    b = trg.shape[0]
    lengths = (trg != PAD).sum(1)
    trg_in = np.concatenate([np.full((b, 1), BOS, np.int64), trg], 1)
    trg_out = np.concatenate([trg, np.zeros((b, 1), np.int64)], 1)
    trg_out[np.arange(b), lengths] = EOS
    return trg_in, trg_out


class Seq2Seq:
    def __init__(self, random_state: int = 0, device: str | None = None, **hyperparameters):
        self.random_state, self.device = random_state, device
        given = {k: v for k, v in hyperparameters.items() if v is not None}
        try:
            self.params = HYPERPARAMETERS.parse(given)
        except InputError:
            raise
        except Exception as exc:  # a ClientError naming the hyperparameter: a ValueError in a notebook too
            raise InputError(getattr(exc, "message", str(exc))) from None

    @classmethod
    def from_hyperparameters(cls, hp: dict, **kw) -> "Seq2Seq":
        return cls(**kw, **hp)

    # -- fitting --------------------------------------------------------------------------------

    def _torch(self):
        import torch

        from smalgos.maths.device import pick_device

        return torch, pick_device(self.device)

    def fit(self, train: Pairs, validation: Pairs, source_vocab: Vocabulary, target_vocab: Vocabulary,
            callback: Callable[[Checkpoint], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "Seq2Seq":
        torch, device = self._torch()
        hp = self.params
        if not len(train):
            raise InputError("the training data hold no sentence pairs")
        if not len(validation):
            raise InputError("the validation data hold no sentence pairs")
        self.source_vocab_, self.target_vocab_ = source_vocab, target_vocab
        self.config_ = network_config(hp, len(source_vocab), len(target_vocab))
        self.length_ratio_ = train.length_ratio()
        buckets = parallel_buckets(hp["max_seq_len_source"], hp["max_seq_len_target"], hp["bucket_width"],
                                   self.length_ratio_[0], hp["bucketing_enabled"])
        self.buckets_ = buckets
        init = (hp["weight_init_type"], hp["weight_init_scale"], hp["xavier_factor_type"])
        net = self.net_ = build_network(self.config_, self.random_state, init).to(device)
        params = [p for p in net.parameters()]
        opt = optimizer_by_name(hp["optimizer_type"], params, hp["learning_rate"], hp["weight_decay"])
        if hp["optimizer_type"] == "sgd" and hp["momentum"]:
            for group in opt.param_groups:
                group["momentum"] = float(hp["momentum"])
        every = hp["checkpoint_frequency_num_batches"]
        half_life = hp["fixed_rate_lr_half_life"] * every
        schedule = {"plateau_reduce": lambda: PlateauReduce(hp["learning_rate"], hp["plateau_reduce_lr_factor"],
                                                            hp["plateau_reduce_lr_threshold"]),
                    "fixed_rate_inv_t": lambda: InverseTimeDecay(hp["learning_rate"], half_life),
                    "fixed_rate_inv_sqrt_t": lambda: InverseSqrtTimeDecay(hp["learning_rate"], half_life),
                    }[hp["lr_scheduler_type"]]()
        clip = hp["clip_gradient"] if hp["clip_gradient"] >= 0 else math.inf
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(self.random_state)
        self.batches_per_epoch_ = num_batches(train, buckets, hp["batch_size"])
        max_batches, max_epochs = hp["max_num_batches"], hp["max_num_epochs"]
        lower = LOWER_IS_BETTER[hp["optimized_metric"]]
        best_value, best_state, bad = None, None, 0
        updates, epoch, number = 0, 0, 0
        window = {"nll": 0.0, "tokens": 0, "correct": 0, "sentences": 0, "since": time.time()}
        self.checkpoints_: list[Checkpoint] = []

        def checkpoint() -> bool:
            nonlocal best_value, best_state, bad, number
            number += 1
            held = self.evaluate(validation, bleu=hp["bleu_sample_size"])
            value = held[hp["optimized_metric"]]
            improved = best_value is None or (value < best_value if lower else value > best_value)
            if improved:
                best_value, bad = value, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                self.best_checkpoint_ = (number, epoch, updates, held)
            else:
                bad += 1
            if isinstance(schedule, PlateauReduce):
                set_learning_rate(opt, schedule.rate(improved))
            tokens = max(window["tokens"], 1)
            report = Checkpoint(number, epoch, updates, {"perplexity": math.exp(min(window["nll"] / tokens, 50.0)),
                                                         "accuracy": window["correct"] / tokens},
                                held, improved, opt.param_groups[0]["lr"], window["sentences"], window["tokens"],
                                time.time() - window["since"])
            window.update(nll=0.0, tokens=0, correct=0, sentences=0, since=time.time())
            self.checkpoints_.append(report)
            if callback is not None:
                callback(report)
            return max_epochs is None and bad >= hp["checkpoint_threshold"] and epoch - 1 >= hp["min_num_epochs"]

        stop = False
        while not stop:
            epoch += 1
            for src, trg in batches(train, buckets, hp["batch_size"], rng):
                net.train()
                trg_in, trg_out = decoder_input(trg)
                src_t = torch.from_numpy(src).to(device)
                logits, _ = net(src_t, torch.from_numpy(trg_in).to(device))
                nll, count, correct = token_loss(logits, torch.from_numpy(trg_out).to(device))
                opt.zero_grad(set_to_none=True)
                (nll / count).backward()
                scale_gradients(params, 1.0, clip)
                opt.step()
                updates += 1
                window["nll"] += float(nll.detach())
                window["tokens"] += int(count)
                window["correct"] += int(correct)
                window["sentences"] += len(src)
                if not isinstance(schedule, PlateauReduce):
                    set_learning_rate(opt, schedule.rate(updates))
                if updates % every == 0:
                    stop = checkpoint()
                if (max_batches > 0 and updates >= max_batches) or should_stop():
                    stop = True
                if stop:
                    break
            if max_epochs is not None and epoch >= max_epochs:
                stop = True
        if updates % every:  # ended between checkpoints: evaluate the last weights too
            checkpoint()
        self.epochs_trained_, self.updates_ = epoch, updates
        net.load_state_dict(best_state)
        net.eval()
        self.check_finite_model("the fitted model")
        return self

    # -- evaluating and decoding ----------------------------------------------------------------

    def check_fitted(self) -> None:
        if getattr(self, "net_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit() or load() first")

    def evaluate(self, pairs: Pairs, bleu: int = 0) -> dict:
        """Teacher-forced perplexity and token accuracy (</s> included) over `pairs`, and with `bleu`
        (a count, -1: all) the BLEU of the first `bleu` sources' beam-search translations."""
        torch, device = self._torch()
        self.check_fitted()
        net = self.net_
        was_training = net.training
        net.eval()
        nll, tokens, correct = 0.0, 0, 0
        with torch.no_grad():
            for src, trg in batches(pairs, self.buckets_, self.params["batch_size"]):
                trg_in, trg_out = decoder_input(trg)
                logits, _ = net(torch.from_numpy(src).to(device), torch.from_numpy(trg_in).to(device))
                a, n, c = token_loss(logits, torch.from_numpy(trg_out).to(device))
                nll, tokens, correct = nll + float(a), tokens + int(n), correct + int(c)
        out = {"perplexity": math.exp(min(nll / max(tokens, 1), 50.0)), "accuracy": correct / max(tokens, 1)}
        if bleu:
            out["bleu"] = self.bleu(pairs, None if bleu < 0 else bleu)
        net.train(was_training)
        return out

    def bleu(self, pairs: Pairs, sample: int | None = None, beam_size: int | None = None) -> float:
        import sacrebleu

        n = len(pairs) if sample is None else min(sample, len(pairs))
        hyps = self.translate([list(s) for s in pairs.source[:n]], beam_size=beam_size)
        tv = self.target_vocab_
        refs = [tv.text(t) for t in pairs.target[:n]]
        return float(sacrebleu.corpus_bleu([tv.text(h.ids) for h in hyps], [refs], tokenize="none").score)

    def max_output_length(self, source_length: int) -> int:
        mean, std = self.length_ratio_
        return int(min(self.params["max_seq_len_target"], math.ceil(source_length * (mean + 2 * std)) + 2))

    def translate(self, sources: Sequence[Sequence[int]], beam_size: int | None = None) -> list[Hypothesis]:
        """The best translation of each source (lists of ids, cut to max_seq_len_source; at least one
        id each): beam search of `beam_size` (default: the trained beam_size), greedy at 1."""
        torch, device = self._torch()
        self.check_fitted()
        k = self.params["beam_size"] if beam_size is None else int(beam_size)
        cut = [list(s)[:self.params["max_seq_len_source"]] for s in sources]
        order = sorted(range(len(cut)), key=lambda i: len(cut[i]))
        out: list[Hypothesis | None] = [None] * len(cut)
        net = self.net_.eval()
        with torch.no_grad():
            for start in range(0, len(order), DECODE_BATCH):
                rows = order[start:start + DECODE_BATCH]
                seqs = [np.asarray(cut[i], np.int64) for i in rows]
                src = torch.from_numpy(pad(seqs, max(len(s) for s in seqs))).to(device)
                memory, mask = net.encode(src)
                caps = [self.max_output_length(len(s)) for s in seqs]
                found = (greedy_search(net.decoder, memory, mask, caps) if k == 1
                         else beam_search(net.decoder, memory, mask, k, caps))
                for i, h in zip(rows, found):
                    out[i] = h
        return out

    def translate_text(self, sentences: Sequence[str], beam_size: int | None = None) -> list[str]:
        sv, tv = self.source_vocab_, self.target_vocab_
        return [tv.text(h.ids) for h in self.translate([sv.ids(s) or [EOS] for s in sentences], beam_size)]

    # -- artifacts ------------------------------------------------------------------------------

    def model_arrays(self) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def check_finite_model(self, where: str) -> None:
        bad = [k for k, v in self.net_.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
        if bad:
            raise InputError(f"{where}: the model's {', '.join(bad)} hold NaN or infinite values (training "
                             "diverged: try a lower learning_rate or a clip_gradient); no such model is saved or "
                             "served")

    def save(self, model_dir) -> list[Path]:
        from safetensors.torch import save_file

        self.check_fitted()
        self.check_finite_model("Refusing to save")
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()},
                  str(model_dir / MODEL_FILE))
        best = getattr(self, "best_checkpoint_", None)
        write_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION, {
            "architecture": self.config_, "beam_size": self.params["beam_size"],
            "max_seq_len_source": self.params["max_seq_len_source"],
            "max_seq_len_target": self.params["max_seq_len_target"],
            "length_ratio": list(self.length_ratio_), "hyperparameters": self.params,
            "epochs_trained": getattr(self, "epochs_trained_", 0), "updates": getattr(self, "updates_", 0),
            "best_checkpoint": None if best is None else {"number": best[0], "epoch": best[1], "updates": best[2],
                                                          "validation": best[3]}})
        for name, vocab in ((VOCAB_SOURCE, self.source_vocab_), (VOCAB_TARGET, self.target_vocab_)):
            (model_dir / name).write_text(json.dumps(vocab.token_ids, ensure_ascii=False) + "\n", encoding="utf-8")
        return [model_dir / n for n in FILES]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "Seq2Seq":
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta = read_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION)
        hp = {k: v for k, v in meta["hyperparameters"].items() if v is not None}
        est = cls(device=device, **hp)
        est.source_vocab_ = Vocabulary.from_json(model_dir / VOCAB_SOURCE)
        est.target_vocab_ = Vocabulary.from_json(model_dir / VOCAB_TARGET)
        config = dict(meta["architecture"])
        for name, vocab in (("source_vocab_size", est.source_vocab_), ("target_vocab_size", est.target_vocab_)):
            if config[name] != len(vocab):
                raise ValueError(f"{META_FILE}: {name} is {config[name]} but the vocabulary holds {len(vocab)}")
        est.config_ = config
        est.length_ratio_ = tuple(float(x) for x in meta["length_ratio"])
        est.epochs_trained_, est.updates_ = int(meta.get("epochs_trained", 0)), int(meta.get("updates", 0))
        p = est.params
        est.buckets_ = parallel_buckets(p["max_seq_len_source"], p["max_seq_len_target"], p["bucket_width"],
                                        est.length_ratio_[0], p["bucketing_enabled"])
        _, dev = est._torch()
        net = build_network(config)
        tensors = load_file(str(model_dir / MODEL_FILE))
        try:
            net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{MODEL_FILE}: tensors do not match the architecture of {META_FILE}: "
                             f"{str(exc).splitlines()[0]}") from None
        est.net_ = net.to(dev).eval()
        return est
