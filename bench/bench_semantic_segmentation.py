"""Semantic Segmentation on generated shape images (a red disk and a blue rectangle on a noisy grey
background, tests/unit/semantic_segmentation/shapes.py) through the /opt/ml contract: JPEG train and
validation channels with PNG masks in train_annotation / validation_annotation, the image's trainer
run in-process, from scratch (no ImageNet weights can be downloaded here). For each algorithm (fcn,
psp, deeplab on the dilated ResNet-50 with its auxiliary head) it prints the validation mIOU per
epoch, the best, the job's seconds, and the job's training images/s beside a bare torch loop of the
same network, loss (+ 0.5 x the auxiliary loss) and optimiser on the same images already decoded and
normalised in memory (the job decodes JPEG/PNG files and crops in DataLoader workers).

    PYTHONPATH=containers/semantic-segmentation python bench/bench_semantic_segmentation.py \
        [--algorithms fcn,psp,deeplab] [--size 48] [--train 128] [--epochs 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from vision_bench import bare_loop, logged_job  # noqa: E402 (puts tests/unit on the path)
from semantic_segmentation.shapes import job_files, shapes  # noqa: E402

from smalgos.vision.transforms import normalise, to_tensor  # noqa: E402
from smalgos_semantic_segmentation.nets import SegmentationNet  # noqa: E402

IMG, PNG = {"ContentType": "image/jpeg"}, {"ContentType": "image/png"}
CHANNELS = {"train": IMG, "validation": IMG, "train_annotation": PNG, "validation_annotation": PNG}


def bare_rate(x, y, algorithm: str, batch: int, lr: float, epochs: int) -> float:
    """Images/s of the same network, loss and Adam on in-memory tensors."""
    images = torch.stack([normalise(to_tensor(img)) for img in x])
    torch.manual_seed(0)
    net = SegmentationNet("resnet-50", algorithm, 3)

    def loss(out, labels):
        return F.cross_entropy(out["out"], labels) + 0.5 * F.cross_entropy(out["aux"], labels)

    return bare_loop(net, torch.optim.Adam(net.parameters(), lr=lr), loss, images, torch.as_tensor(y).long(),
                     batch, epochs, smallest=batch)


def run_job(algorithm: str, files: dict, hp: dict, tmp: Path) -> tuple[list[float], list[float], float]:
    log, seconds = logged_job("semantic-segmentation", tmp / algorithm, {**hp, "algorithm": algorithm}, CHANNELS, files)
    mious = [float(v) for v in re.findall(r"validation mIOU: (\S+) \.", log)]
    rates = [float(v) for v in re.findall(r"train throughput: (\S+) samples/sec", log)]
    return mious, rates, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--algorithms", default="fcn,psp,deeplab")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--train", type=int, default=128)
    ap.add_argument("--validation", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--learning-rate", type=float, default=0.002)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, batch = args.train, 8
    x, y = shapes(n + args.validation, args.size, seed=1)
    files = {**job_files(x[:n], y[:n]), **job_files(x[n:], y[n:], "validation")}
    hp = {"num_classes": "3", "num_training_samples": str(n), "crop_size": str(args.size),
          "base_size": str(args.size), "epochs": str(args.epochs), "mini_batch_size": str(batch),
          "validation_mini_batch_size": "16", "optimizer": "adam", "learning_rate": str(args.learning_rate),
          "use_pretrained_model": "False"}
    print(f"shapes {args.size}x{args.size}, {n} training / {args.validation} validation images, "
          f"{args.epochs} epochs, adam lr {args.learning_rate}, batch {batch}, from scratch")
    print("| algorithm | best validation mIOU | epoch reaching 0.8 | job s | job images/s | bare loop images/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in args.algorithms.split(","):
            mious, rates, seconds = run_job(algorithm, files, hp, Path(tmp))
            bare = bare_rate(x[:n], y[:n], algorithm, batch, args.learning_rate, 2)
            job_rate = sum(rates) / len(rates)
            first = next((str(i) for i, m in enumerate(mious) if m >= 0.8), "-")
            print(f"  mIOU per epoch ({algorithm}):", " ".join(f"{m:.3f}" for m in mious), file=sys.stderr)
            print(f"| {algorithm} | {max(mious):.3f} | {first} | {seconds:.0f} | {job_rate:.1f} | {bare:.1f} | "
                  f"{job_rate / bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()
