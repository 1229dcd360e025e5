"""Image Classification across two hosts (two processes on loopback, `LocalCluster`): every step
averages the gradients of both hosts' images, batch-norm statistics are averaged, and validation
counts are summed, so both hosts print the same accuracies and the master's model has learnt
from both halves. AWS's image takes FullyReplicated channels only ("the algorithm supports a fully
replicated model"): each host trains on every other image."""
import re

from algo_helpers import train_on_hosts
from image_classification.digits import digit_images, rec_bytes
from smalgos_image_classification.model import ImageClassifier

HPS = {"num_classes": "10", "num_training_samples": "800", "num_layers": "20", "image_shape": "3,8,8",
       "epochs": "6", "mini_batch_size": "32", "optimizer": "adam", "learning_rate": "0.01"}
ACCURACY = re.compile(r"Epoch\[(\d+)\] (Train|Validation)-accuracy=(\S+)")


def held_out_accuracy(model_dir, x, y) -> float:
    return float((ImageClassifier.load(model_dir).predict_proba(list(x)).argmax(1) == y).mean())


def test_two_hosts_on_the_full_data_print_the_same_accuracies(tmp_path):
    x, y = digit_images(8)
    train, held = rec_bytes(x[:800], y[:800], tmp_path, "t.rec"), rec_bytes(x[1400:], y[1400:], tmp_path, "v.rec")
    logs, model_dir = train_on_hosts("image-classification", tmp_path / "job", HPS, [train] * 2, "FullyReplicated",
                                     extra={"validation": held}, content_type="application/x-recordio", suffix="rec")
    master, other = (ACCURACY.findall(log) for log in logs)
    assert len(master) == 2 * 6 and master == other, (master, other)
    assert "trains on 400 images and validates on 199" in logs[0]
    assert "only the master writes the model" in logs[1]
    assert held_out_accuracy(model_dir, x[1400:], y[1400:]) >= 0.9
