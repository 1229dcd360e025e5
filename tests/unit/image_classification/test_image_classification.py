"""Image Classification through the /opt/ml contract (tests/unit/algo_helpers.train_job) on digits
JPEGs, the model channel (incremental, transfer, pretrained), and the exact serving bodies."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from algo_helpers import assert_image_request_errors, train_job
from image_classification.digits import digit_images, lst_files, rec_bytes
from smalgos.declaration import load_algorithm
from smalgos.environment import ServingEnv
from smalgos.errors import ClientError
from smalgos.serving.app import create_app
from smalgos.vision.recordio_images import decode_image, encode_image
from smalgos.vision.resnet import resnet
from smalgos_image_classification.model import META_FILE, ImageClassifier
from smalgos_image_classification.serve import load_model

ALGO = "image-classification"
REC = {"ContentType": "application/x-recordio"}
IMG = {"ContentType": "application/x-image"}
N_TRAIN = 800


def hps(**kw):
    base = {"num_classes": "10", "num_training_samples": str(N_TRAIN), "num_layers": "20", "image_shape": "3,8,8",
            "epochs": "5", "mini_batch_size": "32", "optimizer": "adam", "learning_rate": "0.01", "top_k": "2"}
    return {**base, **{k: str(v) for k, v in kw.items()}}


@pytest.fixture(scope="module")
def digits():
    return digit_images(8)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """One job on .rec files: 800 training digits, 397 held out, 8 epochs (5 left it near 0.95 on
    some CPUs); (job, its files)."""
    x, y = digits
    tmp = tmp_path_factory.mktemp("ic")
    files = {("train", "train.rec"): rec_bytes(x[:N_TRAIN], y[:N_TRAIN], tmp, "a.rec"),
             ("validation", "val.rec"): rec_bytes(x[1400:], y[1400:], tmp, "b.rec")}
    job, rc = train_job(ALGO, tmp / "job", hps(epochs=8), {"train": REC, "validation": REC}, files)
    assert rc == 0, job.failure
    return job, files


def test_declaration_defaults_and_errors():
    declared = load_algorithm(ALGO).hyperparameters
    values = declared.parse({"num_classes": "3", "num_training_samples": "10"})
    assert (values["num_layers"], values["image_shape"], values["optimizer"], values["learning_rate"],
            values["epochs"], values["mini_batch_size"]) == (152, "3,224,224", "sgd", 0.1, 30, 32)
    with pytest.raises(ClientError, match="Missing required hyperparameter: num_training_samples"):
        declared.parse({"num_classes": "3"})
    with pytest.raises(ClientError, match="num_layers: value '19' is not one of 18, 34, 50"):
        declared.parse({"num_classes": "3", "num_training_samples": "1", "num_layers": "19"})
    with pytest.raises(ClientError, match="image_shape: 2 channels in '2,32,32'"):
        declared.parse({"num_classes": "3", "num_training_samples": "1", "image_shape": "2,32,32"})
    with pytest.raises(ClientError, match=r"top_k: 5 is more than num_classes \(3\)"):
        declared.parse({"num_classes": "3", "num_training_samples": "1", "top_k": "5"})


def test_rec_training_reaches_held_out_accuracy(trained, digits):
    job, _ = trained
    meta = json.loads((job.paths.model_dir / META_FILE).read_text())
    assert meta["architecture"] == {"network": "resnet", "num_layers": 20, "style": "cifar",
                                    "state_dict_names": "torchvision"}
    assert meta["image_shape"] == [3, 8, 8] and meta["num_classes"] == 10
    assert meta["best_accuracy"] >= 0.95, meta["best_accuracy"]
    x, y = digits
    clf = ImageClassifier.load(job.paths.model_dir)
    probs = clf.predict_proba(list(x[1400:]))
    assert (probs.argmax(1) == y[1400:]).mean() >= 0.95  # no crop at 8x8: serving sees what validation saw


def test_metric_regexes_read_the_printed_lines(tmp_path, digits, capfd, caplog):
    import re

    x, y = digits
    files = {("train", "t.rec"): rec_bytes(x[:64], y[:64], tmp_path, "a.rec"),
             ("validation", "v.rec"): rec_bytes(x[64:96], y[64:96], tmp_path, "b.rec")}
    _, rc = train_job(ALGO, tmp_path / "job", hps(epochs=1, num_training_samples=64), {"train": REC, "validation": REC},
                      files)
    text = capfd.readouterr().out + caplog.text  # metric lines on stdout, the log through logging
    assert rc == 0
    for metric in load_algorithm(ALGO).metrics:
        assert re.search(metric.regex, text), metric.name
    assert re.search(r"Epoch\[0\] Train-accuracy=\d\.\d{6}\n", text)
    assert re.search(r"Epoch\[0\] Validation-top_k_accuracy_2=\d\.\d{6}\n", text)
    assert "SageMaker trains image-classification on GPU instances only" in text


def test_lst_and_image_files_train_and_their_errors(tmp_path, digits):
    x, y = digits
    train_files, train_lst = lst_files(x[:64], y[:64])
    val_files, val_lst = lst_files(x[64:96], y[64:96])
    files = {**{("train", k): v for k, v in train_files.items()},
             **{("validation", k): v for k, v in val_files.items()},
             ("train_lst", "train.lst"): train_lst.encode(), ("validation_lst", "val.lst"): val_lst.encode()}
    channels = {"train": IMG, "validation": IMG, "train_lst": IMG, "validation_lst": IMG}
    job, rc = train_job(ALGO, tmp_path / "a", hps(epochs=1, resize=8, num_training_samples=64), channels, files)
    assert rc == 0, job.failure
    job, rc = train_job(ALGO, tmp_path / "b", hps(epochs=1), channels, files)
    assert rc != 0 and job.failure.startswith(
        "ClientError: Hyperparameter resize is required with image files (channel 'train' is application/x-image)")
    broken = dict(files)
    broken[("train", "img/00003.jpg")] = b"garbage"
    job, rc = train_job(ALGO, tmp_path / "c", hps(epochs=1, resize=8), channels, broken)
    assert rc != 0 and "img/00003.jpg (listed on train.lst line 4): the image cannot be decoded" in job.failure
    bad_label = dict(files)
    bad_label[("train_lst", "train.lst")] = (train_lst + "99\t12\timg/00000.jpg\n").encode()
    job, rc = train_job(ALGO, tmp_path / "d", hps(epochs=1, resize=8), channels, bad_label)
    assert rc != 0 and "train.lst line 65: label 12 is not a class in 0..9 (num_classes=10)" in job.failure
    del files[("train_lst", "train.lst")]
    job, rc = train_job(ALGO, tmp_path / "e", hps(epochs=1, resize=8),
                        {k: v for k, v in channels.items() if k != "train_lst"}, files)
    assert rc != 0 and "the train_lst channel with a .lst file (index<TAB>label<TAB>path) is required" in job.failure


def test_model_channel_incremental_transfer_and_pretrained_errors(trained, tmp_path, digits):
    job, files = trained
    model_files = {("model", p.name): p.read_bytes() for p in job.paths.model_dir.iterdir()}
    channels = {"train": REC, "validation": REC, "model": {"ContentType": "application/x-sagemaker-model"}}
    one = hps(epochs=1)
    again, rc = train_job(ALGO, tmp_path / "inc", hps(epochs=1, learning_rate=0.0005), channels,
                          {**files, **model_files})
    assert rc == 0, again.failure
    meta = json.loads((again.paths.model_dir / META_FILE).read_text())
    assert meta["best_accuracy"] >= 0.9  # started from the trained network (from scratch, one epoch: < 0.5)
    import tarfile

    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:  # as SageMaker hands the model channel over
        for path in job.paths.model_dir.iterdir():
            tar.add(path, arcname=path.name)
    packed, rc = train_job(ALGO, tmp_path / "tar", hps(epochs=1, learning_rate=0.0005), channels,
                           {**files, ("model", "model.tar.gz"): (tmp_path / "model.tar.gz").read_bytes()})
    assert rc == 0 and json.loads((packed.paths.model_dir / META_FILE).read_text())["best_accuracy"] >= 0.9
    other, rc = train_job(ALGO, tmp_path / "mis", hps(epochs=1, num_classes=12), channels, {**files, **model_files})
    assert rc != 0 and other.failure.startswith(
        "ClientError: Channel 'model': the model was trained with num_classes=10 but this job has num_classes=12")
    # a torchvision-format state dict: every layer but the head loaded
    state = {k: v.contiguous() for k, v in resnet(20, 1000).state_dict().items()}
    save_file(state, str(tmp_path / "r20.safetensors"))
    torch.save(state, tmp_path / "r20.pth")
    for name in ("r20.safetensors", "r20.pth"):
        tl, rc = train_job(ALGO, tmp_path / f"job-{name}", one, channels,
                           {**files, ("model", name): (tmp_path / name).read_bytes()})
        assert rc == 0, tl.failure
    del state["layer1.0.conv1.weight"]
    save_file(state, str(tmp_path / "bad.safetensors"))
    bad, rc = train_job(ALGO, tmp_path / "bad", one, channels,
                        {**files, ("model", "bad.safetensors"): (tmp_path / "bad.safetensors").read_bytes()})
    assert rc != 0 and bad.failure.startswith("ClientError: Channel 'model': bad.safetensors: the state dict does not "
                                              "fit this network (missing keys: layer1.0.conv1.weight)")
    pre, rc = train_job(ALGO, tmp_path / "pre", hps(epochs=1, num_layers=18, use_pretrained_model=1),
                        {"train": REC, "validation": REC}, files)
    assert rc != 0 and pre.failure.startswith("ClientError: use_pretrained_model=1: no ImageNet weights for "
                                              "num_layers=18, and this image downloads nothing")
    cifar, rc = train_job(ALGO, tmp_path / "cifar", hps(epochs=1, use_pretrained_model=1),
                          {"train": REC, "validation": REC}, files)
    assert rc != 0 and "pretrained weights exist for num_layers 18, 34, 50, 101, 152 and 200 only" in cifar.failure


def test_serving_bodies(trained, digits):
    job, _ = trained
    x, _ = digits
    client = create_app(load_algorithm(ALGO), load_model(job.paths.model_dir), ServingEnv.from_env({})).test_client()
    clf = ImageClassifier.load(job.paths.model_dir)
    jpeg = encode_image(x[1500], "JPEG")
    expected = clf.predict_proba([decode_image(jpeg, "x")])[0]
    for content_type in ("image/jpeg", "application/x-image"):
        r = client.post("/invocations", data=jpeg, content_type=content_type)
        assert r.status_code == 200 and r.mimetype == "application/json"
        body = json.loads(r.data)
        assert isinstance(body, list) and len(body) == 10
        np.testing.assert_allclose(body, expected, atol=1e-6)
    png = encode_image(x[1500], "PNG")
    r = client.post("/invocations", data=png, content_type="image/png", headers={"Accept": "application/jsonlines"})
    assert r.status_code == 200 and r.data.endswith(b"}\n") and r.data.count(b"\n") == 1
    assert list(json.loads(r.data)) == ["prediction"] and len(json.loads(r.data)["prediction"]) == 10
    assert_image_request_errors(client, jpeg, ("text/csv",), content_type="image/jpeg")


def test_multi_label_weighted_augmented_with_checkpoints_and_early_stopping(tmp_path, digits):
    from smalgos.vision.recordio_images import Header, pack, write_rec

    x, y = digits
    multi = lambda d: [float(d % 2 == 0), float(d > 4), float(d == 0)]  # noqa: E731
    for name, (lo, hi) in (("a.rec", (0, 96)), ("b.rec", (96, 128))):
        write_rec(tmp_path / name, [pack(Header(0, multi(int(y[i])), i), encode_image(x[i], "JPEG"))
                                    for i in range(lo, hi)])
    files = {("train", "t.rec"): (tmp_path / "a.rec").read_bytes(),
             ("validation", "v.rec"): (tmp_path / "b.rec").read_bytes()}
    job, rc = train_job(ALGO, tmp_path / "job", hps(
        num_classes=3, num_training_samples=96, multi_label=1, use_weighted_loss=1, top_k=2, epochs=4,
        augmentation_type="crop_color_transform", resize=10, checkpoint_frequency=2, early_stopping=1,
        early_stopping_min_epochs=1, early_stopping_patience=1, early_stopping_tolerance=1.0),
        {"train": REC, "validation": REC}, files)
    assert rc == 0, job.failure
    names = sorted(p.name for p in job.paths.model_dir.iterdir())
    meta = json.loads((job.paths.model_dir / META_FILE).read_text())
    # tolerance 1.0: no epoch can improve by 100 %, so patience 1 stops after the second epoch
    assert meta["epochs_trained"] == 2 and "image-classification-0002.safetensors" in names
    scores = ImageClassifier.load(job.paths.model_dir).predict_proba([x[0], x[1]])
    assert scores.shape == (2, 3) and ((scores >= 0) & (scores <= 1)).all()
    one_label = {("train", "t.rec"): rec_bytes(x[:8], y[:8], tmp_path, "c.rec"), ("validation", "v.rec"):
                 files[("validation", "v.rec")]}
    bad, rc = train_job(ALGO, tmp_path / "bad", hps(num_classes=3, multi_label=1, epochs=1),
                        {"train": REC, "validation": REC}, one_label)
    assert rc != 0 and "train/t.rec: record 0 (id 0): 1 label(s), but multi_label=1 needs one 0/1 value per class" \
        in bad.failure
    with pytest.raises(ClientError, match="use_weighted_loss: 1 needs multi_label=1"):
        load_algorithm(ALGO).hyperparameters.parse({"num_classes": "3", "num_training_samples": "1",
                                                    "use_weighted_loss": "1"})


def test_pipe_mode_reads_the_rec_stream(tmp_path, digits):
    x, y = digits
    data = rec_bytes(x[:64], y[:64], tmp_path, "a.rec")
    pipe = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe"}
    job, rc = train_job(ALGO, tmp_path / "job", hps(epochs=2, num_training_samples=64),
                        {"train": pipe, "validation": REC},
                        {("validation", "v.rec"): rec_bytes(x[64:96], y[64:96], tmp_path, "b.rec")},
                        pipe=("train", data, 2))
    assert rc == 0, job.failure
    assert json.loads((job.paths.model_dir / META_FILE).read_text())["epochs_trained"] == 2


def test_augmented_manifest_in_pipe_mode(tmp_path, digits):
    from smalgos.formats.recordio import frame

    x, y = digits
    stream = b"".join(frame(encode_image(x[i], "JPEG")) + frame(f"{y[i]}".encode()) for i in range(64))
    pipe = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO"}
    val = {("validation", "v.rec"): rec_bytes(x[64:96], y[64:96], tmp_path, "b.rec")}
    job, rc = train_job(ALGO, tmp_path / "job", hps(epochs=1, num_training_samples=64),
                        {"train": pipe, "validation": REC}, val, pipe=("train", stream, 1))
    assert rc == 0, job.failure
    # multi-label class ids (Ground Truth's form)
    ids = b"".join(frame(encode_image(x[i], "JPEG")) + frame(b"[0, 2]" if i % 2 else b"[1]") for i in range(64))
    multi = {**pipe, "ContentType": "application/x-recordio; label-format=class-id"}
    three = hps(epochs=1, num_classes=3, multi_label=1, num_training_samples=64)
    from smalgos.vision.recordio_images import Header, pack, write_rec

    write_rec(tmp_path / "m.rec", [pack(Header(0, [1, 0, 1], i), encode_image(x[i], "JPEG")) for i in range(8)])
    val3 = {("validation", "v.rec"): (tmp_path / "m.rec").read_bytes()}
    good, rc = train_job(ALGO, tmp_path / "good", three, {"train": multi, "validation": REC}, val3,
                         pipe=("train", ids, 1))
    assert rc == 0, good.failure
    wrong = ids + frame(encode_image(x[0], "JPEG")) + frame(b"[7]")
    bad, rc = train_job(ALGO, tmp_path / "bad", three, {"train": multi, "validation": REC}, val3,
                        pipe=("train", wrong, 1))
    assert rc != 0 and "class id 7 is not in 0..2 (label-format=class-id)" in bad.failure, bad.failure
