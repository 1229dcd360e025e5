"""Object Detection through the /opt/ml contract (tests/unit/algo_helpers.train_job) on generated
shape scenes (object_detection/shapes.py): the declaration, File mode images with AWS's JSON
annotations and RecordIO records, data errors, the log lines, the model channel and the exact
serving bodies.

Contract jobs train AWS's network (SSD on a full VGG-16) at image_shape 64 on 8 images for one
epoch: they check the contract, not quality (the quality test trains a narrower SSD longer)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from algo_helpers import assert_image_request_errors, train_job
from object_detection.shapes import annotation, job_files, make_rec, packed, scene
from smalgos.declaration import load_algorithm
from smalgos.environment import ServingEnv
from smalgos.errors import ClientError
from smalgos.serving.app import create_app
from smalgos.vision.recordio_images import Header, decode_image, encode_image, pack, write_rec
from smalgos.vision.vgg import vgg16_features
from smalgos_object_detection.model import META_FILE, MODEL_FILE, ObjectDetector
from smalgos_object_detection.serve import load_model

ALGO = "object-detection"
IMG = {"ContentType": "image/jpeg"}
ANN = {"ContentType": "application/json"}
REC = {"ContentType": "application/x-recordio"}
CHANNELS = {"train": IMG, "validation": IMG, "train_annotation": ANN, "validation_annotation": ANN}
MODEL = {"ContentType": "application/x-sagemaker-model"}


def hps(**kw):
    base = {"num_classes": "3", "num_training_samples": "8", "image_shape": "64", "epochs": "1",
            "mini_batch_size": "4", "use_pretrained_model": "0"}
    return {**base, **{k: str(v) for k, v in kw.items()}}


@pytest.fixture(scope="module")
def files():
    return {**job_files(8, "train", seed=1), **job_files(4, "validation", seed=2)}


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    job, rc = train_job(ALGO, tmp_path_factory.mktemp("od") / "job", hps(), CHANNELS, files)
    assert rc == 0, job.failure
    return job


def test_declaration_defaults_and_errors():
    algo = load_algorithm(ALGO)
    hp = algo.hyperparameters
    v = hp.parse({"num_classes": "3", "num_training_samples": "10"})
    assert (v["base_network"], v["epochs"], v["image_shape"], v["mini_batch_size"], v["learning_rate"],
            v["optimizer"], v["use_pretrained_model"], v["label_width"]) == \
        ("vgg-16", 30, 300, 32, 0.001, "sgd", 1, 350)
    assert (v["nms_threshold"], v["overlap_threshold"], v["momentum"], v["weight_decay"], v["early_stopping"],
            v["early_stopping_min_epochs"], v["early_stopping_patience"], v["lr_scheduler_factor"]) == \
        (0.45, 0.5, 0.9, 0.0005, False, 10, 5, 0.1)
    for bad, text in [({"image_shape": "32"}, "image_shape: 32 is less than 64"),
                      ({"freeze_layer_pattern": "(conv"}, "freeze_layer_pattern: '(conv' is not a regular"),
                      ({"base_network": "resnet-18"}, "base_network"), ({"optimizer": "nag"}, "optimizer"),
                      ({"lr_scheduler_step": "a,b"}, "lr_scheduler_step"), ({"nms_threshold": "0"}, "nms_threshold")]:
        with pytest.raises(ClientError, match=re.escape(text)):
            hp.parse({"num_classes": "3", "num_training_samples": "10", **bad})
    with pytest.raises(ClientError, match="num_classes"):
        hp.parse({"num_training_samples": "10"})
    assert hp.parse({"num_classes": "3", "num_training_samples": "1", "_kvstore": "device"})  # hidden keys
    channels = {c.name: c for c in algo.channels}
    assert {"train", "validation", "train_annotation", "validation_annotation", "model"} == set(channels)
    assert {"application/x-recordio", "image/jpeg", "image/png", "application/x-image"} <= \
        set(channels["train"].content_types)
    assert [m.name for m in algo.metrics if m.tunable] == ["validation:mAP"]


def test_training_artifact(trained):
    model_dir = trained.paths.model_dir
    assert {p.name for p in model_dir.iterdir()} == {MODEL_FILE, META_FILE}
    meta = json.loads((model_dir / META_FILE).read_text())
    assert meta["format"] == "smalgos-object-detection"
    assert meta["architecture"]["base_network"] == "vgg-16" and meta["image_shape"] == 64
    assert meta["num_classes"] == 3 and meta["epochs_trained"] == 1 and len(meta["validation_maps"]) == 1
    state = load_file(str(model_dir / MODEL_FILE))
    assert "backbone.features.0.weight" in state and "backbone.norm4.scale_weight" in state
    assert all(v.dtype == torch.float32 for v in state.values())
    det = ObjectDetector.load(model_dir)
    assert det.image_shape == 64 and det.net_.feature_shapes == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]


def test_recordio_log_lines_match_aws_and_the_regexes(tmp_path, capfd, caplog):
    for name, n, seed in (("train", 8, 3), ("validation", 4, 4)):
        make_rec(tmp_path / f"{name}.rec", n, seed)
    rec_files = {(name, f"{name}.rec"): (tmp_path / f"{name}.rec").read_bytes() for name in ("train", "validation")}
    job, rc = train_job(ALGO, tmp_path / "job", hps(epochs=2, optimizer="adam"), {"train": REC, "validation": REC},
                        rec_files)
    assert rc == 0, job.failure
    out = "".join(capfd.readouterr()) + caplog.text
    for epoch in (0, 1):
        head = rf"#quality_metric: host=algo-1, epoch={epoch}"
        assert re.search(head + r", batch=2 train cross_entropy <loss>=\(\d+\.\d{4}\)", out)
        assert re.search(head + r", batch=2 train smooth_l1 <loss>=\(\d+\.\d{4}\)", out)
        assert re.search(head + r", validation mAP <score>=\([01]\.\d{4}\)", out)
    assert "#progress_metric: host=algo-1, completed 50 % of epochs" in out
    assert "#progress_metric: host=algo-1, completed 100 % of epochs" in out
    assert re.search(r"#throughput_metric: host=algo-1, train throughput=\S+ records/second", out)
    assert "Serializing model to " in out
    for metric in load_algorithm(ALGO).metrics:
        assert re.search(metric.regex, out), metric.name
    maps = [float(m) for m in re.findall(r"validation mAP <score>=\((\S+)\)", out)]
    assert len(maps) == 2 and json.loads((job.paths.model_dir / META_FILE).read_text())["validation_maps"] == \
        pytest.approx(maps, abs=1e-4)


def _doc(files, name):
    return json.loads(files[("train_annotation", name)])


def _with(files, name, **changes):
    doc = {**_doc(files, name), **changes}
    return {**files, ("train_annotation", name): json.dumps(doc).encode()}


def test_data_errors_name_the_file_and_field(tmp_path, files):
    def fails(changed, text, channels=CHANNELS):
        job, rc = train_job(ALGO, tmp_path / f"j{len(list(tmp_path.iterdir()))}", hps(), channels, changed)
        assert rc != 0 and text in job.failure, job.failure

    box = _doc(files, "img002.json")["annotations"][0]
    fails({**files, ("train_annotation", "img001.json"): b'{"file": '},
          "Channel 'train_annotation': img001.json: not valid JSON")
    fails(_with(files, "img002.json", annotations=[{**box, "class_id": 5}]),
          "Channel 'train_annotation': img002.json: field 'annotations[0].class_id' is 5, not a class in 0..2 "
          "(num_classes=3)")
    fails(_with(files, "img002.json", annotations=[{**box, "width": -3}]),
          "Channel 'train_annotation': img002.json: field 'annotations[0]': width -3 and height")
    fails(_with(files, "img002.json", annotations=[{**box, "top": "x"}]),
          "Channel 'train_annotation': img002.json: field 'annotations[0].top' is 'x', not a number")
    fails(_with(files, "img003.json", image_size=[]),
          "Channel 'train_annotation': img003.json: field 'image_size' must be a list of one object")
    fails(_with(files, "img003.json", image_size=[{"width": 100, "height": 96, "depth": 3}]),
          "Channel 'train_annotation': img003.json: field 'image_size' says 100x96 but the image img003.jpg is "
          "96x96 pixels")
    fails(_with(files, "img004.json", file="nope.jpg"),
          "Channel 'train_annotation': img004.json: field 'file': image 'nope.jpg' is not in the 'train' channel")
    fails(_with(files, "img004.json", file="../validation/img000.jpg"), "leads outside the 'train' channel")
    fails({**files, ("train", "img005.jpg"): b"garbage"}, "Channel 'train': img005.jpg: the image cannot be decoded")
    fails({k: v for k, v in files.items() if k[0] != "validation_annotation"},
          "Channel 'validation' holds image files (image/jpeg): the validation_annotation channel with one JSON "
          "annotation per image is required", {k: v for k, v in CHANNELS.items() if k != "validation_annotation"})
    many = _with(files, "img000.json", annotations=[box] * 70)
    fails(many, "Channel 'train_annotation': img000.json: 70 objects need 352 label values, more than "
                "label_width=350")
    # RecordIO: a packed label with a class out of range, named by file, record and id
    rng = np.random.default_rng(0)
    pixels, objects = scene(rng)
    bad = objects.copy()
    bad[0, 0] = 7
    payloads = [pack(Header(0, packed(o), i), encode_image(pixels)) for i, o in enumerate((objects, bad))]
    write_rec(tmp_path / "bad.rec", payloads)
    rec = {("train", "train.rec"): (tmp_path / "bad.rec").read_bytes(), ("validation", "v.rec"):
           (tmp_path / "bad.rec").read_bytes()}
    fails(rec, "train.rec: record 1 (id 1) label: object 0: class_id 7 is not in 0..2 (num_classes=3)",
          {"train": REC, "validation": REC})


def test_model_channel_incremental_transfer_and_pretrained(trained, tmp_path, files):
    model_files = {("model", p.name): p.read_bytes() for p in trained.paths.model_dir.iterdir()}
    channels = {**CHANNELS, "model": MODEL}
    again, rc = train_job(ALGO, tmp_path / "inc", hps(), channels, {**files, **model_files})
    assert rc == 0, again.failure
    for changed, text in [({"num_classes": 4}, "the model was trained with num_classes=3 but this job has "
                                               "num_classes=4; incremental training needs the same value"),
                          ({"base_network": "resnet-50"}, "base_network=vgg-16 but this job has "
                                                         "base_network=resnet-50")]:
        other, rc = train_job(ALGO, tmp_path / f"mis{len(changed)}{rc}{len(text)}", hps(**changed), channels,
                              {**files, **model_files})
        assert rc != 0 and text in other.failure, other.failure
    # a torchvision-format vgg16 state dict: its features load into the base network, classifier left out
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.manual_seed(5)
    for k in state:
        state[k] = torch.randn_like(state[k]) * 0.01
    save_file(state, str(tmp_path / "vgg16.safetensors"))
    transfer, rc = train_job(ALGO, tmp_path / "tv", hps(), channels,
                             {**files, ("model", "vgg16.safetensors"): (tmp_path / "vgg16.safetensors").read_bytes()})
    assert rc == 0, transfer.failure
    # use_pretrained_model=1 (the default) without weights: what to give, and where
    pre, rc = train_job(ALGO, tmp_path / "pre", {k: v for k, v in hps().items() if k != "use_pretrained_model"},
                        CHANNELS, files)
    assert rc != 0 and "use_pretrained_model=1: no ImageNet weights for base_network=vgg-16" in pre.failure
    assert "/opt/smalgos/pretrained/object-detection/vgg16.safetensors" in pre.failure
    mx, rc = train_job(ALGO, tmp_path / "mx", hps(), channels, {**files, ("model", "model_algo_1-0000.params"): b"x",
                                                               ("model", "model_algo_1-symbol.json"): b"{}"})
    assert rc != 0 and "AWS's MXNet artifacts" in mx.failure


def test_serving_bodies(trained):
    algo = load_algorithm(ALGO)
    client = create_app(algo, load_model(trained.paths.model_dir), ServingEnv.from_env({})).test_client()
    det = ObjectDetector.load(trained.paths.model_dir)
    pixels, _ = scene(np.random.default_rng(9), 80)
    image = np.concatenate([pixels, pixels[:, :40]], 1)  # 80 high, 120 wide
    jpeg = encode_image(image, "JPEG")
    expected = det.predict([decode_image(jpeg, "x")])[0]
    assert len(expected) > 0 and (np.diff(expected[:, 1]) <= 0).all()  # best first
    for ctype, body in (("image/jpeg", jpeg), ("application/x-image", jpeg)):
        r = client.post("/invocations", data=body, content_type=ctype)
        assert r.status_code == 200 and r.mimetype == "application/json"
        answer = json.loads(r.data)
        assert list(answer) == ["prediction"]
        assert answer["prediction"] == [[float(v) for v in row] for row in expected.astype(np.float64)]
    png = encode_image(image, "PNG")
    rows = json.loads(client.post("/invocations", data=png, content_type="image/png").data)["prediction"]
    assert all(len(row) == 6 and row[0] in (0.0, 1.0, 2.0) and 0 <= row[1] <= 1 for row in rows)
    assert all(0 <= v <= 1 for row in rows for v in row[2:])
    r = client.post("/invocations", data=jpeg, content_type="image/jpeg",
                    headers={"Accept": "application/json;annotation=1"})
    assert r.status_code == 200
    ann = json.loads(r.data)
    assert ann["image_size"] == [{"width": 120, "height": 80, "depth": 3}]
    first, top = ann["annotations"][0], expected[0]
    assert first["class_id"] == int(top[0]) and first["score"] == pytest.approx(float(top[1]))
    assert (first["left"], first["top"]) == pytest.approx((top[2] * 120, top[3] * 80), abs=1e-3)
    assert (first["width"], first["height"]) == pytest.approx(((top[4] - top[2]) * 120, (top[5] - top[3]) * 80),
                                                              abs=1e-3)
    assert_image_request_errors(client, jpeg, ("text/csv", "application/json;annotation=2"))


def test_annotation_json_matches_records():
    """A scene's JSON annotation and its packed RecordIO label describe the same boxes."""
    from smalgos_object_detection.data import annotation_objects, parse_label

    pixels, objects = scene(np.random.default_rng(4))
    from_json = annotation_objects(annotation(objects, "a.jpg"), "a.json", 3)
    from_rec = parse_label(np.array(packed(objects)), "rec", 3, 350)
    np.testing.assert_allclose(from_json, from_rec, atol=1e-3)


