"""`image(ref, width_mm=None)`: logos named at compile time, signatures and other pictures given in the data.

`ref` is the name of an image given to `compile_template(images=...)`, an `InlineImageData` from the letter
data, or raw bytes. The picture is added to the output once per distinct content (a batch of a thousand
letters with the same signature carries it once) and related from the part being rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from docx.image.exceptions import UnrecognizedImageError
from docx.image.image import Image
from docx.oxml.shape import CT_Inline
from docx.shared import Emu
from jinja2 import Undefined
from lxml import etree
from markupsafe import Markup

from correspondence.errors import RenderError
from correspondence.rendering.model import InlineImageData
from correspondence.rendering.state import Media, current

EMU_PER_MM = 36000
MAX_WIDTH_MM = 500
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024


def probe(data: bytes, what: str) -> Image:
    """The parsed header of an image, or ValueError saying it is not a PNG, JPEG or GIF."""
    if not isinstance(data, bytes) or not data:
        raise ValueError(f"{what} has no image data")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{what} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    try:
        picture = Image.from_blob(data)
    except (UnrecognizedImageError, ValueError, IndexError, KeyError, TypeError):
        raise ValueError(f"{what} is not a PNG, JPEG or GIF image") from None
    if picture.ext not in IMAGE_TYPES or picture.px_width <= 0 or picture.px_height <= 0:
        raise ValueError(f"{what} is not a PNG, JPEG or GIF image")
    return picture


def check_named_images(images: Mapping[str, bytes]) -> dict[str, bytes]:
    """The compile-time images, each checked to be a picture Word can show."""
    checked = {}
    for name, data in images.items():
        try:
            probe(data, f"image {name!r}")
        except ValueError as exc:
            raise RenderError(str(exc), image=str(name)) from None
        checked[str(name)] = data
    return checked


def _media(data: bytes, what: str) -> Media:
    state = current()
    media = state.media.get(data)
    if media is None:
        picture = probe(data, what)
        ext = "jpeg" if picture.ext == "jpg" else picture.ext
        media = Media(name=f"word/media/postroom{len(state.media) + 1}.{ext}", ext=ext, data=data,
                      cx=int(picture.width), cy=int(picture.height),
                      px_width=picture.px_width, px_height=picture.px_height)
        state.media[data] = media
    return media


@lru_cache(maxsize=1024)
def _inline_xml(rid: str, filename: str, cx: int, cy: int) -> str:
    return etree.tostring(CT_Inline.new_pic_inline(1, rid, filename, Emu(cx), Emu(cy)), encoding="unicode")


def image(ref: Any, width_mm: float | None = None) -> Markup:
    """Place a picture inline: a name given at compile time, an InlineImageData, or bytes."""
    state = current()
    if isinstance(ref, Undefined):
        ref._fail_with_undefined_error()
    if isinstance(ref, str):
        data = state.named_images.get(ref)
        if data is None:
            raise ValueError(f"image({ref!r}): no image of that name was given with the template")
        what = f"image {ref!r}"
    elif isinstance(ref, InlineImageData):
        data, what = ref.data, "the image in the letter data"
        width_mm = width_mm if width_mm is not None else ref.width_mm
    elif isinstance(ref, (bytes, bytearray)):
        data, what = bytes(ref), "the image in the letter data"
    else:
        raise ValueError(f"image() takes an image name or image data, got {type(ref).__name__}")
    media = _media(data, what)
    cx, cy = media.cx, media.cy
    if width_mm is not None:
        if isinstance(width_mm, bool) or not isinstance(width_mm, (int, float)) or not 0 < width_mm <= MAX_WIDTH_MM:
            raise ValueError(f"image(): width_mm must be a number of millimetres up to {MAX_WIDTH_MM}")
        cx = int(width_mm * EMU_PER_MM)
        cy = int(cx * media.px_height / media.px_width)
    rid = state.rel_for(media)
    xml = _inline_xml(rid, media.name.rsplit("/", 1)[-1], cx, cy)
    # Close the text run the tag sits in, add the picture in a run of its own, reopen the text run.
    return Markup(f'</w:t></w:r><w:r><w:drawing>{xml}</w:drawing></w:r><w:r><w:t xml:space="preserve">')  # noqa: S704 - lxml-built XML
