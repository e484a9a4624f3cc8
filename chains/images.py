"""Images for gpt-4o, prepared with Pillow the way Azure itself scales them, so nothing is sent that Azure would throw
away, and priced with Azure's tile formula before sending.

- EXIF orientation applied; first frame of animations; CMYK, 16-bit, palette and LA images converted correctly.
- high: fit within 2048×2048, then the shortest side down to 768; low: fit within 512×512. Never upscaled.
- auto: treated as low when the image already fits 512×512 (Azure's own choice then costs the same), else high;
  the resolved detail is what is sent, so the estimate is exact.
- Metadata stripped; JPEG (quality 90) unless transparency is used, then PNG.
- Tokens: low 85; high 85 + 170 per 512-px tile of the scaled image.
"""
from __future__ import annotations

import base64
import hashlib
import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif"]
MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
LOW_TOKENS, TILE_TOKENS, TILE = 85, 170, 512
HIGH_FIT, HIGH_SHORT, LOW_FIT = 2048, 768, 512


class ImageRejected(ValueError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class PreparedImage:
    name: str
    mime: str
    data: bytes
    width: int
    height: int
    detail: str  # "low" or "high": what is sent
    tokens: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def extension(self) -> str:
        return "png" if self.mime == "image/png" else "jpg"

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


def high_detail_size(width: int, height: int) -> tuple[int, int]:
    """Fit within 2048×2048, then shortest side to 768 (integer arithmetic, as Azure's and the emulator's count)."""
    if width > HIGH_FIT or height > HIGH_FIT:
        if width > height:
            width, height = HIGH_FIT, height * HIGH_FIT // width
        else:
            width, height = width * HIGH_FIT // height, HIGH_FIT
    if width > HIGH_SHORT and height > HIGH_SHORT:
        if width > height:
            width, height = width * HIGH_SHORT // height, HIGH_SHORT
        else:
            width, height = HIGH_SHORT, height * HIGH_SHORT // width
    return max(width, 1), max(height, 1)


def low_detail_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, LOW_FIT / width, LOW_FIT / height)
    return max(int(width * scale), 1), max(int(height * scale), 1)


def image_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return LOW_TOKENS
    w, h = high_detail_size(width, height)
    return LOW_TOKENS + TILE_TOKENS * math.ceil(w / TILE) * math.ceil(h / TILE)


def resolve_detail(detail: str, width: int, height: int) -> str:
    if detail in ("low", "high"):
        return detail
    return "low" if width <= LOW_FIT and height <= LOW_FIT else "high"


def prepare_image(name: str, data: bytes, detail: str = "auto", max_bytes: int = 20 * 1024 * 1024) -> PreparedImage:
    """Check, normalise, scale and encode one uploaded image. Raises ImageRejected with a reason a person understands."""
    if not data:
        raise ImageRejected(name, "the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(name, f"the file is {len(data) / 1_048_576:.1f} MB; the limit is {max_bytes / 1_048_576:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageRejected(name, f"it is {image.width}×{image.height} pixels; the limit is "
                                          f"{MAX_PIXELS // 1_000_000} megapixels")
            if image.format not in ALLOWED_FORMATS:
                raise ImageRejected(name, f"{image.format or 'this'} images are not supported; use PNG, JPEG, WebP or GIF")
            image.seek(0)  # the first frame of an animation
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(name, "it is far too large when decoded (a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageRejected(name, "it is not an image (PNG, JPEG, WebP or GIF), whatever its name says") from None
    except (OSError, SyntaxError, ValueError):
        raise ImageRejected(name, "the file is damaged or truncated") from None
    image = ImageOps.exif_transpose(image)
    image = _to_rgb_or_rgba(image)
    chosen = resolve_detail(detail, image.width, image.height)
    size = low_detail_size(*image.size) if chosen == "low" else high_detail_size(*image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=90, optimize=True)
        mime = "image/jpeg"
    return PreparedImage(name, mime, buffer.getvalue(), image.width, image.height, chosen,
                         image_tokens(image.width, image.height, chosen))


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGBA when any pixel is transparent, else RGB; 16-bit and CMYK converted by value, not by truncation."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale: scale 0..65535 down to 0..255
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        if image.getextrema()[3][0] == 255:  # fully opaque: no need for PNG
            return image.convert("RGB")
        return image
    return image.convert("RGB")
