"""The images of a channel with their boxes, as a torch Dataset:
- RecordIO (`application/x-recordio`): `.rec` files of records with packed labels (im2rec
  `--pack-label`), or in Pipe mode the records of the channel's first FIFO, held in memory and
  reused every epoch;
- image files (`image/jpeg`, `image/png`, `application/x-image`; File mode) with one JSON
  annotation per image in `<channel>_annotation` (AWS's format, spec §8.2):
      {"file": "dir/a.jpg", "image_size": [{"width": 500, "height": 400, "depth": 3}],
       "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}, ...],
       "categories": [{"class_id": 0, "name": "dog"}, ...]}
  `file` is relative to the image channel's folder; pixel boxes, origin top-left; `categories`
  optional and not read;
- an augmented manifest in Pipe mode (RecordWrapperType RecordIO, AttributeNames: the image's
  source-ref, then the bounding-box attribute, `{"image_size": [...], "annotations": [...]}`).

A record's label (im2rec `--pack-label`): [header width (2), object width (5), cls, xmin, ymin,
xmax, ymax, cls, ...], corners normalised to [0, 1], class ids from 0; rows of class -1 are padding.
Labels are checked once, when the set is built: a ClientError names the record or file and the field.

Training augmentation (`Augment`), as AWS's SSD: a random crop (0.3–1 of each side, kept boxes
those whose centre it holds, clipped), a horizontal flip half the time (boxes flipped) and random
hue, saturation and lightness (smalgos.vision.transforms.random_color); then the image scaled to
image_shape × image_shape and normalised with the ImageNet mean and deviation, in the DataLoader's
worker processes (random draws from torch's generator, which the DataLoader seeds in each worker).
Evaluation and inference: scaled and normalised only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from smalgos.errors import ClientError
from smalgos.vision import transforms
from smalgos.vision.channels import file_in_channel, manifest_pairs, recordio_channel
from smalgos.vision.recordio_images import Header, RecordFile, RecordList, decode_image, pack, unpack

OBJECT_WIDTH = 5
CROP_LOW = 0.3


def parse_label(values: np.ndarray, where: str, num_classes: int, label_width: int) -> np.ndarray:
    """(objects, 5) float32 [cls, xmin, ymin, xmax, ymax] of a packed label, checked."""
    values = np.asarray(values, np.float32).ravel()
    if values.size > label_width:
        raise ClientError(f"{where}: {values.size} label values, more than label_width={label_width}")
    if values.size < 2:
        raise ClientError(f"{where}: the label has no header (header width, object width)")
    head, width = int(values[0]), int(values[1])
    if head < 2 or head > values.size:
        raise ClientError(f"{where}: header width {values[0]:g} is not 2 or more")
    if width < OBJECT_WIDTH:
        raise ClientError(f"{where}: object width {values[1]:g} is less than 5 (cls, xmin, ymin, xmax, ymax)")
    body = values[head:]
    if body.size % width:
        raise ClientError(f"{where}: {body.size} object values are not a multiple of the object width {width}")
    objects = body.reshape(-1, width)[:, :OBJECT_WIDTH]
    objects = objects[objects[:, 0] >= 0]
    return check_objects(objects, where, num_classes)


def check_objects(objects: np.ndarray, where: str, num_classes: int) -> np.ndarray:
    for i, (cls, x0, y0, x1, y1) in enumerate(objects):
        name = f"{where}: object {i}"
        if not float(cls).is_integer() or not 0 <= cls < num_classes:
            raise ClientError(f"{name}: class_id {cls:g} is not in 0..{num_classes - 1} (num_classes={num_classes})")
        if not all(np.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in (x0, y0, x1, y1)):
            raise ClientError(f"{name}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is not within [0, 1] "
                              "(corners normalised by the image's width and height)")
        if x1 <= x0 or y1 <= y0:
            raise ClientError(f"{name}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has xmax <= xmin or ymax <= ymin")
    return np.clip(objects.astype(np.float32), [0, 0, 0, 0, 0], [num_classes, 1, 1, 1, 1])


def prepare(pixels: np.ndarray, size: int) -> torch.Tensor:
    return transforms.normalise(transforms.resize_to(transforms.to_tensor(pixels), size, size))


def augment(pixels: np.ndarray, boxes: np.ndarray, size: int):
    """(image tensor, boxes) after random crop, flip and colour (see the module docstring), drawn
    from torch's generator (which the DataLoader seeds in each of its workers)."""
    t = transforms.to_tensor(pixels)
    h, w = t.shape[1:]
    boxes = boxes.copy()
    if float(torch.rand(())) < 0.5:
        cw, ch = (CROP_LOW + (1 - CROP_LOW) * torch.rand(2)).tolist()
        x0, y0 = float(torch.rand(())) * (1 - cw), float(torch.rand(())) * (1 - ch)
        centre = (boxes[:, 1:3] + boxes[:, 3:5]) / 2
        inside = (centre[:, 0] > x0) & (centre[:, 0] < x0 + cw) & (centre[:, 1] > y0) & (centre[:, 1] < y0 + ch)
        if inside.any():
            kept = boxes[inside]
            kept[:, [1, 3]] = ((kept[:, [1, 3]] - x0) / cw).clip(0, 1)
            kept[:, [2, 4]] = ((kept[:, [2, 4]] - y0) / ch).clip(0, 1)
            boxes = kept
            t = t[:, int(y0 * h):max(int(y0 * h) + 1, int((y0 + ch) * h)),
                  int(x0 * w):max(int(x0 * w) + 1, int((x0 + cw) * w))]
    if float(torch.rand(())) < 0.5:
        t = t.flip(2)
        boxes[:, [1, 3]] = 1 - boxes[:, [3, 1]]
    t = transforms.resize_to(t, size, size)
    if t.shape[0] == 3:
        t = transforms.random_color(t)
    return transforms.normalise(t), boxes


