"""Augmentation and normalisation: shapes, ranges, the too-small image error, the step schedule."""
import numpy as np
import pytest
import torch

from smalgos.errors import ClientError
from smalgos.vision.transforms import EvalTransform, InferenceTransform, TrainTransform, normalise


@pytest.mark.parametrize("augmentation", [None, "crop", "crop_color", "crop_color_transform"])
def test_training_shapes(augmentation):
    torch.manual_seed(0)
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    t = TrainTransform((3, 24, 28), resize=32, augmentation_type=augmentation)
    out = t(img, "img")
    assert out.shape == (3, 24, 28) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_eval_is_a_centre_crop_and_inference_a_plain_resize():
    img = np.zeros((10, 10, 3), np.uint8)
    img[3:7, 3:7] = 255
    centre = EvalTransform((3, 4, 4))(img, "img")
    assert torch.allclose(centre, normalise(torch.full((3, 4, 4), 255.0)))
    assert InferenceTransform((3, 5, 7))(np.zeros((20, 9, 3), np.uint8)).shape == (3, 5, 7)
    assert InferenceTransform((1, 6, 6))(np.zeros((3, 3, 1), np.uint8)).shape == (1, 6, 6)


def test_resize_keeps_the_aspect_and_crop_without_augmentation_is_deterministic():
    img = np.random.default_rng(1).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    t = TrainTransform((3, 10, 10), resize=10)
    assert t.sized(img, "x").shape == (3, 10, 20)
    assert torch.equal(t(img, "x"), t(img, "x"))


def test_a_too_small_image_is_a_client_error():
    with pytest.raises(ClientError) as info:
        EvalTransform((3, 32, 32))(np.zeros((16, 40, 3), np.uint8), "train.rec: record 2")
    assert info.value.message == ("train.rec: record 2: image of 16x40 pixels (after resize) is smaller than "
                                  "image_shape 3,32,32: set resize to at least 32 or give larger images")
