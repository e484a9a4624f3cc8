"""Image preparation with Pillow, checked against Azure's scaling and tile formula, and the bad-input corpus."""
from __future__ import annotations

import io
import math
import struct
import zlib

import pytest
from langchain_core.messages import HumanMessage
from PIL import Image

from chains.images import ImageRejected, high_detail_size, image_tokens, prepare_image
from chains.multimodal import ImagesNotAccepted, check_deployment_accepts, human_message, message_image_tokens
from chains.tokens import estimate_prompt_tokens
from config.catalog import load_catalog


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def formula(width: int, height: int) -> tuple[int, int]:
    """Azure's documented scaling, written out independently: fit 2048 square, then shortest side 768."""
    scale = min(1, 2048 / max(width, height))
    w, h = int(width * scale), int(height * scale)
    scale = min(1, 768 / min(w, h))
    return int(w * scale), int(h * scale)


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (2048, 2048), (1024, 768), (600, 400), (100, 5000),
                                  (5000, 100), (800, 800), (300, 200)])
def test_high_detail_output_size_and_tokens_follow_azure(size):
    prepared = prepare_image("p.png", encode(Image.new("RGB", size, "teal")), "high")
    expected = formula(*size)
    assert abs(prepared.width - expected[0]) <= 1 and abs(prepared.height - expected[1]) <= 1
    assert (prepared.width, prepared.height) == high_detail_size(*size)
    tiles = math.ceil(prepared.width / 512) * math.ceil(prepared.height / 512)
    assert prepared.tokens == 85 + 170 * tiles and prepared.detail == "high"


@pytest.mark.parametrize("size", [(4000, 3000), (512, 512), (300, 900)])
def test_low_detail_fits_512_and_costs_85(size):
    prepared = prepare_image("p.png", encode(Image.new("RGB", size)), "low")
    assert prepared.width <= 512 and prepared.height <= 512 and prepared.tokens == 85
    assert max(prepared.width, prepared.height) == min(512, max(size))  # never upscaled


def test_auto_is_low_for_small_and_high_for_large_images():
    assert prepare_image("s.png", encode(Image.new("RGB", (400, 300))), "auto").detail == "low"
    assert prepare_image("l.png", encode(Image.new("RGB", (1400, 900))), "auto").detail == "high"


def test_exif_orientation_is_applied_and_metadata_stripped():
    image = Image.new("RGB", (1200, 800), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° when shown
    exif[0x010F] = "SecretCam"  # camera make: metadata that must not leave
    prepared = prepare_image("photo.jpg", encode(image, "JPEG", exif=exif), "high")
    assert (prepared.width, prepared.height) == (768, 1152)  # portrait after rotation
    assert b"SecretCam" not in prepared.data and not Image.open(io.BytesIO(prepared.data)).getexif()


@pytest.mark.parametrize("mode, expected_mime", [("CMYK", "image/jpeg"), ("I;16", "image/jpeg"), ("L", "image/jpeg"),
                                                 ("LA", "image/png"), ("RGBA", "image/png"), ("P", "image/jpeg")])
def test_modes_are_converted(mode, expected_mime):
    image = Image.new(mode, (64, 64))
    if mode in ("LA", "RGBA"):
        image.putpixel((0, 0), (0, 0) if mode == "LA" else (0, 0, 0, 0))  # one transparent pixel
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    prepared = prepare_image("m", encode(image, fmt), "low")
    assert prepared.mime == expected_mime
    assert Image.open(io.BytesIO(prepared.data)).mode in ("RGB", "RGBA")


def test_sixteen_bit_values_are_scaled_not_clipped():
    image = Image.new("I;16", (8, 8), 32768)  # mid-grey in 16 bits
    value = Image.open(io.BytesIO(prepare_image("g.png", encode(image), "low").data)).convert("L").getpixel((0, 0))
    assert 120 <= value <= 136


def test_palette_with_transparency_keeps_it():
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 1
    assert prepare_image("p.png", encode(image, transparency=1), "low").mime == "image/png"


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (50, 50), color) for color in ("red", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = Image.open(io.BytesIO(prepare_image("a.gif", data, "low").data)).convert("RGB")
    red, green, blue = image.getpixel((25, 25))
    assert red > 200 and blue < 60


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but holds almost no data: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, data, reason", [
    ("empty.png", b"", "empty"),
    ("cut.png", encode(Image.new("RGB", (400, 400), "blue"))[:300], "damaged or truncated"),
    ("noise.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, ("damaged or truncated", "not an image")),
    ("notes.png", b"These are my meeting notes, not a picture.", "not an image"),
    ("bomb.png", _png_header_only(60_000, 60_000), ("decompression bomb", "megapixels")),
    ("wide.png", _png_header_only(200_000, 300), "megapixels"),
    ("scan.bmp", encode(Image.new("RGB", (10, 10)), "BMP"), "BMP images are not supported"),
    ("scan.tif", encode(Image.new("RGB", (10, 10)), "TIFF"), "TIFF images are not supported"),
])
def test_bad_input_is_named_with_its_reason(name, data, reason):
    with pytest.raises(ImageRejected) as caught:
        prepare_image(name, data)
    reasons = reason if isinstance(reason, tuple) else (reason,)
    assert caught.value.name == name and any(r in caught.value.reason for r in reasons)
    assert str(caught.value).startswith(name)


def test_over_the_size_limit():
    with pytest.raises(ImageRejected, match="limit is 1 MB"):
        prepare_image("big.png", b"\x89PNG" + b"0" * 2_000_000, max_bytes=1_048_576)


def test_message_blocks_and_token_estimate_follow_the_formula():
    images = [prepare_image("a.png", encode(Image.new("RGB", (1600, 1200))), "high"),
              prepare_image("b.png", encode(Image.new("RGB", (1600, 1200))), "low")]
    message = human_message("what is this?", images, "m1")
    assert message.content[0] == {"type": "text", "text": "what is this?"}
    assert [b["image_url"]["detail"] for b in message.content[1:]] == ["high", "low"]
    assert message.content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert message_image_tokens([message]) == image_tokens(1600, 1200, "high") + 85 == 85 + 170 * 4 + 85
    text_only = estimate_prompt_tokens([HumanMessage("what is this?")], "gpt-4o")
    assert estimate_prompt_tokens([message], "gpt-4o") == text_only + 85 + 170 * 4 + 85


def test_text_only_deployment_refuses_images():
    catalog = load_catalog()
    image = prepare_image("a.png", encode(Image.new("RGB", (10, 10))), "low")
    with pytest.raises(ImagesNotAccepted, match="does not accept images"):
        check_deployment_accepts(catalog.get("gpt-35-turbo"), [image])
    check_deployment_accepts(catalog.get("gpt-4o"), [image])
