"""What every vision algorithm reads from its channels beside images: the (image, attribute)
pairs of an augmented manifest in Pipe mode, and files named relative to a channel's folder.

    for image, attribute, where in manifest_pairs("train", job.channel("train")): ...
    path = file_in_channel(root, "img/a.jpg", "train", "Channel 'train_lst': a.lst line 3", "image")
"""

from __future__ import annotations

from pathlib import Path

from smalgos.errors import ClientError


def manifest_pairs(job_channel: str, channel, attribute: str = "label") -> list[tuple[bytes, bytes, str]]:
    """An augmented manifest in Pipe mode (RecordWrapperType RecordIO, AttributeNames: the image's
    source-ref first, then one attribute): its wrapped objects, which alternate image bytes and the
    attribute's bytes, as (image, attribute, where) triples; `where` names the attribute's object
    and its manifest line. Read whole: the first epoch's FIFO, which later epochs reuse."""
    objects = [(source, stream.read()) for source, stream in channel.streams()]
    if len(objects) % 2:
        raise ClientError(f"Channel {job_channel!r}: {len(objects)} wrapped objects; an augmented manifest sends "
                          f"pairs (AttributeNames: the image's source-ref, then its {attribute})")
    return [(objects[i][1], objects[i + 1][1],
             f"Channel {job_channel!r}: {objects[i + 1][0]} (the {attribute} of manifest line {i // 2 + 1})")
            for i in range(0, len(objects), 2)]


def file_in_channel(root: Path, relative: str, job_channel: str, where: str, what: str = "file") -> Path:
    """`root / relative`, which must be a file inside `root` (a channel's folder); else a
    ClientError that starts with `where` (the file and line that named it) and names the `what`."""
    path = root / relative
    if root.resolve() not in path.resolve().parents:
        raise ClientError(f"{where}: {what} path {relative!r} leads outside the {job_channel!r} channel")
    if not path.is_file():
        raise ClientError(f"{where}: {what} {relative!r} is not in the {job_channel!r} channel ({root})")
    return path
