"""Pictures from files: checked, turned upright, stripped, scaled and stored by content hash.

A news item's `image` may name a file beside the item. It is read (at most 10 MB), opened
with Pillow (a JPEG, PNG, WebP or GIF, else an error naming the item), turned upright by its
EXIF orientation, scaled to at most 1200 px wide and re-encoded without any metadata: a phone
photo's EXIF carries the place it was taken, and nothing published may carry that. JPEG stays
JPEG, PNG stays PNG, GIF stays GIF (animation kept); WebP becomes PNG when it has
transparency, else JPEG, because Outlook shows no WebP. The result is named by its content
(`{sha256 prefix}.{ext}`), so the same picture is stored and published once.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.errors import TemplateError

if TYPE_CHECKING:
    from PIL import Image as PILImage

MAX_BYTES = 10 * 1024 * 1024  # a file larger than this is refused before it is decoded
MAX_PIXELS = 60_000_000  # a 10 MB file can claim a billion pixels (a decompression bomb)
MAX_WIDTH = 1200  # the stored file: twice the widest display size, for sharp phone screens
DISPLAY_WIDTH = 600  # the widest an e-mail shows it (Outlook sizes images by the attribute)
JPEG_QUALITY = 82
NAME_HEX = 16  # 64 bits of the SHA-256: no collision among a newsletter's pictures
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
_ACCEPTED = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "WEBP": "WEBP"}


class ImageError(TemplateError):
    """A picture cannot be used (exit 2, naming the news item)."""


@dataclass(frozen=True)
class StoredImage:
    """A processed picture: its published file name, bytes and size in pixels."""

    name: str  # {sha256 prefix}.{ext}
    data: bytes
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.name.rsplit(".", 1)[1]]


def display_size(width: int, height: int, column: int = DISPLAY_WIDTH) -> tuple[int, int]:
    """The `width`/`height` attributes for a picture of `width`×`height` pixels in `column`."""
    shown = min(width, column, DISPLAY_WIDTH)
    return shown, max(1, round(height * shown / width))


def is_file_name(name: str) -> bool:
    """Whether `name` looks like a stored picture's name (what `/m/{file}` may serve)."""
    stem, dot, ext = name.partition(".")
    return (
        bool(dot)
        and ext in CONTENT_TYPES
        and len(stem) == NAME_HEX
        and all(c in "0123456789abcdef" for c in stem)
    )


_cache: OrderedDict[str, StoredImage] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 16


