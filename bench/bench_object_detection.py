"""Object Detection on generated scenes of coloured shapes (tests/unit/object_detection/shapes.py:
1-2 objects of 3 classes on a noisy background, boxes known) through the /opt/ml contract: RecordIO
train and validation channels with packed labels, the image's trainer run in-process. It prints the
validation mAP@0.5 per epoch, the best, the job's seconds, and the job's training images/s beside a
bare torch loop of the same SSD (same anchors, matching with hard negative mining, loss and
optimiser) on the same images already decoded and resized in memory (the job decodes JPEG records
and augments each image, crop / flip / colour, as it trains).

No ImageNet weights can be downloaded here. `--pretrain K` starts the network as AWS's does (a
pretrained base in the `model` channel): a VGG-16 of the same width is first trained for K epochs
on other generated scenes to say which class sits in which cell of a 4x4 grid, and its `features.*`
go into the job's `model` channel as a torchvision-format state dict (safetensors). `--pretrain 0`
trains from scratch (VGG-16's plain convolutions started at unit variance, LSUV).

    PYTHONPATH=containers/object-detection python bench/bench_object_detection.py \
        [--base vgg-16] [--width 8] [--pretrain 15] [--epochs 30] [--lr-step 200] [--threads 1]

mAP@0.5 >= 0.7 on VGG-16 (README): `--pretrain 15 --epochs 250 --lr-step 200` (0.756, about 10 minutes).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from vision_bench import bare_loop, logged_job  # noqa: E402 (puts tests/unit on the path)
from object_detection.shapes import make_rec, scene  # noqa: E402

from smalgos.training.neural import decay_groups, optimizer_by_name  # noqa: E402
from smalgos.vision.vgg import vgg16_features  # noqa: E402
from smalgos_object_detection.data import from_records, prepare  # noqa: E402
from smalgos_object_detection.model import ObjectDetector  # noqa: E402
from smalgos_object_detection.multibox import match, multibox_loss  # noqa: E402

REC = {"ContentType": "application/x-recordio"}
GRID = 4


def pretrained_features(width: int, epochs: int, size: int, n: int = 1500) -> bytes:
    """safetensors bytes of a torchvision-format `features.*` state dict: VGG-16 (width) trained to
    tell which of the 3 classes has its centre in which cell of a GRIDxGRID grid."""
    rng = np.random.default_rng(7)
    images, targets = [], torch.zeros(n, 3, GRID, GRID)
    for i in range(n):
        pixels, objects = scene(rng, size)
        images.append(prepare(pixels, size))
        for c, x0, y0, x1, y1 in objects:
            targets[i, int(c), min(GRID - 1, int((y0 + y1) / 2 * GRID)), min(GRID - 1, int((x0 + x1) / 2 * GRID))] = 1
    torch.manual_seed(0)
    features = vgg16_features(width)
    net = torch.nn.Sequential(features, torch.nn.AdaptiveAvgPool2d(GRID), torch.nn.Conv2d(512 // width, 3, 1))
    loss = torch.nn.functional.binary_cross_entropy_with_logits
    rate = bare_loop(net, torch.optim.Adam(net.parameters(), 1e-3), loss, torch.stack(images), targets, 32, epochs)
    print(f"pretraining: VGG-16 width {width}, {n} scenes, {epochs} epochs, {rate:.0f} images/s", file=sys.stderr)
    return save({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()})


def bare_rate(tmp: Path, hp: dict, width: int, epochs: int) -> float:
    """Images/s of the same SSD, matching, loss and optimiser on in-memory tensors."""
    data = from_records("train", [tmp / "train.rec"], 3, 350, int(hp["image_shape"]))
    images = torch.stack([prepare(data.pixels(i), int(hp["image_shape"])) for i in range(len(data))])
    labels = [torch.from_numpy(np.asarray(b, np.float32)).reshape(-1, 5) for b in data.labels]
    det = ObjectDetector(**hp, width=width)
    torch.manual_seed(0)
    net = det.new_network()
    opt = optimizer_by_name(det.hp["optimizer"], decay_groups(net, det.hp["weight_decay"]),
                            float(det.hp["learning_rate"]), momentum=det.hp["momentum"])

    def loss(out, targets):
        return sum(multibox_loss(*out, match(net.anchors, targets)))

    return bare_loop(net, opt, loss, images, labels, int(hp["mini_batch_size"]), epochs,
                     smallest=2 if det.base_network == "resnet-50" else 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="vgg-16", choices=("vgg-16", "resnet-50"))
    ap.add_argument("--width", type=int, default=8, help="divides the channel counts (1: AWS's network)")
    ap.add_argument("--pretrain", type=int, default=15, help="epochs of base pretraining (0: from scratch)")
    ap.add_argument("--image-shape", type=int, default=64)
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--validation", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--learning-rate", type=float, default=0.001)
    ap.add_argument("--lr-step", default="", help="lr_scheduler_step: epochs at which the rate is divided by 10")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (this small network: 1 is fastest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.width != 1:  # the job's network at the benchmark's width (not a hyperparameter: AWS has none)
        declared = ObjectDetector.from_hyperparameters.__func__
        ObjectDetector.from_hyperparameters = classmethod(
            lambda cls, hps, **kw: declared(cls, hps, **{"width": args.width, **kw}))
    hp = {"num_classes": 3, "num_training_samples": args.train, "image_shape": args.image_shape,
          "epochs": args.epochs, "mini_batch_size": 16, "optimizer": args.optimizer,
          "learning_rate": args.learning_rate,
          "base_network": args.base, "use_pretrained_model": 0,
          **({"lr_scheduler_step": args.lr_step, "lr_scheduler_factor": 0.1} if args.lr_step else {})}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_rec(tmp / "train.rec", args.train, seed=1)
        make_rec(tmp / "validation.rec", args.validation, seed=2)
        files = {("train", "train.rec"): (tmp / "train.rec").read_bytes(),
                 ("validation", "validation.rec"): (tmp / "validation.rec").read_bytes()}
        channels = {"train": REC, "validation": REC}
        if args.pretrain:
            if args.base != "vgg-16":
                raise SystemExit("--pretrain makes a VGG-16 base: use --base vgg-16 or --pretrain 0")
            files[("model", "vgg16.safetensors")] = pretrained_features(args.width, args.pretrain, args.image_shape)
            channels["model"] = {"ContentType": "application/x-sagemaker-model"}
        log, seconds = logged_job("object-detection", tmp / "job", {k: str(v) for k, v in hp.items()}, channels, files)
        started = time.time()
        bare = bare_rate(tmp, hp, args.width, 2)
        print(f"bare loop: {time.time() - started:.0f} s", file=sys.stderr)
    maps = [float(v) for v in re.findall(r"validation mAP <score>=\((\S+)\)", log)]
    rates = [float(v) for v in re.findall(r"train throughput=(\S+) records/second", log)]
    job_rate = sum(rates) / len(rates)
    start = f"base pretrained {args.pretrain} epochs" if args.pretrain else "from scratch"
    rate = f"{args.optimizer} {args.learning_rate:g}" + (f" (/10 at epochs {args.lr_step})" if args.lr_step else "")
    print(f"SSD on {args.base} (width {args.width}), image_shape {args.image_shape}, {args.train} training / "
          f"{args.validation} validation scenes, {args.epochs} epochs, {rate}, batch 16, {start}, "
          f"{args.threads} thread(s)")
    print("validation mAP per epoch:", " ".join(f"{m:.3f}" for m in maps))
    first = next((str(i) for i, m in enumerate(maps) if m >= 0.7), "-")
    print(f"best mAP@0.5 {max(maps):.4f} (>= 0.7 from epoch {first}); job {seconds:.0f} s")
    print(f"training images/s: job {job_rate:.1f}, bare loop {bare:.1f}, ratio {job_rate / bare:.2f}")


if __name__ == "__main__":
    main()
