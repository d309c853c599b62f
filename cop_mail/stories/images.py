"""Story pictures: checked by their bytes, limited in size, kept as files under the instance folder.

The name and the type a browser or mail client claims prove nothing, so the first bytes decide:
only PNG, JPEG, GIF and WebP with a readable header are kept. Nothing is re-encoded or stripped;
the file is stored under a random name and served with the type found here.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.models import Story, StoryImage

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGES_PER_STORY = 6
FOLDER_NAME = "story-images"


class ImageRejected(ValueError):
    """An upload that is not a picture we take; the message says why in plain words."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    extension: str
    width: int | None
    height: int | None


def images_folder(instance_path: Path) -> Path:
    return instance_path / FOLDER_NAME


def describe_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(size // 1024, 1)} KB"


def check_image(data: bytes, filename: str = "", max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    name = display_name(filename)
    if len(data) > max_bytes:
        raise ImageRejected(
            f"{name} is {describe_size(len(data))}; pictures can be at most {describe_size(max_bytes)}. "
            "Please send a smaller version."
        )
    if not data:
        raise ImageRejected(f"{name} is empty.")
    info = sniff(data)
    if info is None:
        raise ImageRejected(f"{name} does not look like a picture. Only PNG, JPEG, GIF and WebP images can be added.")
    return info


def display_name(filename: str) -> str:
    cleaned = "".join(ch for ch in os.path.basename(filename or "") if ch.isprintable())[:80]
    return f"“{cleaned}”" if cleaned else "The file"


def sniff(data: bytes) -> ImageInfo | None:
    """The image type and size from the header bytes, or None when they are not a picture we take."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("image/png", "png", width, height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("image/gif", "gif", width, height)
    if data[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(data)
        return ImageInfo("image/jpeg", "jpg", *size) if size else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp_size(data)
        return ImageInfo("image/webp", "webp", *size) if size else None
    return None


# Start-of-frame markers carry the picture's size; C4 (Huffman), C8 (reserved) and CC (arithmetic) do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if length < 2:
            return None
        position += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def add_image(
    session: Session, folder: Path, story: Story, filename: str, data: bytes, alt_text: str = ""
) -> StoryImage:
    """Check and store one picture for the story. The file is written before the row is flushed."""
    if len(story.images) >= MAX_IMAGES_PER_STORY:
        raise ImageRejected(f"A story can have at most {MAX_IMAGES_PER_STORY} pictures.")
    info = check_image(data, filename)
    stored_name = f"{secrets.token_hex(16)}.{info.extension}"
    _write_atomically(folder / stored_name, data)
    image = StoryImage(
        stored_name=stored_name,
        original_name=os.path.basename(filename or "")[:255],
        content_type=info.content_type,
        size=len(data),
        width=info.width,
        height=info.height,
        sha256=hashlib.sha256(data).hexdigest(),
        alt_text=alt_text.strip()[:300],
    )
    story.images.append(image)
    session.flush()
    return image


def check_all(uploads: list[tuple[str, bytes]], already: int = 0) -> list[str]:
    """Every problem with a set of uploads, so a form shows them all at once."""
    problems = []
    if already + len(uploads) > MAX_IMAGES_PER_STORY:
        problems.append(f"A story can have at most {MAX_IMAGES_PER_STORY} pictures.")
    for filename, data in uploads:
        try:
            check_image(data, filename)
        except ImageRejected as exc:
            problems.append(str(exc))
    return problems


def image_path(folder: Path, image: StoryImage) -> Path:
    # Stored names are ours (hex + extension), never the uploader's, so they cannot leave the folder.
    return folder / image.stored_name


def delete_files(folder: Path, images: list[StoryImage]) -> None:
    for image in images:
        image_path(folder, image).unlink(missing_ok=True)


def remove_orphans(session: Session, folder: Path, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete picture files no row refers to: left by an erased member, or by a submission that
    rolled back after its files were written. Young files are left alone (a submission may be
    between writing and committing). Returns how many were removed."""
    if not folder.is_dir():
        return 0
    known = set(session.scalars(select(StoryImage.stored_name)))
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for path in folder.iterdir():
        if path.is_file() and path.name not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)
