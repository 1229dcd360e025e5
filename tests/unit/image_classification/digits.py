"""scikit-learn's digits (8x8, 16 grey levels) rendered as small RGB JPEGs, in a `.rec` or as image
files with a `.lst`: the Image Classification tests' data (offline, seconds to make)."""
from __future__ import annotations

import numpy as np

from smalgos.vision.recordio_images import Header, encode_image, pack, write_rec

SIDE = 16


def digit_images(side: int = SIDE, seed: int = 0):
    """(images (n, side, side, 3) uint8, labels (n,) int), shuffled; a white digit on black, coloured a
    little at random so that the three channels differ."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    grey = digits.images[order] / 16.0
    big = np.kron(grey, np.ones((side // 8, side // 8)))  # nearest-neighbour upscale
    tint = rng.uniform(0.6, 1.0, (len(big), 1, 1, 3))
    images = np.clip(big[..., None] * tint * 255, 0, 255).astype(np.uint8)
    return images, digits.target[order].astype(int)


def rec_bytes(images, labels, tmp_path, name="data.rec", quality=95) -> bytes:
    path = tmp_path / name
    write_rec(path, [pack(Header(0, float(y), i, 0), encode_image(img, "JPEG", quality))
                     for i, (img, y) in enumerate(zip(images, labels))])
    return path.read_bytes()


def lst_files(images, labels, prefix="img"):
    """({relative path: JPEG bytes}, .lst text)."""
    files, lines = {}, []
    for i, (img, y) in enumerate(zip(images, labels)):
        rel = f"{prefix}/{i:05d}.jpg"
        files[rel] = encode_image(img, "JPEG")
        lines.append(f"{i}\t{int(y)}\t{rel}")
    return files, "\n".join(lines) + "\n"
