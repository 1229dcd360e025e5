"""The images of a channel, as a torch Dataset: RecordIO image records (`.rec` files, or in Pipe
mode the records of the channel's first FIFO, held in memory and reused every epoch) or image files
listed by a `.lst` channel. Labels are read and checked once, when the set is built (the
IRHeaders of a `.rec` file, the label columns of a `.lst`); images are decoded and prepared
(smalgos.vision.transforms) in the DataLoader workers: once, when the preparation draws nothing
at random and the set fits in memory (`PreparedBatches`), else every epoch. An image that cannot
be decoded comes back as its ClientError (named by file and record or line) and is raised by the
training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from smalgos.errors import ClientError
from smalgos.vision.channels import file_in_channel, manifest_pairs, recordio_channel
from smalgos.vision.recordio_images import (
    Header, RecordFile, RecordList, decode_image, pack, read_lst, unpack)


@dataclass(frozen=True)
class Item:
    """One image: where its bytes are, and how to name it in a message."""

    where: str
    record: tuple[int, int] | None = None  # (file number, record number) in a .rec set
    path: Path | None = None               # an image file


class ImageSet(torch.utils.data.Dataset):
    """(image tensor, label) pairs; the label an int64 class, or a float32 multi-hot vector."""

    def __init__(self, items: list[Item], labels: np.ndarray, records: list[RecordFile], channels: int,
                 multi_label: bool, transform: Callable | None = None):
        self.items, self.labels, self.records = items, labels, records
        self.channels, self.multi_label, self.transform = channels, multi_label, transform

    def __len__(self) -> int:
        return len(self.items)

    def part(self, rank: int, size: int) -> "ImageSet":
        """Host `rank`'s share of a set that every one of `size` hosts holds whole (FullyReplicated):
        the images whose index is `rank` modulo `size`."""
        keep = slice(rank, None, size)
        return ImageSet(self.items[keep], self.labels[keep], self.records, self.channels, self.multi_label,
                        self.transform)

    def image_bytes(self, i: int) -> bytes:
        item = self.items[i]
        if item.record is not None:
            f, r = item.record
            return unpack(self.records[f].payload(r), item.where)[1]
        try:
            return item.path.read_bytes()
        except OSError as exc:
            raise ClientError(f"{item.where}: cannot read the image ({exc.strerror})") from None

    def __getitem__(self, i: int):
        where = self.items[i].where
        try:
            pixels = decode_image(self.image_bytes(i), where, self.channels)
            image = self.transform(pixels, where)
        except ClientError as exc:
            return exc
        label = self.labels[i]
        return image, (torch.from_numpy(label) if self.multi_label else torch.tensor(int(label[0])))


PREPARED_BYTES = 2 << 30  # a set whose transform is deterministic is kept prepared in memory up to this size


class PreparedBatches:
    """The batches of a set whose transform draws nothing at random (Image Classification without
    `augmentation_type`, and every validation set), its images decoded and prepared once: on the
    first pass, by `loader` (the set's unshuffled DataLoader, its workers decoding in parallel),
    into one tensor; then, epoch after epoch, batches of `batch` taken from memory, in a new random
    order each time from `generator` when `shuffle` (the first epoch's order is the one a
    shuffling DataLoader with that generator gives). Every epoch after the first costs what a loop
    over tensors costs. An image that cannot be decoded comes out as its ClientError batch, as from
    the DataLoader."""

    def __init__(self, loader, batch: int, shuffle: bool, generator: torch.Generator | None = None):
        self.loader, self.batch, self.shuffle, self.generator = loader, int(batch), shuffle, generator
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    @staticmethod
    def fits(data: "ImageSet", image_shape) -> bool:
        c, h, w = image_shape
        deterministic = bool(getattr(data.transform, "deterministic", False))
        return deterministic and len(data) * c * h * w * 4 <= PREPARED_BYTES

    def __len__(self) -> int:
        return -(-len(self.loader.dataset if self.images is None else self.images) // self.batch)

    def _prepare(self) -> ClientError | None:
        n, at = len(self.loader.dataset), 0
        images = labels = None
        for batch in self.loader:
            if isinstance(batch, ClientError):
                return batch
            if images is None:  # filled in place: the set is held once, never twice
                images = torch.empty((n, *batch[0].shape[1:]), dtype=batch[0].dtype)
                labels = torch.empty((n, *batch[1].shape[1:]), dtype=batch[1].dtype)
            images[at:at + len(batch[0])], labels[at:at + len(batch[1])] = batch
            at += len(batch[0])
        self.images, self.labels = (images, labels) if images is not None else (torch.empty(0), torch.empty(0))
        self.loader = None  # its workers end with it
        return None

    def __iter__(self):
        if self.images is None:
            if self.generator is not None:  # as the DataLoader draws its workers' seed first
                torch.empty((), dtype=torch.int64).random_(generator=self.generator)
            failed = self._prepare()
            if failed is not None:
                yield failed
                return
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch):
            picked = order[start:start + self.batch]
            yield self.images[picked], self.labels[picked]


def collate(samples):
    """A batch, or the first ClientError among its samples (raised by the caller)."""
    for s in samples:
        if isinstance(s, ClientError):
            return s
    images, labels = zip(*samples)
    return torch.stack(images), torch.stack(labels)


def _checked_labels(labels: np.ndarray, where: str, num_classes: int, multi_label: bool) -> np.ndarray:
    if multi_label:
        if labels.size != num_classes:
            raise ClientError(f"{where}: {labels.size} label(s), but multi_label=1 needs one 0/1 value per class "
                              f"(num_classes={num_classes})")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ClientError(f"{where}: multi-label values must be 0 or 1, found {labels.tolist()}")
        return labels.astype(np.float32)
    if labels.size < 1:
        raise ClientError(f"{where}: no label")
    c = float(labels[0])
    if not c.is_integer() or not 0 <= c < num_classes:
        raise ClientError(f"{where}: label {labels[0]:g} is not a class in 0..{num_classes - 1} "
                          f"(num_classes={num_classes})")
    return np.array([c], np.float32)


def from_recordio(job_channel: str, files: list, num_classes: int, multi_label: bool,
                  channels: int) -> ImageSet:
    """Every record of every `.rec` file of a channel (paths, or RecordLists read from a Pipe
    mode stream), in order."""
    records, items, labels = [], [], []
    for f, path in enumerate(files):
        rec = RecordFile(path, f"Channel {job_channel!r}: {path}") if isinstance(path, Path) else path
        records.append(rec)
        for r in range(len(rec)):
            where = f"{rec.source}: record {r}"
            header = rec.header(r, where)
            where = f"{rec.source}: record {r} (id {header.id})"
            labels.append(_checked_labels(header.labels, where, num_classes, multi_label))
            items.append(Item(where, record=(f, r)))
    if not items:
        raise ClientError(f"Channel {job_channel!r}: the .rec file(s) hold no records")
    return ImageSet(items, np.stack(labels), records, channels, multi_label)


def _manifest_label(text: bytes, where: str, num_classes: int, multi_label: bool, label_format: str) -> list[float]:
    import json

    try:
        value = json.loads(text.decode("utf-8"))
        if isinstance(value, str):
            value = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        raise ClientError(f"{where}: label {text[:40]!r} is not a number or a JSON list of numbers") from None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ClientError(f"{where}: label {value!r} is not a number or a list of numbers")
    if multi_label and label_format == "class-id":
        hot = [0.0] * num_classes
        for v in values:
            if not float(v).is_integer() or not 0 <= v < num_classes:
                raise ClientError(f"{where}: class id {v} is not in 0..{num_classes - 1} (label-format=class-id)")
            hot[int(v)] = 1.0
        return hot
    return [float(v) for v in values]


def from_manifest(job_channel: str, channel, num_classes: int, multi_label: bool, channels: int) -> ImageSet:
    """An augmented manifest in Pipe mode (RecordWrapperType RecordIO, AttributeNames image first,
    then the label): wrapped objects alternate image bytes and label text ("3", "[1, 0, 1]" multi-hot,
    or class ids with `label-format=class-id`). Each pair becomes an image record held in memory."""
    label_format = channel.media.params.get("label-format", "multi-hot")
    if label_format not in ("multi-hot", "class-id"):
        raise ClientError(f"Channel {job_channel!r}: label-format={label_format!r} is not multi-hot or class-id")
    payloads = []
    for i, (image, label, where) in enumerate(manifest_pairs(job_channel, channel)):
        labels = _manifest_label(label, where, num_classes, multi_label, label_format)
        payloads.append(pack(Header(0, labels if multi_label else labels[0], i), image))
    return from_recordio(job_channel, [RecordList(payloads, f"Channel {job_channel!r}: augmented manifest")],
                         num_classes, multi_label, channels)


def from_list(job_channel: str, lst_channel: str, root: Path, lst_files: list[Path], num_classes: int,
              multi_label: bool, channels: int) -> ImageSet:
    """The images that the `.lst` files of `lst_channel` list, paths relative to `root`."""
    items, labels = [], []
    for lst in lst_files:
        for entry in read_lst(lst, f"Channel {lst_channel!r}: {lst}"):
            where = f"Channel {lst_channel!r}: {lst} line {entry.line}"
            path = file_in_channel(root, entry.path, job_channel, where, "image")
            labels.append(_checked_labels(entry.labels, where, num_classes, multi_label))
            items.append(Item(f"Channel {job_channel!r}: {path} (listed on {lst.name} line {entry.line})", path=path))
    return ImageSet(items, np.stack(labels), [], channels, multi_label)


def channel_set(job, name: str, num_classes: int, multi_label: bool, channels: int) -> ImageSet:
    """The `train` or `validation` channel as an ImageSet (`.rec` files, or images + `<name>_lst`)."""
    data = recordio_channel(job, name, lambda channel: from_manifest(name, channel, num_classes, multi_label, channels),
                            lambda parts: from_recordio(name, parts, num_classes, multi_label, channels))
    if data is not None:
        return data
    channel = job.channel(name)
    lst_channel = job.channel(f"{name}_lst")
    if lst_channel is None:
        raise ClientError(f"Channel {name!r} holds image files ({channel.content_type}): the {name}_lst channel "
                          f"with a .lst file (index<TAB>label<TAB>path) is required with it")
    lst_files = lst_channel.files()
    if not lst_files:
        raise ClientError(f"Channel '{name}_lst': no .lst file in {job.paths.channel_dir(name + '_lst')}")
    return from_list(name, f"{name}_lst", job.paths.channel_dir(name), lst_files, num_classes, multi_label,
                     channels)
