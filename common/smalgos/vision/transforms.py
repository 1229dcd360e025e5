"""Image preparation in torch, per image, run in the DataLoader workers.

Training (`TrainTransform`), as AWS documents Image Classification's (spec §7.1):
  1. `resize`: the shorter side scaled to `resize` pixels (aspect kept), when given;
  2. `crop_color_transform` only: a random affine map about the centre: rotation within ±10°, shear
     within ±0.1 and an aspect-ratio change within ±25 %;
  3. an image smaller than `image_shape` in height or width is a ClientError naming it (AWS fails
     the job); a larger one is cropped to `image_shape`: at random with `augmentation_type` set,
     else at the centre;
  4. with `augmentation_type` set (crop, crop_color, crop_color_transform): a horizontal flip half of
     the time;
  5. `crop_color`, `crop_color_transform`: random hue, saturation and lightness: hue rotated within
     ±36°, saturation and lightness moved within ±50 (of 255) — AWS names these ranges, not their
     exact formulas (rotation in YIQ space, blend with the grey image, an added offset here);
  6. normalised with the ImageNet mean and deviation (torchvision's weights expect them).
Evaluation (`EvalTransform`): resize, centre crop, normalise. Inference (`InferenceTransform`): the
image scaled to `image_shape` (aspect not kept, no crop), normalised — AWS's rule.
Images arrive as (H, W, C) uint8 arrays; out come (C, H, W) float32 tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from smalgos.errors import ClientError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("crop", "crop_color", "crop_color_transform")
HUE_DEGREES, SATURATION, LIGHTNESS = 36.0, 50.0, 50.0
ROTATION_DEGREES, SHEAR, ASPECT = 10.0, 0.1, 0.25


def to_tensor(hwc: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 → (C, H, W) float32 in [0, 255]."""
    arr = np.ascontiguousarray(hwc)
    if not arr.flags.writeable:  # a decoder's read-only buffer: torch wants memory it may own
        arr = arr.copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float()


def resize_to(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if t.shape[1] == height and t.shape[2] == width:
        return t
    return F.interpolate(t[None], size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp_(0, 255)


def resize_shorter(t: torch.Tensor, shorter: int) -> torch.Tensor:
    h, w = t.shape[1:]
    scale = shorter / min(h, w)
    return resize_to(t, max(1, round(h * scale)), max(1, round(w * scale)))


def normalise(t: torch.Tensor) -> torch.Tensor:
    c = t.shape[0]
    mean = torch.tensor(MEAN[:c] if c == 3 else (sum(MEAN) / 3,)).view(c, 1, 1)
    std = torch.tensor(STD[:c] if c == 3 else (sum(STD) / 3,)).view(c, 1, 1)
    return (t / 255.0 - mean) / std


def random_affine(t: torch.Tensor) -> torch.Tensor:
    """Rotation ±10°, shear ±0.1, aspect ×(1 ± 0.25) about the centre; borders filled with 0."""
    u = torch.rand(3) * 2 - 1
    angle = math.radians(ROTATION_DEGREES) * float(u[0])
    shear, aspect = SHEAR * float(u[1]), 1.0 + ASPECT * float(u[2])
    cos, sin = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[cos, -sin], [sin, cos]])
    sh = torch.tensor([[1.0, shear], [0.0, 1.0]])
    sc = torch.tensor([[math.sqrt(aspect), 0.0], [0.0, 1.0 / math.sqrt(aspect)]])
    inverse = torch.linalg.inv(rot @ sh @ sc)  # grid_sample maps output → input
    theta = torch.cat([inverse, torch.zeros(2, 1)], 1)[None]
    grid = F.affine_grid(theta, [1, *t.shape], align_corners=False)
    return F.grid_sample(t[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def random_color(t: torch.Tensor) -> torch.Tensor:
    """Hue, saturation and lightness moved at random (see the module docstring); RGB only."""
    if t.shape[0] != 3:
        return (t + LIGHTNESS * (2 * float(torch.rand(())) - 1)).clamp_(0, 255)
    u = torch.rand(3) * 2 - 1
    angle = math.radians(HUE_DEGREES) * float(u[0])
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    cos, sin = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[1.0, 0, 0], [0, cos, -sin], [0, sin, cos]])
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    out = torch.einsum("ij,jhw->ihw", m, t)
    grey = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2])[None]
    alpha = 1.0 + float(u[1]) * SATURATION / 255.0 * 4  # ±50 of 255 in HLS saturation ≈ ±0.8 blend
    out = grey + alpha * (out - grey)
    return (out + LIGHTNESS * float(u[2])).clamp_(0, 255)


class EvalTransform:
    deterministic = True  # the same image always gives the same tensor (it can be prepared once)

    def __init__(self, image_shape: tuple[int, int, int], resize: int | None = None):
        self.channels, self.height, self.width = image_shape
        self.resize = resize

    def sized(self, hwc: np.ndarray, where: str) -> torch.Tensor:
        t = to_tensor(hwc)
        if self.resize:
            t = resize_shorter(t, self.resize)
        return t

    def check(self, t: torch.Tensor, where: str) -> None:
        h, w = t.shape[1:]
        if h < self.height or w < self.width:
            raise ClientError(f"{where}: image of {h}x{w} pixels (after resize) is smaller than image_shape "
                              f"{self.channels},{self.height},{self.width}: set resize to at least "
                              f"{max(self.height, self.width)} or give larger images")

    def crop(self, t: torch.Tensor, random: bool) -> torch.Tensor:
        h, w = t.shape[1:]
        if random:
            top = int(torch.randint(0, h - self.height + 1, ()))
            left = int(torch.randint(0, w - self.width + 1, ()))
        else:
            top, left = (h - self.height) // 2, (w - self.width) // 2
        return t[:, top:top + self.height, left:left + self.width]

    def __call__(self, hwc: np.ndarray, where: str) -> torch.Tensor:
        t = self.sized(hwc, where)
        self.check(t, where)
        return normalise(self.crop(t, False))


class TrainTransform(EvalTransform):
    def __init__(self, image_shape, resize: int | None = None, augmentation_type: str | None = None):
        super().__init__(image_shape, resize)
        if augmentation_type is not None and augmentation_type not in AUGMENTATIONS:
            raise ClientError(f"Hyperparameter augmentation_type: {augmentation_type!r} is not one of "
                              f"{', '.join(AUGMENTATIONS)}")
        self.augmentation = augmentation_type
        self.deterministic = augmentation_type is None

    def __call__(self, hwc: np.ndarray, where: str) -> torch.Tensor:
        t = self.sized(hwc, where)
        if self.augmentation == "crop_color_transform":
            t = random_affine(t)
        self.check(t, where)
        t = self.crop(t, self.augmentation is not None)
        if self.augmentation is not None and bool(torch.rand(()) < 0.5):
            t = t.flip(2)
        if self.augmentation in ("crop_color", "crop_color_transform"):
            t = random_color(t)
        return normalise(t)


class InferenceTransform(EvalTransform):
    def __call__(self, hwc: np.ndarray, where: str = "request") -> torch.Tensor:
        return normalise(resize_to(to_tensor(hwc), self.height, self.width))