class DetectionSet(torch.utils.data.Dataset):
    """(image tensor, (objects, 5) label tensor) pairs; `train=True` augments. `records[f]` is a
    RecordFile / RecordList (item (f, r, where): its record r) or an image file's Path (r unused)."""

    def __init__(self, records: list, items: list[tuple[int, int, str]], labels: list[np.ndarray],
                 image_shape: int, train: bool = False):
        self.records, self.items, self.labels = records, items, labels
        self.image_shape, self.train = int(image_shape), train

    def __len__(self) -> int:
        return len(self.items)

    def part(self, rank: int, size: int) -> "DetectionSet":
        """Host `rank`'s share (every size-th image from the rank-th) of a set every host holds."""
        keep = slice(rank, None, size)
        return DetectionSet(self.records, self.items[keep], self.labels[keep], self.image_shape, self.train)

    def with_training(self, train: bool) -> "DetectionSet":
        return DetectionSet(self.records, self.items, self.labels, self.image_shape, train)

    def pixels(self, i: int) -> np.ndarray:
        f, r, where = self.items[i]
        source = self.records[f]
        if not isinstance(source, Path):
            return decode_image(unpack(source.payload(r), where)[1], where, 3)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise ClientError(f"{where}: cannot read the image ({exc.strerror})") from None
        return decode_image(data, where, 3)

    def __getitem__(self, i: int):
        try:
            pixels = self.pixels(i)
        except ClientError as exc:
            return exc
        boxes = self.labels[i]
        if self.train:
            image, boxes = augment(pixels, boxes, self.image_shape)
        else:
            image = prepare(pixels, self.image_shape)
        return image, torch.from_numpy(np.ascontiguousarray(boxes, np.float32)).reshape(-1, OBJECT_WIDTH)


