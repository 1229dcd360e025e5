"""Semantic Segmentation's data: images with their masks, from the job's channels.

File mode (spec §9.2): `train` / `validation` hold JPEG or PNG images; `train_annotation` /
`validation_annotation` hold one PNG mask per image with the same basename (`a/coffee.jpg` ↔
`a/coffee.png`, the path relative to the channel's folder kept), single-channel uint8 (palette `P`
or grayscale `L`), one class id per pixel. Pipe mode: an augmented manifest (RecordWrapperType
RecordIO; AttributeNames: the image's source-ref, then the mask's `-ref`), read whole once.

Label maps (`label_map` channel, train_label_map.json / validation_label_map.json):
`{"scale": "k"}` → class = pixel // k; `{"map": {"<class>": <pixel>, ...}}` → the pixel value
written for each class (an encoded pixel no class names is an error). The value 255 is kept as
255 either way and ignored by the loss and the metrics (GluonCV's VOC convention: object
boundaries). Any other class id >= num_classes is a ClientError naming the file.

Transforms (GluonCV's segmentation datasets, which AWS's image uses):
- training: the long side scaled to base_size x U(0.5, 2.0) (aspect kept; bilinear for the image,
  nearest for the mask), padded to crop_size where shorter (image 0, mask 255), a random
  crop_size x crop_size crop, a horizontal flip half the time;
- validation: the short side scaled to crop_size, the centre crop_size x crop_size crop;
then normalised with the ImageNet mean and deviation.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch
import torch.nn.functional as F

from smalgos.errors import ClientError
from smalgos.vision.channels import file_in_channel, manifest_pairs
from smalgos.vision.recordio_images import decode_image
from smalgos.vision.transforms import normalise, to_tensor

IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# -- label maps ------------------------------------------------------------------------------------

def label_table(spec: dict | None, where: str) -> np.ndarray:
    """A 256-entry lookup table pixel value → class id (255: ignored; 254 unmapped marks an error)."""
    table = np.arange(256, dtype=np.int32)
    if spec is None:
        return table
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("scale", "map"):
        raise ClientError(f'{where}: expected {{"scale": "k"}} or {{"map": {{"<class>": <pixel>, ...}}}}')
    if "scale" in spec:
        try:
            k = int(str(spec["scale"]).strip())
        except ValueError:
            raise ClientError(f"{where}: field 'scale' {spec['scale']!r} is not a positive integer") from None
        if k < 1:
            raise ClientError(f"{where}: field 'scale' {spec['scale']!r} is not a positive integer")
        table = table // k
    else:
        mapping = spec["map"]
        if not isinstance(mapping, dict) or not mapping:
            raise ClientError(f"{where}: field 'map' must be an object of class -> encoded pixel value")
        table = np.full(256, -1, np.int32)
        for key, pixel in mapping.items():
            try:
                label, value = int(str(key)), int(str(pixel))
            except ValueError:
                raise ClientError(f"{where}: field 'map' entry {key!r}: {pixel!r} is not class -> pixel (integers)") \
                    from None
            if not 0 <= label < 255 or not 0 <= value <= 255:
                raise ClientError(f"{where}: field 'map' entry {key!r}: {pixel!r} is out of range (0-254 -> 0-255)")
            if table[value] >= 0:
                raise ClientError(f"{where}: field 'map': pixel value {value} is given to two classes")
            table[value] = label
    table[IGNORE] = IGNORE
    return table


def read_label_map(job, split: str) -> tuple[dict | None, np.ndarray]:
    """The `<split>_label_map.json` of the label_map channel (None when absent) and its table."""
    channel = job.channel("label_map")
    if channel is None:
        return None, label_table(None, "")
    name = f"{split}_label_map.json"
    found = [f for f in channel.files() if f.name == name]
    if not found:
        return None, label_table(None, "")
    where = f"Channel 'label_map': {name}"
    try:
        spec = json.loads(found[0].read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientError(f"{where}: not valid JSON ({exc})") from None
    return spec, label_table(spec, where)


# -- masks -----------------------------------------------------------------------------------------

def decode_mask(data: bytes, where: str) -> np.ndarray:
    """A single-channel mask (PNG, palette or grayscale) → (H, W) uint8 of the stored values."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("P", "L", "1"):
                raise ClientError(f"{where}: the mask is a {img.mode} image; a single-channel uint8 PNG "
                                  "(mode P or L) is read")
            return np.array(img.convert("L") if img.mode == "1" else img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ClientError(f"{where}: the mask cannot be decoded ({type(exc).__name__}: {exc})") from None


def image_size(data: bytes, where: str) -> tuple[int, int]:
    """(height, width) from the image header (nothing decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size[1], img.size[0]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ClientError(f"{where}: the image cannot be decoded ({type(exc).__name__}: {exc})") from None


def to_labels(mask: np.ndarray, table: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    labels = table[mask]
    bad = (labels < 0) | ((labels >= num_classes) & (labels != IGNORE))
    if bad.any():
        value = int(mask[bad][0])
        shown = "no class of the label map" if labels[bad][0] < 0 else f"class {int(labels[bad][0])}"
        raise ClientError(f"{where}: pixel value {value} ({shown}) is not a class in 0..{num_classes - 1} "
                          f"(num_classes={num_classes}; 255 is ignored)")
    return labels.astype(np.uint8)


# -- the dataset -----------------------------------------------------------------------------------

class SegmentationSet(torch.utils.data.Dataset):
    """Encoded images with their (H, W) uint8 class masks; `transform(image, mask)` → tensors."""

    def __init__(self, images: list[bytes], masks: list[np.ndarray], names: list[str]):
        self.images, self.masks, self.names = images, masks, names
        self.transform = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        image = decode_image(self.images[i], self.names[i])
        return self.transform(image, self.masks[i])

    @classmethod
    def of_arrays(cls, images: list[np.ndarray], masks: list[np.ndarray]) -> "SegmentationSet":
        """From (H, W, 3) uint8 images and (H, W) class masks, as a notebook holds them."""
        from smalgos.vision.recordio_images import encode_image

        return cls([encode_image(np.asarray(im, np.uint8), "PNG") for im in images],
                   [np.asarray(m, np.uint8) for m in masks], [f"image {i}" for i in range(len(images))])


def pair(images, masks, names, image: bytes, mask: bytes, table, num_classes: int, where_image: str,
         where_mask: str) -> None:
    labels = to_labels(decode_mask(mask, where_mask), table, num_classes, where_mask)
    size = image_size(image, where_image)
    if size != labels.shape:
        raise ClientError(f"{where_mask}: the mask is {labels.shape[1]}x{labels.shape[0]} pixels but its image "
                          f"{where_image} is {size[1]}x{size[0]}; they must be the same size")
    images.append(image)
    masks.append(labels)
    names.append(where_image)


def channel_set(job, split: str, num_classes: int) -> SegmentationSet:
    """The images and masks of `split` ("train" or "validation"): see the module docstring."""
    spec, table = read_label_map(job, split)
    job.log.info("#label_map %s :%s", split, spec if spec is not None else {"scale": 1})
    channel = job.channel(split)
    images, masks, names = [], [], []
    if channel.is_pipe:
        for image, mask, where in manifest_pairs(split, channel, attribute="mask"):
            pair(images, masks, names, image, mask, table, num_classes, where.replace("the mask", "the image"), where)
    else:
        annotations = job.channel(f"{split}_annotation")
        if annotations is None:
            raise ClientError(f"Missing required channel: {split}_annotation (the PNG masks of the {split} images; "
                              "in Pipe mode an augmented manifest holds both)")
        root = job.paths.channel_dir(split)
        mask_root = job.paths.channel_dir(f"{split}_annotation")
        annotations.files()  # the folder must exist
        for path in sorted(f for f in channel.files() if f.suffix.lower() in IMAGE_SUFFIXES):
            relative = path.relative_to(root)
            where_image = f"Channel {split!r}: {relative}"
            mask_name = str(relative.with_suffix(".png"))
            if not (mask_root / mask_name).is_file():
                raise ClientError(f"{where_image}: no mask {mask_name} in the {split}_annotation channel (each image "
                                  "needs a PNG mask of the same basename)")
            mask_path = file_in_channel(mask_root, mask_name, f"{split}_annotation", where_image, "mask")
            pair(images, masks, names, path.read_bytes(), mask_path.read_bytes(), table, num_classes, where_image,
                 f"Channel '{split}_annotation': {mask_name}")
    if not images:
        raise ClientError(f"Channel {split!r}: no images (.jpg, .jpeg or .png) found")
    return SegmentationSet(images, masks, names)


# -- transforms ------------------------------------------------------------------------------------

def _resize(image: torch.Tensor, mask: torch.Tensor, height: int, width: int):
    image = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False,
                          antialias=True)[0].clamp_(0, 255)
    mask = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")[0, 0].long()
    return image, mask


class ValTransform:
    """The short side scaled to crop_size, the centre crop (GluonCV's validation transform)."""

    def __init__(self, crop: int):
        self.crop = crop

    def __call__(self, hwc: np.ndarray, labels: np.ndarray):
        image, mask = to_tensor(hwc), torch.from_numpy(labels.astype(np.int64))
        h, w = mask.shape
        scale = self.crop / min(h, w)
        image, mask = _resize(image, mask, max(self.crop, round(h * scale)), max(self.crop, round(w * scale)))
        h, w = mask.shape
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return (normalise(image[:, top:top + self.crop, left:left + self.crop]),
                mask[top:top + self.crop, left:left + self.crop])


class TrainTransform(ValTransform):
    """Random scale of the long side (base_size x U(0.5, 2.0)), pad, random crop, random flip."""

    def __init__(self, crop: int, base_size: int):
        super().__init__(crop)
        self.base_size = base_size

    def __call__(self, hwc: np.ndarray, labels: np.ndarray):
        image, mask = to_tensor(hwc), torch.from_numpy(labels.astype(np.int64))
        if bool(torch.rand(()) < 0.5):
            image, mask = image.flip(2), mask.flip(1)
        h, w = mask.shape
        long_side = int(self.base_size * float(torch.empty(()).uniform_(0.5, 2.0)))
        scale = long_side / max(h, w)
        image, mask = _resize(image, mask, max(1, round(h * scale)), max(1, round(w * scale)))
        h, w = mask.shape
        pad_h, pad_w = max(0, self.crop - h), max(0, self.crop - w)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE)
            h, w = mask.shape
        top = int(torch.randint(0, h - self.crop + 1, ()))
        left = int(torch.randint(0, w - self.crop + 1, ()))
        return (normalise(image[:, top:top + self.crop, left:left + self.crop]),
                mask[top:top + self.crop, left:left + self.crop])


def collate(items):
    return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
