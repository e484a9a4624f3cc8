"""Image preparation with Pillow on generated images, checked against Azure's scaling and tile formula, and the
bad-input corpus (each file named with its reason)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import pickle
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat, JpegImagePlugin, PngImagePlugin

from chains.images import ImageRejected, high_detail_size, image_tokens, low_detail_size, prepare_image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def formula(width: int, height: int) -> tuple[int, int]:
    """Azure's documented scaling, written out independently: fit 2048 square, then shortest side 768, never up."""
    scale = min(1, 2048 / max(width, height))
    w, h = int(width * scale), int(height * scale)
    scale = min(1, 768 / min(w, h))
    return int(w * scale), int(h * scale)


def tokens_formula(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    w, h = formula(width, height)
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def halves(size: tuple[int, int], left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    """Left half one colour, right half another: shows where a picture ended up after rotating and scaling."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


# --- sizes, detail and tokens ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (2048, 2048), (1024, 768), (600, 400), (100, 5000),
                                  (5000, 100), (800, 800), (300, 200), (2049, 769), (1, 1)])
def test_high_detail_output_size_and_tokens_follow_azure(size):
    prepared = prepare_image("p.png", encode(Image.new("RGB", size, "teal")), "high")
    expected = formula(*size)
    assert abs(prepared.width - expected[0]) <= 1 and abs(prepared.height - expected[1]) <= 1
    assert (prepared.width, prepared.height) == high_detail_size(*size) == decode(prepared.data).size
    tiles = math.ceil(prepared.width / 512) * math.ceil(prepared.height / 512)
    assert prepared.tokens == 85 + 170 * tiles == tokens_formula(*size, "high") and prepared.detail == "high"


@pytest.mark.parametrize("size", [(4000, 3000), (512, 512), (300, 900), (100, 80), (513, 10)])
def test_low_detail_fits_512_never_upscales_and_costs_85(size):
    prepared = prepare_image("p.png", encode(Image.new("RGB", size)), "low")
    assert prepared.width <= 512 and prepared.height <= 512 and prepared.tokens == 85
    assert max(prepared.width, prepared.height) == min(512, max(size))  # never upscaled
    assert decode(prepared.data).size == (prepared.width, prepared.height) == low_detail_size(*size)


def test_the_scaled_size_is_stable_so_azure_scales_the_sent_image_no_further():
    for size in [(4000, 3000), (5000, 100), (2049, 769), (1023, 7000), (777, 9999)]:
        once = high_detail_size(*size)
        assert high_detail_size(*once) == once
        assert image_tokens(*once, "high") == image_tokens(*size, "high")


@pytest.mark.parametrize("size, expected", [((400, 300), "low"), ((512, 512), "low"), ((513, 512), "high"),
                                            ((512, 600), "high"), ((1400, 900), "high")])
def test_auto_is_low_when_the_image_fits_512_else_high_and_priced_as_sent(size, expected):
    prepared = prepare_image("a.png", encode(Image.new("RGB", size)), "auto")
    assert prepared.detail == expected
    assert prepared.tokens == tokens_formula(prepared.width, prepared.height, expected)


@pytest.mark.parametrize("size", [(4000, 3000), (1024, 768), (300, 200), (900, 700)])
@pytest.mark.parametrize("detail", ["low", "high", "auto"])
def test_without_a_rule_it_is_gpt_4os_tile_rule(size, detail):
    from config.capabilities import family_capabilities

    data = encode(Image.new("RGB", size, "teal"))
    default = prepare_image("a.png", data, detail)
    gpt_4o = prepare_image("a.png", data, detail, rule=family_capabilities("gpt-4o").image_rule)
    assert (default.width, default.height, default.detail, default.tokens, default.data) == \
        (gpt_4o.width, gpt_4o.height, gpt_4o.detail, gpt_4o.tokens, gpt_4o.data)
    assert default.tokens == tokens_formula(*size, default.detail)


def test_large_jpeg_is_decoded_reduced_yet_scaled_exactly_and_keeps_its_content():
    prepared = prepare_image("big.jpg", encode(halves((4000, 3000)), "JPEG", quality=95), "high")
    assert (prepared.width, prepared.height) == (1024, 768)
    image = decode(prepared.data)
    assert _close(image.getpixel((100, 384)), (255, 0, 0)) and _close(image.getpixel((924, 384)), (0, 0, 255))


# --- orientation, metadata, colour ------------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied_like_a_viewer_shows_it(orientation, fmt):
    source = halves((1200, 800))
    source.paste((0, 255, 0), (0, 0, 100, 100))  # a green corner: tells flips from rotations
    exif = source.getexif()
    exif[0x0112] = orientation
    prepared = prepare_image(f"photo.{fmt.lower()}", encode(source, fmt, exif=exif.tobytes()), "high")
    shown = ImageOps.exif_transpose(source)  # Pillow's viewer-side reading of the same tag is the reference
    assert (prepared.width, prepared.height) == high_detail_size(*shown.size)
    expected = shown.resize((prepared.width, prepared.height))
    image = decode(prepared.data)
    w, h = prepared.width, prepared.height
    corners_and_quarters = [(20, 20), (w - 20, 20), (20, h - 20), (w - 20, h - 20),
                            (w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    for x, y in corners_and_quarters:
        assert _close(image.getpixel((x, y)), expected.getpixel((x, y))), (orientation, x, y)


def test_metadata_is_stripped():
    image = Image.new("RGB", (1200, 800), "red")
    exif = image.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "SecretCam"  # camera make
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPS latitude
    prepared = prepare_image("photo.jpg", encode(image, "JPEG", exif=exif, comment=b"hidden note"), "high")
    assert (prepared.width, prepared.height) == (768, 1152)  # portrait after rotation
    out = decode(prepared.data)
    assert b"SecretCam" not in prepared.data and b"hidden note" not in prepared.data
    assert not out.getexif() and "icc_profile" not in out.info and "comment" not in out.info

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Secret")
    transparent = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    prepared = prepare_image("t.png", encode(transparent, pnginfo=text, icc_profile=icc), "low")
    assert prepared.mime == "image/png" and b"Jane Secret" not in prepared.data
    assert "icc_profile" not in decode(prepared.data).info


def _swapped_red_blue_profile() -> bytes:
    """An sRGB ICC profile whose red and blue primaries are exchanged: pure red pixels tagged with it are blue."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    entries = {}
    for index in range(struct.unpack(">I", data[128:132])[0]):
        signature, offset, size = struct.unpack(">4sII", data[132 + 12 * index:144 + 12 * index])
        entries[signature] = (index, offset, size)
    (red, red_offset, red_size), (blue, blue_offset, blue_size) = entries[b"rXYZ"], entries[b"bXYZ"]
    struct.pack_into(">4sII", data, 132 + 12 * red, b"rXYZ", blue_offset, blue_size)
    struct.pack_into(">4sII", data, 132 + 12 * blue, b"bXYZ", red_offset, red_size)
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_embedded_colour_profile_is_applied_before_it_is_stripped(fmt):
    tagged = encode(Image.new("RGB", (64, 64), (255, 0, 0)), fmt, icc_profile=_swapped_red_blue_profile())
    image = decode(prepare_image(f"p.{fmt.lower()}", tagged, "low").data)
    assert _close(image.getpixel((32, 32)), (0, 0, 255), 12)


def test_a_broken_colour_profile_is_ignored_not_fatal():
    image = decode(prepare_image("p.jpg", encode(Image.new("RGB", (64, 64), (255, 0, 0)), "JPEG",
                                                  icc_profile=b"not a profile" * 20), "low").data)
    assert _close(image.getpixel((32, 32)), (255, 0, 0))


@pytest.mark.parametrize("mode, colour, expected_mime", [
    ("CMYK", (0, 255, 255, 0), "image/jpeg"), ("I;16", 0, "image/jpeg"), ("L", 200, "image/jpeg"),
    ("1", 1, "image/jpeg"), ("LA", (10, 0), "image/png"), ("RGBA", (0, 0, 0, 0), "image/png"),
    ("RGBA", (1, 2, 3, 255), "image/jpeg"), ("P", 3, "image/jpeg")])
def test_modes_are_converted(mode, colour, expected_mime):
    image = Image.new(mode, (64, 64), colour)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    prepared = prepare_image("m", encode(image, fmt), "low")
    assert prepared.mime == expected_mime
    assert decode(prepared.data).mode in ("RGB", "RGBA")


def test_cmyk_colours_survive_scaling():
    prepared = prepare_image("c.jpg", encode(Image.new("CMYK", (3000, 2000), (0, 255, 255, 0)), "JPEG"), "high")
    assert (prepared.width, prepared.height) == (1152, 768)
    assert _close(decode(prepared.data).getpixel((32, 32)), (255, 0, 0))


def test_sixteen_bit_values_are_scaled_not_clipped():
    image = Image.new("I;16", (8, 8), 32768)  # mid-grey in 16 bits
    value = decode(prepare_image("g.png", encode(image), "low").data).convert("L").getpixel((0, 0))
    assert 120 <= value <= 136


@pytest.mark.parametrize("mode, colour", [("P", 1), ("L", 7), ("RGB", (1, 2, 3)), ("I;16", 1024)])
def test_transparency_declared_by_palette_or_trns_is_kept(mode, colour):
    image = Image.new(mode, (32, 32), colour)
    if mode == "P":
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    prepared = prepare_image("p.png", encode(image, transparency=colour), "low")
    assert prepared.mime == "image/png" and decode(prepared.data).getpixel((5, 5))[3] == 0


def test_transparent_pixels_do_not_bleed_into_edges_when_scaled():
    image = Image.new("RGBA", (2048, 1024), (0, 255, 0, 0))  # invisible green
    image.paste((255, 0, 0, 255), (1024, 0, 2048, 1024))  # opaque red
    out = decode(prepare_image("logo.png", encode(image), "low").data)
    for x in range(240, 272):
        red, green, _, alpha = out.getpixel((x, 100))
        assert alpha == 0 or green <= 8, (x, out.getpixel((x, 100)))


def test_the_picture_is_kept_jpeg_without_chroma_subsampling():
    source = Image.effect_mandelbrot((500, 400), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    source.paste((255, 0, 0), (10, 10, 12, 200))  # a thin red line, as in a screenshot of text
    prepared = prepare_image("m.png", encode(source), "high")
    out = decode(prepared.data)
    assert out.size == source.size and JpegImagePlugin.get_sampling(out) == 0  # 4:4:4
    assert max(ImageStat.Stat(ImageChops.difference(out, source)).mean) < 2.0
    assert _close(out.getpixel((11, 100)), (255, 0, 0), 40)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_first_frame_of_an_animation(fmt):
    frames = [Image.new("RGB", (50, 50), colour) for colour in ("red", "blue", "green")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    image = decode(prepare_image(f"a.{fmt.lower()}", data, "low").data).convert("RGB")
    assert _close(image.getpixel((25, 25)), (255, 0, 0))


def test_prepared_image_fields():
    prepared = prepare_image("a.png", encode(Image.new("RGB", (10, 10))), "low")
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()
    assert [f.name for f in dataclasses.fields(prepared)] == ["name", "mime", "data", "width", "height", "detail",
                                                              "tokens", "sha256"]
    assert prepared.data_url().startswith("data:image/jpeg;base64,") and prepared.extension == "jpg"


# --- bad input -------------------------------------------------------------------------------------------------------

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but holds almost no data: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _jpeg_claiming(width: int, height: int, progressive: bool = False) -> bytes:
    """A small real JPEG whose frame header is edited to claim other dimensions."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG", progressive=progressive))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("P", (16, 16)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # the logical screen
    return bytes(data)


def _noise(size=(300, 300)) -> Image.Image:
    return Image.frombytes("RGB", size, bytes((i * 7919 + i // 300 * 31) % 256 for i in range(size[0] * size[1] * 3)))


def _truncated(fmt: str) -> bytes:
    data = encode(_noise(), fmt)
    return data[: len(data) // 2]


def _bad_png_crc() -> bytes:
    data = bytearray(encode(Image.new("RGB", (20, 20))))
    data[29] ^= 0xFF  # IHDR's checksum
    return bytes(data)


BAD_INPUT = [
    ("empty.png", b"", "the file is empty"),
    ("cut.png", _truncated("PNG"), "damaged or truncated"),
    ("cut.jpg", _truncated("JPEG"), "damaged or truncated"),
    ("cut.gif", _truncated("GIF"), "damaged or truncated"),
    ("cut.webp", _truncated("WEBP"), "damaged or truncated"),
    ("stub.png", encode(Image.new("RGB", (400, 400)))[:20], "damaged or truncated"),
    ("bad-crc.png", _bad_png_crc(), "damaged or truncated"),
    ("noise.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "damaged or truncated"),
    ("notes.png", b"These are my meeting notes, not a picture.", "it is not an image"),
    ("page.jpg", b"<!doctype html><html><body>404</body></html>", "it is not an image"),
    ("bomb.png", _png_header_only(60_000, 60_000), "decompression bomb"),
    # a baseline JPEG is decoded at up to 1/8 scale (see test_big_photos.py): the guard applies to that size
    ("bomb.jpg", _jpeg_claiming(65_000, 65_000),
     "65000×65000 pixels; the limit is 40 megapixels, and even read at 1/8 scale it is 66 megapixels"),
    ("bomb.gif", _gif_claiming(65_535, 65_535), "decompression bomb"),
    ("wide.png", _png_header_only(200_000, 300), "200000×300 pixels; the limit is 40 megapixels"),
    ("poster.jpg", _jpeg_claiming(9000, 6000, progressive=True), "9000×6000 pixels; the limit is 40 megapixels (a "
     "JPEG may be larger when saved as cameras save photos: baseline, not progressive)"),
    ("scan.bmp", encode(Image.new("RGB", (10, 10)), "BMP"), "BMP images are not supported; use PNG, JPEG, WebP or GIF"),
    ("scan.tif", encode(Image.new("RGB", (10, 10)), "TIFF"), "TIFF images are not supported"),
    ("photo.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC images are not supported"),
    ("logo.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG images are not supported"),
    ("report.png", b"%PDF-1.7\n" + bytes(100), "PDF images are not supported"),
    ("favicon.png", encode(Image.new("RGB", (16, 16)), "ICO"), "ICO images are not supported"),
]


@pytest.mark.parametrize("name, data, reason", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_named_with_its_reason(name, data, reason):
    with pytest.raises(ImageRejected) as caught:
        prepare_image(name, data)
    assert caught.value.name == name and reason in caught.value.reason
    assert str(caught.value) == f"{name}: {caught.value.reason}"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89 MP; we stop at 40
def test_between_pillows_warning_and_error_it_is_our_limit_that_answers():
    with pytest.raises(ImageRejected, match="10000×10000 pixels"):
        prepare_image("huge.png", _png_header_only(10_000, 10_000))


def test_over_the_size_limit_is_refused_before_reading():
    with pytest.raises(ImageRejected, match=r"big.png: the file is 1.91 MB; the limit is 1 MB"):
        prepare_image("big.png", b"\x89PNG" + b"0" * 2_000_000, max_bytes=1_048_576)
    exactly = encode(Image.new("RGB", (10, 10)))
    assert prepare_image("ok.png", exactly, max_bytes=len(exactly)).width == 10


def test_the_pixel_limit_is_per_call_and_global_state_is_untouched():
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    with pytest.raises(ImageRejected, match="40×40 pixels; the limit is 0.001 megapixels"):
        prepare_image("a.png", encode(Image.new("RGB", (40, 40))), max_pixels=1000)
    assert prepare_image("a.png", encode(Image.new("RGB", (40, 40)))).width == 40
    assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before


def test_a_rejection_survives_pickling():
    copy = pickle.loads(pickle.dumps(ImageRejected("a.png", "the file is empty")))
    assert (copy.name, copy.reason, str(copy)) == ("a.png", "the file is empty", "a.png: the file is empty")


def _close(pixel, expected, tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected))