def collate(samples):
    """(images, labels padded with class -1 to the batch's most objects), or the first ClientError."""
    for s in samples:
        if isinstance(s, ClientError):
            return s
    images, labels = zip(*samples)
    most = max(1, max(len(lb) for lb in labels))
    padded = torch.full((len(labels), most, OBJECT_WIDTH), -1.0)
    for i, lb in enumerate(labels):
        padded[i, :len(lb)] = lb
    return torch.stack(images), padded


def from_records(name: str, files: list, num_classes: int, label_width: int, image_shape: int) -> DetectionSet:
    """Every record of every `.rec` file (paths, or RecordLists read from a Pipe-mode stream)."""
    records, items, labels = [], [], []
    for f, path in enumerate(files):
        rec = RecordFile(path, f"Channel {name!r}: {path}") if isinstance(path, Path) else path
        records.append(rec)
        for r in range(len(rec)):
            header = rec.header(r, f"{rec.source}: record {r}")
            where = f"{rec.source}: record {r} (id {header.id})"
            labels.append(parse_label(header.labels, where + " label", num_classes, label_width))
            items.append((f, r, where))
    if not items:
        raise ClientError(f"Channel {name!r}: the .rec file(s) hold no records")
    return DetectionSet(records, items, labels, image_shape)


# -- AWS's JSON annotations ------------------------------------------------------------------------

def _number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ClientError(f"{where}: field {field!r} is {value!r}, not a number")
    return float(value)


def image_size_field(doc: dict, where: str) -> tuple[float, float]:
    """(width, height) of an annotation's `image_size` ([{"width", "height", "depth"}])."""
    sizes = doc.get("image_size")
    if not isinstance(sizes, list) or len(sizes) != 1 or not isinstance(sizes[0], dict):
        raise ClientError(f"{where}: field 'image_size' must be a list of one object "
                          '[{"width": W, "height": H, "depth": 3}]')
    size = sizes[0]
    width, height = (_number(size.get(k), where, f"image_size.{k}") for k in ("width", "height"))
    if width <= 0 or height <= 0:
        raise ClientError(f"{where}: field 'image_size' is {width:g}x{height:g}; width and height must be positive")
    if "depth" in size and size["depth"] != 3:
        raise ClientError(f"{where}: field 'image_size.depth' is {size['depth']!r}; only 3-channel images are read")
    return width, height


def annotation_objects(doc, where: str, num_classes: int) -> np.ndarray:
    """(objects, 5) [cls, xmin, ymin, xmax, ymax] of one annotation object (pixel boxes → corners
    normalised by `image_size`; parts outside the image clipped), every field checked."""
    if not isinstance(doc, dict):
        raise ClientError(f"{where}: expected a JSON object with the fields image_size and annotations")
    width, height = image_size_field(doc, where)
    boxes = doc.get("annotations")
    if not isinstance(boxes, list):
        raise ClientError(f"{where}: field 'annotations' must be a list of "
                          '{"class_id", "left", "top", "width", "height"} objects')
    objects = []
    for i, box in enumerate(boxes):
        name = f"annotations[{i}]"
        if not isinstance(box, dict):
            raise ClientError(f"{where}: field {name!r} is not an object")
        cls, left, top, w, h = (_number(box.get(k), where, f"{name}.{k}")
                                for k in ("class_id", "left", "top", "width", "height"))
        if not cls.is_integer() or not 0 <= cls < num_classes:
            raise ClientError(f"{where}: field '{name}.class_id' is {cls:g}, not a class in 0..{num_classes - 1} "
                              f"(num_classes={num_classes})")
        if w <= 0 or h <= 0:
            raise ClientError(f"{where}: field {name!r}: width {w:g} and height {h:g} must be positive")
        x0, y0, x1, y1 = max(left, 0) / width, max(top, 0) / height, min(left + w, width) / width, \
            min(top + h, height) / height
        if x1 <= x0 or y1 <= y0:
            raise ClientError(f"{where}: field {name!r}: the box (left {left:g}, top {top:g}, {w:g}x{h:g}) lies "
                              f"outside the {width:g}x{height:g} image")
        objects.append((cls, x0, y0, x1, y1))
    return np.asarray(objects, np.float32).reshape(-1, OBJECT_WIDTH)