def load_image(path: Path, *, where: str) -> StoredImage:
    """Read and process the picture at `path`; errors name `where` (the item's file:line).

    The same file content is processed once per process (a picture shared by the items of
    every language costs one decode).
    """
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(
                f"image {path.name} is {size / 1048576:.1f} MB; at most 10 MB is accepted",
                where=where,
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image {path.name}: no such file ({path})", where=where) from None
    except IsADirectoryError:
        raise ImageError(f"image {path.name} is a folder, not a file", where=where) from None
    except OSError as exc:
        raise ImageError(f"cannot read image {path.name}: {exc.strerror}", where=where) from None
    key = hashlib.sha256(raw).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    image = process_image(raw, label=path.name, where=where)
    with _cache_lock:
        _cache[key] = image
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return image


def process_image(raw: bytes, *, label: str = "image", where: str | None = None) -> StoredImage:
    """Check, orient, scale and re-encode the picture `raw` (see the module's docstring)."""
    from PIL import Image

    if len(raw) > MAX_BYTES:
        raise ImageError(f"image {label} is over 10 MB", where=where)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as probe:
                kind = _ACCEPTED.get(probe.format or "")
                width, height = probe.size
                if kind is None:
                    raise ImageError(
                        f"image {label} is {probe.format}, not a JPEG, PNG, WebP or GIF picture",
                        where=where,
                    )
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"image {label} is {width}×{height} pixels; at most"
                        f" {MAX_PIXELS // 1_000_000} million are accepted",
                        where=where,
                    )
                probe.verify()  # a truncated or damaged file fails here, before decoding
            with Image.open(io.BytesIO(raw)) as source:
                data, ext, size = _encode(source, kind)
        except ImageError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageError(
                f"image {label} has too many pixels; at most"
                f" {MAX_PIXELS // 1_000_000} million are accepted",
                where=where,
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            # UnidentifiedImageError (an OSError) is a text file named .jpg and the like.
            reason = "not a picture" if isinstance(exc, Image.UnidentifiedImageError) else exc
            raise ImageError(
                f"image {label} cannot be used: {reason} (a JPEG, PNG, WebP or GIF file is)",
                where=where,
            ) from None
    digest = hashlib.sha256(data).hexdigest()[:NAME_HEX]
    return StoredImage(f"{digest}.{ext}", data, size[0], size[1])


def _encode(source: PILImage.Image, kind: str) -> tuple[bytes, str, tuple[int, int]]:
    """Return the re-encoded bytes, their extension and the final size in pixels."""
    if kind == "GIF" and getattr(source, "n_frames", 1) > 1:
        return _encode_animation(source)
    picture = _stripped(_upright(source))
    out = io.BytesIO()
    if kind == "GIF":
        picture.save(out, "GIF", optimize=True)
        return out.getvalue(), "gif", picture.size
    transparent = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    if kind == "PNG" or (kind == "WEBP" and transparent):
        if picture.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            picture = picture.convert("RGBA" if transparent else "RGB")
        picture.save(out, "PNG", optimize=True)
        return out.getvalue(), "png", picture.size
    if picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue(), "jpg", picture.size


def _stripped(picture: PILImage.Image) -> PILImage.Image:
    """Drop what Pillow would write back from `info`: comments, EXIF, ICC, text chunks.

    Only transparency stays (a palette picture's transparent colour is pixels, not metadata).
    """
    picture.info = {k: v for k, v in picture.info.items() if k == "transparency"}
    return picture


def _upright(source: PILImage.Image) -> PILImage.Image:
    """The first frame, turned by its EXIF orientation, in sRGB, at most MAX_WIDTH wide."""
    from PIL import Image, ImageOps

    orientation = source.getexif().get(0x0112, 1)
    turned = orientation in (5, 6, 7, 8)  # stored sideways: its height becomes the width
    width, height = (source.height, source.width) if turned else source.size
    if width > MAX_WIDTH and source.format == "JPEG":
        # Let the JPEG decoder skip detail we would throw away (DCT scaling): much faster.
        target = (MAX_WIDTH, round(height * MAX_WIDTH / width))
        source.draft("RGB", (target[1], target[0]) if turned else target)
    picture = _to_srgb(source)
    picture = ImageOps.exif_transpose(picture) or picture
    if picture.width > MAX_WIDTH:
        new_height = max(1, round(picture.height * MAX_WIDTH / picture.width))
        if picture.mode == "P":
            picture = picture.convert("RGBA")
        # reducing_gap: a cheap box reduction first, then Lanczos over the last factor of 3
        # (indistinguishable from Lanczos all the way, at a fraction of its cost).
        picture = picture.resize(
            (MAX_WIDTH, new_height), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
    return picture


def _to_srgb(source: PILImage.Image) -> PILImage.Image:
    """Convert a picture with an embedded colour profile to sRGB (the profile is dropped)."""
    icc = source.info.get("icc_profile")
    if not icc or source.mode not in ("RGB", "RGBA", "CMYK"):
        source.load()
        return source.copy() if source.mode != "CMYK" else source.convert("RGB")
    try:
        from PIL import ImageCms

        mode = "RGBA" if source.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            source,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode=mode,
        )
        if converted is not None:
            converted.info.pop("icc_profile", None)
            converted.getexif()  # keep the orientation readable for exif_transpose
            if "exif" in source.info:
                converted.info["exif"] = source.info["exif"]
            return converted
    except (ImportError, OSError, ValueError):
        pass  # a broken profile: keep the pixels as they are
    source.load()
    return source.copy()


def _encode_animation(source: PILImage.Image) -> tuple[bytes, str, tuple[int, int]]:
    """An animated GIF: every frame scaled alike, timing and looping kept, nothing else."""
    from PIL import Image, ImageSequence

    frames: list[PILImage.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(source):
        durations.append(int(frame.info.get("duration", 100)))
        picture = frame.convert("RGBA")
        if picture.width > MAX_WIDTH:
            height = max(1, round(picture.height * MAX_WIDTH / picture.width))
            picture = picture.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
        frames.append(_stripped(picture))
    out = io.BytesIO()
    frames[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=int(source.info.get("loop", 0)),
        disposal=2,
        optimize=False,
    )
    return out.getvalue(), "gif", frames[0].size
