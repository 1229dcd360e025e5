"""Generated detection data: coloured rectangles and ellipses on noisy backgrounds, boxes known.
Class 0: red rectangle, 1: green ellipse, 2: blue rectangle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from smalgos.vision.recordio_images import Header, encode_image, pack, write_rec

COLOURS = ((220, 40, 40), (40, 200, 40), (40, 60, 230))


def scene(rng: np.random.Generator, size: int = 96, most: int = 2, classes: int = 3):
    """(pixels (size, size, 3) uint8, objects (k, 5) [cls, xmin, ymin, xmax, ymax] normalised)."""
    pixels = rng.integers(60, 160, (size, size, 3)).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, most + 1))):
        cls = int(rng.integers(classes))
        w, h = rng.uniform(0.25, 0.55, 2)
        x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        box = [x0 * size, y0 * size, (x0 + w) * size, (y0 + h) * size]
        (draw.ellipse if cls == 1 else draw.rectangle)(box, fill=COLOURS[cls])
        objects.append([cls, x0, y0, x0 + w, y0 + h])
    return np.asarray(image), np.asarray(objects, np.float32)


def packed(objects: np.ndarray) -> list[float]:
    return [2.0, 5.0, *np.asarray(objects, np.float32).ravel().tolist()]


def make_rec(path: Path, n: int, seed: int, size: int = 96, most: int = 2, classes: int = 3) -> list:
    rng = np.random.default_rng(seed)
    payloads, truths = [], []
    for i in range(n):
        pixels, objects = scene(rng, size, most, classes)
        payloads.append(pack(Header(0, packed(objects), i), encode_image(pixels)))
        truths.append(objects)
    write_rec(Path(path), payloads)
    return truths


def annotation(objects: np.ndarray, file: str, size: int = 96) -> dict:
    """AWS's JSON annotation of one scene (pixel boxes, origin top-left)."""
    boxes = [{"class_id": int(c), "left": round(float(x0) * size, 2), "top": round(float(y0) * size, 2),
              "width": round(float(x1 - x0) * size, 2), "height": round(float(y1 - y0) * size, 2)}
             for c, x0, y0, x1, y1 in np.asarray(objects, np.float64)]
    return {"file": file, "image_size": [{"width": size, "height": size, "depth": 3}], "annotations": boxes,
            "categories": [{"class_id": i, "name": n} for i, n in enumerate(("red box", "green disk", "blue box"))]}


def job_files(n: int, split: str, seed: int, size: int = 96) -> dict:
    """{(channel, name): bytes}: n JPEG scenes in `split` and their JSON in `<split>_annotation`."""
    import json

    from smalgos.vision.recordio_images import encode_image

    rng = np.random.default_rng(seed)
    files = {}
    for i in range(n):
        pixels, objects = scene(rng, size)
        files[(split, f"img{i:03d}.jpg")] = encode_image(pixels, "JPEG")
        files[(f"{split}_annotation", f"img{i:03d}.json")] = json.dumps(annotation(objects, f"img{i:03d}.jpg",
                                                                                   size)).encode()
    return files
