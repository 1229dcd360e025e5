"""What every vision algorithm reads from its channels beside images: the (image, attribute)
pairs of an augmented manifest in Pipe mode, files named relative to a channel's folder, and the
choice between RecordIO (File or Pipe mode) and image files that IC and OD make alike.

    for image, attribute, where in manifest_pairs("train", job.channel("train")): ...
    data = recordio_channel(job, "train", from_manifest, from_records)  # None: File-mode image files
    path = file_in_channel(root, "img/a.jpg", "train", "Channel 'train_lst': a.lst line 3", "image")
"""

from __future__ import annotations

from pathlib import Path

from smalgos.errors import ClientError
from smalgos.formats.opaque import RECORDIO


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


def recordio_channel(job, name: str, manifest, records):
    """Channel `name` read as RecordIO where it holds it: in Pipe mode, `manifest(channel)` for an
    augmented manifest (RecordWrapperType RecordIO), else `records(parts)` over the .rec streams,
    each read whole (the first epoch's FIFO, which later epochs reuse); in File mode,
    `records(files)` for application/x-recordio. None for File-mode image files, which the caller
    pairs with their labels or annotations."""
    from smalgos.vision.recordio_images import read_stream

    channel = job.channel(name)
    if channel.is_pipe:
        if channel.content_type != RECORDIO:
            raise ClientError(f"Channel {name!r}: Pipe mode reads application/x-recordio (.rec records or an "
                              f"augmented manifest), not {channel.content_type}")
        if channel.config.record_wrapper == "RecordIO":
            return manifest(channel)
        return records([read_stream(stream, f"Channel {name!r}: {source}") for source, stream in channel.streams()])
    files = channel.files()
    if not files:
        raise ClientError(f"Channel {name!r}: no files in {job.paths.channel_dir(name)}")
    return records(files) if channel.content_type == RECORDIO else None
