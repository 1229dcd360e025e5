"""Object Detection across two hosts (two processes on loopback, `LocalCluster`), SSD on AWS's
VGG-16 at image_shape 64: each host takes every other image of the FullyReplicated channels,
every step sums the gradients of both hosts' images and the mAP counts both hosts' validation
images, so the hosts print the same loss and mAP lines; only the master writes the model, and
that model serves."""
import re

import numpy as np

from algo_helpers import train_on_hosts
from object_detection.shapes import make_rec, scene
from smalgos_object_detection.model import ObjectDetector

HPS = {"num_classes": "3", "num_training_samples": "12", "image_shape": "64", "epochs": "2",
       "mini_batch_size": "3", "use_pretrained_model": "0", "optimizer": "adam"}
LINE = re.compile(r"epoch=(\d+), (?:batch=(\d+) )?(train cross_entropy|train smooth_l1|validation mAP) "
                  r"<(?:loss|score)>=\((\S+)\)")


def test_two_hosts_train_as_one_job(tmp_path):
    make_rec(tmp_path / "t.rec", 12, seed=1)
    make_rec(tmp_path / "v.rec", 6, seed=2)
    train, held = (tmp_path / "t.rec").read_bytes(), (tmp_path / "v.rec").read_bytes()
    logs, model_dir = train_on_hosts("object-detection", tmp_path / "job", HPS, [train] * 2, "FullyReplicated",
                                     extra={"validation": held}, content_type="application/x-recordio", suffix="rec")
    master, other = (LINE.findall(log) for log in logs)
    assert len(master) == 3 * 2 and master == other, (master, other)
    assert [batches for _, batches, name, _ in master if name == "train cross_entropy"] == ["4", "4"]  # 2 batches of 3 on each host
    assert "6 training and 3 validation images" in logs[0]
    assert "only the master writes the model" in logs[1]
    det = ObjectDetector.load(model_dir)
    found = det.predict([scene(np.random.default_rng(5), 96)[0]])[0]
    assert found.shape[1] == 6 and np.isfinite(found).all()