def feature_maps(net, images):
    with torch.no_grad():
        maps = net.backbone(images)
        for extra in net.extras:
            maps.append(extra(maps[-1]))
    return maps


def test_plain_convolutions_of_a_network_from_scratch_start_at_unit_variance(tmp_path):
    """From scratch, SSD's convolutions without batch norm (VGG-16, fc6 / fc7, the extras) are scaled
    to unit output variance on the first training images before the first step: every feature map
    then varies between images (with He's initialisation alone the fc7 map varies ~1e-3 and the last
    ~3e-6, and the detector learns "all background"). Given an initial state, fit leaves it as given."""
    from smalgos_object_detection.data import from_records

    make_rec(tmp_path / "train.rec", 12, seed=1)
    train = from_records("train", [tmp_path / "train.rec"], 3, 350, 64)
    images = torch.stack([train.with_training(False)[i][0] for i in range(8, 12)])  # not the scaling's images
    det = ObjectDetector(num_classes=3, num_training_samples=12, image_shape=64, use_pretrained_model=0, width=8,
                         epochs=1, mini_batch_size=12, learning_rate=1e-9)  # one step that moves nothing
    det._device = torch.device("cpu")
    net = det.new_network()
    faded = [m.std(0).mean().item() for m in feature_maps(net, images)]
    assert faded[-1] < 1e-4
    det._scale_plain_convolutions(net, train)
    spread = [m.std(0).mean().item() for m in feature_maps(net, images)]
    assert min(spread[1:]) > 0.05, spread  # between images, on every map after conv4_3's (L2-normalised)

    base = {k: v.clone() for k, v in det.new_network().backbone.features.state_dict().items()}
    det.fit(train, initial_state=(base, "model", "backbone.features."))  # a pretrained base: not rescaled
    scratch_extra = det.new_network().extras[0][0].weight
    torch.testing.assert_close(det.net_.extras[0][0].weight, scratch_extra, rtol=0, atol=1e-6)
    for k, v in det.net_.backbone.features.state_dict().items():
        torch.testing.assert_close(v, base[k], rtol=0, atol=1e-6)


