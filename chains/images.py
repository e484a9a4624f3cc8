"""Images for the chosen deployment's model, prepared with Pillow the way Azure itself scales them for that model, so
nothing is sent that the model would throw away, and priced with that model's image rule before sending.

- The format is sniffed from the bytes (only the PNG, JPEG, WebP and GIF decoders may parse them), not the file name.
- Size guards before decoding: the file's bytes, then its declared pixel count (a per-call check on `image.size`,
  so no global Pillow or warnings state is changed: Streamlit runs sessions in threads).
- Big phone photos (108, 200 MP): a JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft: libjpeg scales while
  decoding), the largest reduction still at least the size the model's rule scales to, so the pixel guard applies to
  what is decoded. Only one-pass JPEGs (sequential, a single scan: what cameras write) are read that way when over the
  guard: libjpeg buffers a progressive or multi-scan file whole, as DCT coefficients, whatever the output scale. Other
  formats, and JPEGs over the guard even at 1/8, are refused as before; the byte limit applies to all. Output size
  and tokens are computed from the original size: exactly what Azure makes of the original.
- EXIF orientation applied; first frame of animations; CMYK and ICC-tagged images converted to sRGB; 16-bit scaled by
  value; palette, LA and tRNS transparency kept.
- The rule (config/capabilities.py; None is gpt-4o's tile rule, 85/170) decides the size and the price:
  - tile (gpt-4o, gpt-4o-mini, gpt-5, gpt-5.1, o1, o3): high fits `max_side`² (2048), then the short side down to
    `short_side` (768), and costs `base + tile` per 512-px tile; low fits `low_side`² (512) and costs `base`.
  - patch (gpt-5-mini, gpt-5-nano, gpt-5.2, gpt-5.4*, gpt-5.5, o4-mini, gpt-4.1-mini/nano): fit `max_side`² (low:
    `low_max_side`² where the model has one), count 32-px patches, shrink to at most `patch_budget` (low:
    `low_patch_budget`) with OpenAI's formula, and cost ceil(patches × multiplier). There is no 768-px short side: a
    1024×768 image stays 1024×768 on gpt-5-mini.
  Never upscaled. The image sent is the size the model processes, so Azure scales it no further.
- auto: OpenAI documents that the model picks from the image size. We resolve it here and send the resolved detail, so
  the estimate is exact and computed from the image actually sent: on a tile rule low when the image already fits the
  low square (Azure then sees the same pixels, and low costs `base`, not `base + tile`), else high; on a patch rule
  high, unless low gives the same pixels for fewer tokens.
- Metadata (EXIF, ICC, text chunks) stripped; JPEG quality 90 without chroma subsampling (keeps coloured text in
  screenshots sharp), or PNG when some pixel is transparent.
"""
from __future__ import annotations

import base64
import hashlib
import io
import math
import re
import struct
from dataclasses import dataclass, field
from decimal import Decimal

from PIL import ExifTags, Image, ImageCms, JpegImagePlugin, UnidentifiedImageError

from config.capabilities import ImageRule, PatchRule, TileRule

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif"]
ALLOWED_NAMES = "PNG, JPEG, WebP or GIF"
MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs); phones make 12-50 MP,
# some 108 or 200 MP: those JPEGs are decoded reduced, and it is the reduced size that must stay under this
# gpt-4o's tile rule, the default when no rule is given (kept as constants for older callers)
LOW_TOKENS, TILE_TOKENS, TILE = 85, 170, 512
HIGH_FIT, HIGH_SHORT, LOW_FIT = 2048, 768, 512
GPT4O_RULE = TileRule(base_tokens=LOW_TOKENS, tile_tokens=TILE_TOKENS, max_side=HIGH_FIT, short_side=HIGH_SHORT,
                      low_side=LOW_FIT)
PATCH = 32  # the side of a patch, in pixels
JPEG_QUALITY = 90

