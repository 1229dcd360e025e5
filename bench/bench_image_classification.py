"""Image Classification on scikit-learn's digits rendered as small RGB JPEGs: held-out accuracy per
epoch through the /opt/ml contract (a `.rec` train channel, a `.rec` validation channel, the
trainer of the image run in-process), and training images/s of that job beside a bare torch loop of
the same network on the same images, already decoded and normalised in memory (the job decodes
the JPEG records in DataLoader workers: without augmentation_type, as here, once in its first epoch,
then trains from memory — smalgos_image_classification.data.PreparedBatches; the job's images/s
count that first epoch too).

    PYTHONPATH=containers/image-classification python bench/bench_image_classification.py \
        [--side 8] [--layers 20] [--epochs 8] [--threads 2] [--rounds 5]

torchvision is not a peer on this CPU machine (its PyPI wheels need CUDA torch); on a GPU machine
with torchvision installed, `torchvision.models.resnet18(weights=None)` loads our ResNet-18's state
dict as it is (same names), which is the check to run there.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import torch

from vision_bench import bare_loop, logged_job  # noqa: E402 (puts tests/unit on the path)
from image_classification.digits import digit_images, rec_bytes  # noqa: E402

from smalgos.vision.resnet import resnet  # noqa: E402
from smalgos.vision.transforms import EvalTransform  # noqa: E402
from smalgos.training.neural import decay_groups, optimizer_by_name  # noqa: E402

REC = {"ContentType": "application/x-recordio"}


def bare_rate(x, y, hp: dict, side: int, layers: int, epochs: int) -> float:
    """Images/s of the same network, optimiser and batch size on in-memory tensors."""
    prepare = EvalTransform((3, side, side))
    images = torch.stack([prepare(img, "x") for img in x])
    torch.manual_seed(0)
    net = resnet(layers, 10)
    opt = optimizer_by_name(hp["optimizer"], decay_groups(net, hp["weight_decay"]), hp["learning_rate"],
                            momentum=hp["momentum"], betas=(hp["beta_1"], hp["beta_2"]), eps=hp["eps"], rho=hp["gamma"])
    return bare_loop(net, opt, torch.nn.CrossEntropyLoss(), images, torch.as_tensor(y), hp["mini_batch_size"],
                     epochs, smallest=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=8)
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train", type=int, default=1400)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of job and bare loop (median ratio)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = digit_images(args.side)
    n = args.train
    hp = {"num_classes": 10, "num_training_samples": n, "num_layers": args.layers,
          "image_shape": f"3,{args.side},{args.side}", "epochs": args.epochs, "mini_batch_size": 32,
          "optimizer": "adam", "learning_rate": 0.01, "lr_scheduler_step": str(max(1, args.epochs * 3 // 4)),
          "lr_scheduler_factor": 0.1, "momentum": 0.9, "weight_decay": 0.0001, "beta_1": 0.9, "beta_2": 0.999,
          "eps": 1e-8, "gamma": 0.9}
    wire = {k: str(hp[k]) for k in ("num_classes", "num_training_samples", "num_layers", "image_shape", "epochs",
                                     "mini_batch_size", "optimizer", "learning_rate", "lr_scheduler_step",
                                     "lr_scheduler_factor")}
    ratios = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = {("train", "train.rec"): rec_bytes(x[:n], y[:n], tmp, "a.rec"),
                     ("validation", "val.rec"): rec_bytes(x[1400:], y[1400:], tmp, "b.rec")}
            log, total = logged_job("image-classification", tmp / "job", wire, {"train": REC, "validation": REC},
                                    files)
        accuracies = [float(v) for v in re.findall(r"Validation-accuracy=(\S+)", log)]
        costs = [float(v) for v in re.findall(r"Time cost=(\S+)", log)]
        job_rate = n * len(costs) / sum(costs)
        bare = bare_rate(x[:n], y[:n], hp, args.side, args.layers, min(args.epochs, 3))
        ratios.append(job_rate / bare)
        if round_ == 0:
            print(f"ResNet-{args.layers}, digits {args.side}x{args.side} JPEG, {n} training / {len(y) - 1400} held-out"
                  " images")
            print("held-out accuracy per epoch:", " ".join(f"{a:.3f}" for a in accuracies))
            print(f"best {max(accuracies):.4f}; job {total:.1f} s in all")
        print(f"round {round_ + 1}: training images/s: job {job_rate:.0f} (JPEG records decoded), bare loop "
              f"{bare:.0f}, ratio {ratios[-1]:.2f}", flush=True)
    ratios.sort()
    print(f"ratio over {len(ratios)} rounds: median {ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f} - "
          f"{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