def read_annotation(path: Path, where: str):
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientError(f"{where}: not valid JSON ({exc})") from None


def _check_width(objects: np.ndarray, where: str, label_width: int) -> None:
    if 2 + OBJECT_WIDTH * len(objects) > label_width:
        raise ClientError(f"{where}: {len(objects)} objects need {2 + OBJECT_WIDTH * len(objects)} label values, "
                          f"more than label_width={label_width}")


def from_annotations(name: str, root: Path, annotation_root: Path, files: list[Path], num_classes: int,
                     label_width: int, image_shape: int) -> DetectionSet:
    """The images that the JSON files of `<name>_annotation` name (field `file`), with their boxes."""
    from PIL import Image, UnidentifiedImageError

    records, items, labels = [], [], []
    for path in sorted(f for f in files if f.suffix.lower() == ".json"):
        where = f"Channel '{name}_annotation': {path.relative_to(annotation_root)}"
        doc = read_annotation(path, where)
        objects = annotation_objects(doc, where, num_classes)
        _check_width(objects, where, label_width)
        if not isinstance(doc.get("file"), str) or not doc["file"]:
            raise ClientError(f"{where}: field 'file' (the image's path in the {name!r} channel) is missing")
        image = file_in_channel(root, doc["file"], name, f"{where}: field 'file'", "image")
        try:
            with Image.open(image) as img:
                actual = img.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ClientError(f"Channel {name!r}: {doc['file']}: the image cannot be decoded "
                              f"({type(exc).__name__}: {exc})") from None
        declared = image_size_field(doc, where)
        if tuple(map(float, actual)) != declared:
            raise ClientError(f"{where}: field 'image_size' says {declared[0]:g}x{declared[1]:g} but the image "
                              f"{doc['file']} is {actual[0]}x{actual[1]} pixels")
        records.append(image)
        items.append((len(records) - 1, -1, f"Channel {name!r}: {doc['file']}"))
        labels.append(check_objects(objects, where, num_classes))
    if not items:
        raise ClientError(f"Channel '{name}_annotation': no .json annotation files in {annotation_root}")
    return DetectionSet(records, items, labels, image_shape)


def from_manifest(name: str, channel, num_classes: int, label_width: int, image_shape: int) -> DetectionSet:
    """An augmented manifest in Pipe mode: (image, bounding-box JSON) pairs → records in memory."""
    payloads = []
    for i, (image, text, where) in enumerate(manifest_pairs(name, channel, attribute="bounding-box")):
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ClientError(f"{where}: not valid JSON ({exc})") from None
        objects = annotation_objects(doc, where, num_classes)
        _check_width(objects, where, label_width)
        payloads.append(pack(Header(0, [2.0, float(OBJECT_WIDTH), *objects.ravel().tolist()], i), image))
    return from_records(name, [RecordList(payloads, f"Channel {name!r}: augmented manifest")], num_classes,
                        label_width, image_shape)


def channel_set(job, name: str, num_classes: int, label_width: int, image_shape: int) -> DetectionSet:
    """The `train` or `validation` channel (see the module docstring)."""
    data = recordio_channel(job, name,
                            lambda channel: from_manifest(name, channel, num_classes, label_width, image_shape),
                            lambda parts: from_records(name, parts, num_classes, label_width, image_shape))
    if data is not None:
        return data
    channel = job.channel(name)
    annotations = job.channel(f"{name}_annotation")
    if annotations is None:
        raise ClientError(f"Channel {name!r} holds image files ({channel.content_type}): the {name}_annotation "
                          "channel with one JSON annotation per image is required with it")
    return from_annotations(name, job.paths.channel_dir(name), job.paths.channel_dir(f"{name}_annotation"),
                            annotations.files(), num_classes, label_width, image_shape)