# Signatures of the allowed formats: a file that starts like one but cannot be opened is damaged, not "not an image".
_ALLOWED_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
# Formats people commonly try, named in the refusal (Pillow is never asked to parse them).
_OTHER_SIGNATURES = ((b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"),
                     (b"8BPS", "Photoshop (PSD)"), (b"\x00\x00\x01\x00", "ICO"))
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
                b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_JPEG_ONE_PASS_FRAMES = (0xC0, 0xC1)  # baseline and extended sequential, Huffman-coded: what cameras write
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # every SOFn (C4 DHT, C8 reserved, CC DAC are not)
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # past stuffed FF00, restarts and fill bytes
_ORIENTATION_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageRejected(ValueError):
    """An uploaded file that cannot be sent; `str()` is "<file name>: <reason>", written for the person."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason

    def __reduce__(self):  # picklable despite the two-argument constructor
        return type(self), (self.name, self.reason)


@dataclass(frozen=True)
class PreparedImage:
    name: str
    mime: str
    data: bytes
    width: int
    height: int
    detail: str  # "low" or "high": what is sent
    tokens: int
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def extension(self) -> str:
        return "png" if self.mime == "image/png" else "jpg"

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


def _rule(rule: ImageRule | None) -> ImageRule:
    return GPT4O_RULE if rule is None else rule


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Fit within side×side keeping the aspect ratio, never upscaled (integer arithmetic, as Azure's count)."""
    if width > side or height > side:
        if width > height:
            width, height = side, height * side // width
        else:
            width, height = width * side // height, side
    return max(width, 1), max(height, 1)


def patch_count(width: int, height: int) -> int:
    """32-px patches covering the image."""
    return math.ceil(width / PATCH) * math.ceil(height / PATCH)


def _within_patch_budget(width: int, height: int, budget: int) -> tuple[int, int]:
    """OpenAI's shrink for a patch rule: over `budget` patches, scale by s = sqrt(32²·budget/(w·h)), corrected so that
    whole patches fit (s' = s·min(floor(w·s/32)/(w·s/32), floor(h·s/32)/(h·s/32))), to floor(w·s')×floor(h·s')."""
    if patch_count(width, height) <= budget:
        return width, height
    scale = math.sqrt(PATCH * PATCH * budget / (width * height))
    across, down = width * scale / PATCH, height * scale / PATCH
    scale *= min(math.floor(across) / across, math.floor(down) / down)
    return max(math.floor(width * scale), 1), max(math.floor(height * scale), 1)


def _patch_sides(rule: PatchRule, detail: str) -> tuple[int, int]:
    """(max side, patch budget) of a patch rule at `detail`: low has its own where the model has them."""
    if detail == "low":
        return rule.low_max_side or rule.max_side, rule.low_patch_budget or rule.patch_budget
    return rule.max_side, rule.patch_budget


def detail_size(width: int, height: int, detail: str, rule: ImageRule | None = None) -> tuple[int, int]:
    """The size the model processes the image at, at "low" or (anything else) "high" detail, under `rule` (None:
    gpt-4o). Tile: high fits max_side², then the short side to short_side; low fits low_side². Patch: fits the
    detail's max side, then shrinks to its patch budget. Never upscaled; a fixed point (the size sent is not scaled
    again)."""
    rule = _rule(rule)
    if isinstance(rule, PatchRule):
        side, budget = _patch_sides(rule, detail)
        return _within_patch_budget(*_fit(width, height, side), budget)
    if detail == "low":
        scale = min(1.0, rule.low_side / width, rule.low_side / height)
        return max(int(width * scale), 1), max(int(height * scale), 1)
    width, height = _fit(width, height, rule.max_side)
    short = rule.short_side
    if width > short and height > short:
        if width > height:
            width, height = width * short // height, short
        else:
            width, height = short, height * short // width
    return max(width, 1), max(height, 1)


def high_detail_size(width: int, height: int, rule: ImageRule | None = None) -> tuple[int, int]:
    """The high-detail size under `rule`; for gpt-4o (None): fit within 2048×2048, then shortest side to 768."""
    return detail_size(width, height, "high", rule)


def low_detail_size(width: int, height: int, rule: ImageRule | None = None) -> tuple[int, int]:
    """The low-detail size under `rule`; for gpt-4o (None): fit within 512×512, never upscaled."""
    return detail_size(width, height, "low", rule)


def image_tokens(width: int, height: int, detail: str, rule: ImageRule | None = None) -> int:
    """Azure's price of one image of this (original) size at `detail` ("low", else high) under `rule` (None: gpt-4o).
    Tile: base at low, else base + tile per 512-px tile of the high-detail size. Patch: ceil(patches × multiplier)
    of the detail's size."""
    rule = _rule(rule)
    if isinstance(rule, PatchRule):
        return math.ceil(Decimal(patch_count(*detail_size(width, height, detail, rule))) * rule.multiplier)
    if detail == "low":
        return rule.base_tokens
    w, h = detail_size(width, height, "high", rule)
    return rule.base_tokens + rule.tile_tokens * math.ceil(w / TILE) * math.ceil(h / TILE)


def resolve_detail(detail: str, width: int, height: int, rule: ImageRule | None = None) -> str:
    """low/high as asked. auto: on a tile rule low when the image already fits the low square, else high; on a patch
    rule high, unless low gives the model the same pixels for fewer tokens."""
    if detail in ("low", "high"):
        return detail
    rule = _rule(rule)
    if isinstance(rule, PatchRule):
        same = detail_size(width, height, "low", rule) == detail_size(width, height, "high", rule)
        cheaper = image_tokens(width, height, "low", rule) < image_tokens(width, height, "high", rule)
        return "low" if same and cheaper else "high"
    return "low" if width <= rule.low_side and height <= rule.low_side else "high"


def prepare_image(name: str, data: bytes, detail: str = "auto", max_bytes: int = 20 * 1024 * 1024,
                  max_pixels: int = MAX_PIXELS, *, rule: ImageRule | None = None) -> PreparedImage:
    """Check, normalise, scale and encode one uploaded image for a model with image `rule` (the deployment's
    `image_rule`; None: gpt-4o's tile rule); ImageRejected carries a reason a person understands."""
    image = _open_checked(name, data, max_bytes)
    width, height = image.size  # as stored: every size rule is symmetric, so orientation can wait
    chosen = resolve_detail(detail, width, height, rule)
    size = detail_size(width, height, chosen, rule)
    scale = 1
    if isinstance(image, JpegImagePlugin.JpegImageFile) and size != image.size:  # JPEG, or MPO (its first frame)
        # decode at 1/2, 1/4 or 1/8 scale, the largest still at least `size` in both directions: a 108 MP photo
        # becomes 1500×1125 (7 MB) instead of 12000×9000 (430 MB); the final resize below then makes exactly `size`
        drafted = image.draft(None, size)
        scale = round(width / drafted[1][2]) if drafted else 1
    _check_pixels(name, image, data, (width, height), scale, max_pixels)
    try:
        image.load()
        orientation = _orientation(image)
        image = _normalise_mode(image)
    except Image.DecompressionBombError:
        raise ImageRejected(name, "it is far too large when decoded (a decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected(name, "the file is damaged or truncated") from None
    if size != image.size:  # Pillow premultiplies alpha while resampling RGBA: no colour bleeds from transparent pixels
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    image = _to_srgb(image)
    if orientation in _ORIENTATION_TRANSPOSE:
        image = image.transpose(_ORIENTATION_TRANSPOSE[orientation])
    if image.mode == "RGBA" and image.getextrema()[3][0] == 255:  # fully opaque: JPEG will do
        image = image.convert("RGB")
    image.info = {}  # PNG would otherwise copy the source's ICC profile into the output
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
        mime = "image/jpeg"
    # the size was computed from the original's (`size`, transposed with it), and so is the price: what Azure charges
    return PreparedImage(name, mime, buffer.getvalue(), image.width, image.height, chosen,
                         image_tokens(width, height, chosen, rule))


def _open_checked(name: str, data: bytes, max_bytes: int) -> Image.Image:
    """Open without decoding, after the byte limit, refusing other formats; the pixel limit is checked by the caller,
    on the size that will be decoded."""
    if not data:
        raise ImageRejected(name, "the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(name, f"the file is {_megabytes(len(data))}; the limit is {_megabytes(max_bytes)}")
    try:
        if data.startswith(_JPEG_SIGNATURE):
            # the plugin Image.open would pick for these bytes (JPEG, or MPO for multi-picture files), minus Pillow's
            # own pixel check: it would refuse a 200 MP photo (its hard limit is 179 MP) that we decode at 1/8 scale.
            # Our guard in _check_pixels replaces it for JPEG; every other format still passes both.
            return JpegImagePlugin.jpeg_factory(io.BytesIO(data))
        return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError:  # Pillow's own hard limit, far above ours
        raise ImageRejected(name, "it is far too large when decoded (a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageRejected(name, _unidentified_reason(data)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error):
        raise ImageRejected(name, "the file is damaged or truncated") from None


def _check_pixels(name: str, image: Image.Image, data: bytes, original: tuple[int, int], scale: int,
                  max_pixels: int) -> None:
    """The decompression-bomb guard, before any decoding, on the pixels that will be decoded: the declared size, or
    for a one-pass JPEG drafted to 1/`scale` the reduced size (`image.size` after the draft)."""
    width, height = original
    if width * height <= max_pixels:
        return
    limit = f"it is {width}×{height} pixels; the limit is {max_pixels / 1_000_000:g} megapixels"
    if scale == 1:
        raise ImageRejected(name, limit)
    one_pass = _jpeg_is_one_pass(data)
    if one_pass is None:
        raise ImageRejected(name, "the file is damaged or truncated")
    if not one_pass:  # libjpeg would hold all its coefficients, ~3 bytes a pixel, at any scale
        raise ImageRejected(name, f"{limit} (a JPEG may be larger when saved as cameras save photos: baseline, "
                                  "not progressive)")
    if image.width * image.height > max_pixels:
        raise ImageRejected(name, f"{limit}, and even read at 1/{scale} scale it is "
                                  f"{image.width * image.height / 1_000_000:.3g} megapixels")


def _jpeg_is_one_pass(data: bytes) -> bool | None:
    """True for a sequential JPEG whose one scan holds every component (what cameras write): libjpeg then decodes it
    a row of blocks at a time, so a reduced decode needs memory only for the reduced image. A progressive, multi-scan,
    lossless or arithmetic-coded file, or one that cannot be followed, is False; None when the data ends first."""
    position, components, length = 2, None, len(data)
    while position + 4 <= length:
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        segment = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in _JPEG_FRAMES:
            if marker not in _JPEG_ONE_PASS_FRAMES or components is not None or position + 10 > length:
                return False
            components = data[position + 9]
        elif marker == 0xDA:  # the first scan: it must hold every component, and be followed by the end of image
            if components is None or position + 5 > length or data[position + 4] != components:
                return False
            following = _JPEG_NEXT_MARKER.search(data, position + 2 + segment)
            return None if following is None else following.group()[1] == 0xD9
        elif not (0xE0 <= marker <= 0xEF or marker in (0xDB, 0xC4, 0xDD, 0xFE)):  # APPn, DQT, DHT, DRI, COM
            return False
        position += 2 + segment
    return None


def _unidentified_reason(data: bytes) -> str:
    head = data[:32]
    if head.startswith(_ALLOWED_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "the file is damaged or truncated"
    kind = next((kind for signature, kind in _OTHER_SIGNATURES if head.startswith(signature)), None)
    if kind is None and head[4:8] == b"ftyp":
        kind = _FTYP_BRANDS.get(head[8:12])
    if kind is None and b"<svg" in data[:2048].lower():
        kind = "SVG"
    if kind:
        return f"{kind} images are not supported; use {ALLOWED_NAMES}"
    return f"it is not an image ({ALLOWED_NAMES}), whatever its name says"


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # broken EXIF is metadata we drop anyway; the picture itself is fine
        return 1


def _normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA or CMYK (converted later with its profile); 16-bit scaled by value, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit greyscale: 0..65535 down to 0..255
        transparent = image.info.get("transparency")
        image = image.point(lambda v: v / 256).convert("L")
        if isinstance(transparent, int):
            image.info["transparency"] = transparent // 256
    if "transparency" in image.info or image.mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")  # Pillow applies palette and tRNS transparency in this conversion
    return image if image.mode in ("RGB", "RGBA", "CMYK") else image.convert("RGB")


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB or RGBA in sRGB: an embedded ICC profile (Display P3, Adobe RGB, CMYK press profiles) is applied, since the
    profile itself is stripped and the model reads untagged pixels as sRGB."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            alpha = image.getchannel("A") if image.mode == "RGBA" else None
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            rgb = ImageCms.profileToProfile(image.convert("RGB") if alpha is not None else image, source,
                                            ImageCms.createProfile("sRGB"), outputMode="RGB")
            if alpha is not None:
                rgb.putalpha(alpha)
            return rgb
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unusable profile: convert by value below
    return image if image.mode in ("RGB", "RGBA") else image.convert("RGB")


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.2f}".rstrip("0").rstrip(".") + " MB"
