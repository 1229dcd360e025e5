"""Generated segmentation data: noisy grey backgrounds (class 0) with a red disk (class 1) and a
blue rectangle (class 2), each placed at random; (images (n, H, W, 3) uint8, masks (n, H, W) uint8),
and the files of a job's channels made of them (JPEG or PNG images, PNG masks)."""

from __future__ import annotations

import io

import numpy as np

COLOURS = {1: (220, 40, 40), 2: (40, 60, 220)}


def shapes(n: int, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        grey = rng.integers(90, 170)
        img = np.clip(grey + rng.normal(0, 18, (size, size, 3)), 0, 255)
        mask = masks[i]
        h, w = rng.integers(size // 4, size // 2, 2)
        top, left = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[top:top + h, left:left + w] = 2
        r = rng.uniform(size / 7, size / 4)
        cy, cx = rng.uniform(r, size - r, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        for label, colour in COLOURS.items():
            img[mask == label] = np.clip(np.array(colour) + rng.normal(0, 18, ((mask == label).sum(), 3)), 0, 255)
        images[i] = img
    return images, masks


def mask_png(mask, mode: str = "P") -> bytes:
    """A mask as an 8-bit PNG: palette ("P", as AWS's examples) or greyscale ("L")."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, np.uint8), mode="L").convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def job_files(x, y, split: str = "train", png_images: bool = False) -> dict:
    """{(channel, file name): bytes} for `split` and `split`_annotation; masks alternate L and P PNGs."""
    from smalgos.vision.recordio_images import encode_image

    files = {}
    for i, (im, m) in enumerate(zip(x, y)):
        files[(split, f"img{i:03d}.{'png' if png_images else 'jpg'}")] = encode_image(im, "PNG" if png_images else "JPEG")
        files[(f"{split}_annotation", f"img{i:03d}.png")] = mask_png(m, "P" if i % 2 else "L")
    return files