class SmallBase(torch.nn.Module):
    """A five-convolution stand-in for the base network (strides 8 and 16, the channels of a
    width-8 VGG base): SSD's own VGG-16 and ResNet-50 take far longer than a unit test to learn on a
    CPU (VGG-16 from scratch: mAP about 0.25 after 60 epochs here; 0.76 after 250 epochs from a base
    pretrained on a related task, bench/bench_object_detection.py), and no pretrained weights ship."""

    def __init__(self):
        super().__init__()

        def conv(cin, cout, stride):
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, stride, 1), torch.nn.ReLU(inplace=True))

        self.first = torch.nn.Sequential(conv(3, 16, 2), conv(16, 32, 2), conv(32, 64, 2), conv(64, 64, 1))
        self.second = conv(64, 128, 2)
        self.channels = (64, 128)

    def forward(self, x):
        first = self.first(x)
        return [first, self.second(first)]


class SmallDetector(ObjectDetector):
    def new_network(self):
        net = super().new_network()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            net.backbone = SmallBase()
        return net


def test_quality_ssd_learns_the_shapes(tmp_path):
    """SSD's heads, anchor matching, hard negative mining, augmentation, NMS, the mAP and the best
    epoch, through ObjectDetector.fit on generated scenes (3 classes, 1-2 objects each) at
    image_shape 64: held-out mAP@0.5 reaches 0.7 (0.83 seen; about 35 s on one core)."""
    from smalgos_object_detection.data import from_records

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this small network's steps are faster on one thread
    try:
        make_rec(tmp_path / "train.rec", 300, seed=1)
        make_rec(tmp_path / "validation.rec", 60, seed=2)
        train = from_records("train", [tmp_path / "train.rec"], 3, 350, 64)
        held = from_records("validation", [tmp_path / "validation.rec"], 3, 350, 64)
        det = SmallDetector(num_classes=3, num_training_samples=300, image_shape=64, epochs=35, mini_batch_size=16,
                            optimizer="adam", use_pretrained_model=0, width=8)
        det.fit(train, held)
        assert det.best_map_ >= 0.7, det.mean_aps_
        assert det.mean_ap(det.net_, held) == pytest.approx(det.best_map_, abs=1e-6)  # the best epoch is kept
        pixels, objects = scene(np.random.default_rng(11), 96)
        found = det.predict([pixels])[0]
        assert len(found) and int(found[0, 0]) in set(objects[:, 0].astype(int))  # the best one is in the scene
    finally:
        torch.set_num_threads(threads)
