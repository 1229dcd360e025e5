"""Image Classification's prepared sets (smalgos_image_classification.data.PreparedBatches): a set
whose preparation draws nothing at random is decoded once and then served from memory, batch for
batch what the shuffling DataLoader (persistent workers) gives; a set with augmentation, or over the
memory limit, keeps decoding every epoch; an undecodable image still names its record."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from image_classification.digits import digit_images, rec_bytes
from smalgos.errors import ClientError
from smalgos.vision.recordio_images import Header, encode_image, pack, write_rec
from smalgos.vision.transforms import EvalTransform, TrainTransform
from smalgos_image_classification import data as ic_data
from smalgos_image_classification.data import PreparedBatches, collate, from_recordio

SHAPE = (3, 16, 16)


@pytest.fixture()
def images(tmp_path):
    x, y = digit_images(16)
    rec_bytes(x[:70], y[:70], tmp_path, "train.rec")
    data = from_recordio("train", [tmp_path / "train.rec"], 10, False, 3)
    data.transform = TrainTransform(SHAPE)  # no augmentation_type: deterministic
    return data


def loader(data, shuffle, generator=None, workers=1):
    return torch.utils.data.DataLoader(data, batch_size=16, shuffle=shuffle, num_workers=workers, collate_fn=collate,
                                       generator=generator, persistent_workers=workers > 0)


def test_prepared_batches_are_the_images_the_dataloader_prepares_shuffled_anew_each_epoch(images):
    assert PreparedBatches.fits(images, SHAPE)
    reference = list(loader(images, True, torch.Generator().manual_seed(3)))
    prepared = PreparedBatches(loader(images, False), 16, True, torch.Generator().manual_seed(3))
    assert len(prepared) == len(reference) == 5
    first = list(prepared)
    assert [len(b[0]) for b in first] == [16, 16, 16, 16, 6]
    for (a, la), (b, lb) in zip(first, reference, strict=True):  # the first epoch: the DataLoader's, image for image
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(la, lb)
    assert prepared.loader is None  # decoded once: the workers are gone after the first pass
    by_label = sorted(torch.cat([b[1] for b in first]).tolist())
    second = list(prepared)
    assert sorted(torch.cat([b[1] for b in second]).tolist()) == by_label  # every image once
    assert not torch.equal(torch.cat([b[0] for b in second]), torch.cat([b[0] for b in first]))  # a new order


def test_unshuffled_prepared_batches_keep_the_order(images):
    images.transform = EvalTransform(SHAPE)
    prepared = PreparedBatches(loader(images, False), 16, False)
    labels = torch.cat([b[1] for b in prepared])
    assert labels.tolist() == images.labels[:, 0].astype(int).tolist()
    assert torch.cat([b[1] for b in prepared]).tolist() == labels.tolist()


def test_augmented_or_too_large_sets_are_decoded_every_epoch(images, monkeypatch):
    images.transform = TrainTransform(SHAPE, augmentation_type="crop")
    assert not PreparedBatches.fits(images, SHAPE)
    images.transform = EvalTransform(SHAPE)
    monkeypatch.setattr(ic_data, "PREPARED_BYTES", len(images) * 3 * 16 * 16 * 4 - 1)
    assert not PreparedBatches.fits(images, SHAPE)


def test_an_undecodable_image_comes_out_as_its_client_error(tmp_path):
    x, y = digit_images(16)
    payloads = [pack(Header(0, float(y[i]), i, 0), encode_image(x[i], "JPEG")) for i in range(5)]
    payloads[3] = pack(Header(0, 1.0, 3, 0), b"not an image")
    write_rec(tmp_path / "bad.rec", payloads)
    data = from_recordio("train", [Path(tmp_path / "bad.rec")], 10, False, 3)
    data.transform = EvalTransform(SHAPE)
    batches = list(PreparedBatches(loader(data, False, workers=0), 16, False))
    assert len(batches) == 1 and isinstance(batches[0], ClientError)
    assert "bad.rec: record 3" in str(batches[0])
