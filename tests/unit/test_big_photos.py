"""Big phone photos (108, 200 MP JPEG): decoded at 1/2, 1/4 or 1/8 scale and scaled exactly as Azure scales the
original, never decoded at full size; everything else over the pixel guard, and every file over the byte limit, is
refused as before.

Most cases lower the guard (`max_pixels`) so that a 12 MP test photo stands for a 108 MP one under the real 40 MP;
the real 108 and 200 MP photos are generated once per module (about a second each)."""
from __future__ import annotations

import inspect
import io
import math
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFile, ImageOps, ImageStat

from chains.images import (
    ImageRejected,
    detail_size,
    high_detail_size,
    image_tokens,
    low_detail_size,
    prepare_image,
    resolve_detail,
)
from config.capabilities import family_capabilities
from tests.unit.test_images import decode
from tests.unit.test_images import encode as encode_image

GUARD = 4_000_000  # lowered guard: a 4000×3000 photo is over it, as a 108 MP photo is over the real 40 MP
ROOT = Path(__file__).resolve().parents[2]


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    """test_images' encoder, JPEG by default: phone photos are JPEGs."""
    return encode_image(image, fmt, **options)


def with_orientation(image: Image.Image, orientation: int, **options) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), **options)


def photo(size: tuple[int, int]) -> Image.Image:
    """Something like a photo: smooth colour gradients, a few hard edges, and a green block in the stored top-left
    corner that tells every rotation and flip apart."""
    w, h = size
    image = Image.merge("RGB", (Image.linear_gradient("L").resize(size), Image.radial_gradient("L").resize(size),
                                Image.linear_gradient("L").rotate(90).resize(size)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, w // 8, h // 8), fill=(0, 255, 0))
    draw.ellipse((w // 3, h // 3, w // 2, h // 2), fill=(250, 250, 250))
    for x in range(w // 2, w - w // 10, max(w // 40, 1)):  # bars: something for the resampling to get wrong
        draw.rectangle((x, h // 2, x + w // 80, h - h // 10), fill=(20, 20, 20))
    return image


def azure_size(width: int, height: int, detail: str) -> tuple[int, int]:
    """Azure's documented scaling, written out here independently of the module (integer arithmetic)."""
    if detail == "low":
        scale = min(1.0, 512 / width, 512 / height)
        return max(int(width * scale), 1), max(int(height * scale), 1)
    if max(width, height) > 2048:
        width, height = (2048, height * 2048 // width) if width > height else (width * 2048 // height, 2048)
    if min(width, height) > 768:
        width, height = (width * 768 // height, 768) if width > height else (768, height * 768 // width)
    return max(width, 1), max(height, 1)


def azure_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    w, h = azure_size(width, height, "high")
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def draft_size(stored: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """libjpeg's reduced decode: the largest of 1/8, 1/4, 1/2 (else 1) still at least `target`, sides rounded up."""
    scale = next(s for s in (8, 4, 2, 1) if s <= min(stored[0] // target[0], stored[1] // target[1]))
    return -(-stored[0] // scale), -(-stored[1] // scale)


def shown_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real baseline JPEG whose frame header is edited to claim other dimensions (nothing is decoded)."""
    data = bytearray(encode(Image.new("RGB", (16, 16))))
    struct.pack_into(">HH", data, data.index(b"\xff\xc0") + 5, height, width)
    return bytes(data)


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[str, tuple[int, int]]]:
    """(format, size) of every image prepare_image decodes, recorded as Pillow starts decoding it: the memory check.
    (tracemalloc cannot see Pillow's pixel buffers, which are allocated in C; the subprocess test measures RSS.)"""
    sizes: list[tuple[str, tuple[int, int]]] = []
    load = ImageFile.ImageFile.load

    def recording(self):
        if self.tile:  # not yet decoded
            sizes.append((self.format, self.size))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    return sizes


@pytest.fixture(scope="module")
def photo_4000x3000() -> Image.Image:
    return photo((4000, 3000))


# --- over the guard: decoded reduced, scaled exactly -----------------------------------------------------------------

@pytest.mark.parametrize("detail", ["high", "low", "auto"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_jpeg_over_the_guard_is_decoded_reduced_and_scaled_as_azure_scales_the_original(
        detail, orientation, photo_4000x3000, decoded):
    data = with_orientation(photo_4000x3000, orientation, quality=92)
    prepared = prepare_image("phone.jpg", data, detail, max_pixels=GUARD)
    during = list(decoded)

    chosen = "high" if detail == "auto" else detail
    shown = shown_size((4000, 3000), orientation)
    expected = azure_size(*shown, chosen)
    assert (prepared.width, prepared.height) == expected == decode(prepared.data).size
    assert expected == (high_detail_size(*shown) if chosen == "high" else low_detail_size(*shown))
    assert prepared.detail == chosen and prepared.tokens == azure_tokens(*shown, chosen) == image_tokens(*shown, chosen)

    # decoded once, at 1/2 (high) or 1/4 (low) in the stored orientation, under the guard: never at 12 MP
    target = azure_size(4000, 3000, chosen)
    assert during == [("JPEG", draft_size((4000, 3000), target))]
    assert during[0][1] == ((2000, 1500) if chosen == "high" else (1000, 750))

    # the pixels: a full-size decode, turned upright and resized with the same filter (catches a wrong rotation too)
    reference = ImageOps.exif_transpose(decode(data)).resize(expected, Image.Resampling.LANCZOS)
    assert mean_difference(decode(prepared.data), reference) < 2.0


@pytest.mark.parametrize("size", [(4001, 3001), (4095, 2049), (2049, 4097), (6001, 4501), (5000, 5000), (16000, 1000),
                                  (1000, 16000), (30000, 150)])
@pytest.mark.parametrize("detail", ["high", "low"])
def test_odd_sizes_give_exactly_the_size_and_price_azure_gives_the_original(size, detail, decoded):
    image = Image.new("RGB", size, (30, 60, 200))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2, size[1]), fill=(200, 60, 30))
    data = encode(image, quality=80)
    prepared = prepare_image("odd.jpg", data, detail, max_pixels=GUARD)

    expected = azure_size(*size, detail)
    assert (prepared.width, prepared.height) == expected
    assert expected == (high_detail_size(*size) if detail == "high" else low_detail_size(*size))
    assert prepared.tokens == azure_tokens(*size, detail) == image_tokens(*size, detail)

    assert decoded == [("JPEG", draft_size(size, expected))]
    reduced = decoded[0][1]
    assert reduced[0] >= expected[0] and reduced[1] >= expected[1]  # resized down to the target, never up
    assert reduced[0] * reduced[1] <= GUARD < size[0] * size[1]


@pytest.mark.parametrize("model, high, low", [("gpt-5-mini", (1408, 1056), (1408, 1056)),
                                              ("gpt-5.4-nano", (1824, 1368), (2048, 1536)),
                                              ("gpt-4o-mini", (1024, 768), (512, 384))])
@pytest.mark.parametrize("detail", ["high", "low", "auto"])
def test_the_reduced_decode_is_bounded_by_the_size_the_models_rule_keeps(model, high, low, detail, photo_4000x3000,
                                                                         decoded):
    """A patch model keeps more pixels than gpt-4o (no 768-px short side; gpt-5.4 low fits 2048 px): the draft is
    chosen for the chosen model's size, so the photo is never decoded smaller than that and then enlarged."""
    rule = family_capabilities(model).image_rule
    data = encode(photo_4000x3000, quality=92)
    prepared = prepare_image("phone.jpg", data, detail, rule=rule)  # the real guard: gpt-5.4 low needs all 12 MP
    during = list(decoded)
    chosen = resolve_detail(detail, 4000, 3000, rule)
    target = high if chosen == "high" else low
    assert (prepared.width, prepared.height) == target == detail_size(4000, 3000, chosen, rule) \
        == decode(prepared.data).size
    assert prepared.detail == chosen and prepared.tokens == image_tokens(4000, 3000, chosen, rule)
    assert during == [("JPEG", draft_size((4000, 3000), target))]
    assert during[0][1][0] >= target[0] and during[0][1][1] >= target[1]
    reference = decode(data).resize(target, Image.Resampling.LANCZOS)
    assert mean_difference(decode(prepared.data), reference) < 2.0


def test_a_phone_multi_picture_jpeg_is_read_reduced_too(photo_4000x3000, decoded):
    data = encode(photo_4000x3000, "MPO", save_all=True, append_images=[Image.new("RGB", (400, 300), "blue")])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    prepared = prepare_image("portrait.jpg", data, "high", max_pixels=GUARD)
    assert decoded == [("MPO", (2000, 1500))]
    assert (prepared.width, prepared.height) == (1024, 768)
    reference = photo_4000x3000.resize((1024, 768), Image.Resampling.LANCZOS)
    assert mean_difference(decode(prepared.data), reference) < 2.5


@pytest.mark.parametrize("mode, colour, shown", [("L", 200, (200, 200, 200)), ("CMYK", (0, 255, 255, 0), (255, 0, 0))])
def test_greyscale_and_cmyk_jpegs_over_the_guard_are_read_reduced(mode, colour, shown, decoded):
    prepared = prepare_image("scan.jpg", encode(Image.new(mode, (4000, 3000), colour)), "high", max_pixels=GUARD)
    assert (prepared.width, prepared.height) == (1024, 768) and decoded == [("JPEG", (2000, 1500))]
    assert all(abs(a - b) <= 24 for a, b in zip(decode(prepared.data).getpixel((500, 400)), shown))


# --- still refused ----------------------------------------------------------------------------------------------------

def test_the_guard_applies_to_the_reduced_size(photo_4000x3000, decoded):
    data = encode(photo_4000x3000, quality=80)
    assert prepare_image("a.jpg", data, "high", max_pixels=3_000_000).width == 1024  # 2000×1500 decoded: just fits
    decoded.clear()
    with pytest.raises(ImageRejected) as caught:
        prepare_image("a.jpg", data, "high", max_pixels=2_999_999)
    assert caught.value.reason == ("it is 4000×3000 pixels; the limit is 3 megapixels, "
                                   "and even read at 1/2 scale it is 3 megapixels")
    assert decoded == []  # refused before decoding


@pytest.mark.parametrize("size, reduced", [((60_000, 50_000), "46.9"), ((65_500, 65_500), "67")])
def test_a_jpeg_over_the_guard_even_at_one_eighth_is_refused_before_decoding(size, reduced, decoded):
    for detail in ("high", "low", "auto"):
        with pytest.raises(ImageRejected) as caught:
            prepare_image("huge.jpg", jpeg_claiming(*size), detail)
        assert caught.value.reason == (f"it is {size[0]}×{size[1]} pixels; the limit is 40 megapixels, "
                                       f"and even read at 1/8 scale it is {reduced} megapixels")
    assert decoded == []


def test_at_one_eighth_the_guard_is_met_or_not_to_the_pixel(decoded):
    data = encode(Image.new("RGB", (12_000, 1_000), "red"), quality=80)  # low: 512×42, decoded at 1/8: 1500×125
    assert prepare_image("strip.jpg", data, "low", max_pixels=1500 * 125).width == 512
    assert decoded == [("JPEG", (1500, 125))]
    with pytest.raises(ImageRejected, match="even read at 1/8 scale"):
        prepare_image("strip.jpg", data, "low", max_pixels=1500 * 125 - 1)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_other_formats_over_the_guard_are_refused_as_before(fmt, photo_4000x3000, decoded):
    data = encode(photo_4000x3000 if fmt != "GIF" else Image.new("P", (4000, 3000)), fmt)
    with pytest.raises(ImageRejected) as caught:
        prepare_image(f"a.{fmt.lower()}", data, "high", max_pixels=GUARD)
    assert caught.value.reason == "it is 4000×3000 pixels; the limit is 4 megapixels"
    assert decoded == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89 MP
def test_huge_pngs_are_refused_as_before():
    with pytest.raises(ImageRejected) as caught:
        prepare_image("big.png", png_header_only(12_000, 9_000), "high")
    assert caught.value.reason == "it is 12000×9000 pixels; the limit is 40 megapixels"
    with pytest.raises(ImageRejected, match="decompression bomb"):  # over Pillow's own hard limit (179 MP)
        prepare_image("bigger.png", png_header_only(16_320, 12_240), "high")


def test_a_progressive_jpeg_over_the_guard_is_refused_since_libjpeg_would_buffer_it_whole(photo_4000x3000, decoded):
    data = encode(photo_4000x3000, quality=80, progressive=True)
    assert decode(data).info.get("progressive")
    decoded.clear()
    with pytest.raises(ImageRejected) as caught:
        prepare_image("web.jpg", data, "high", max_pixels=GUARD)
    assert caught.value.reason == ("it is 4000×3000 pixels; the limit is 4 megapixels (a JPEG may be larger when "
                                   "saved as cameras save photos: baseline, not progressive)")
    assert decoded == []
    assert prepare_image("web.jpg", data, "high").width == 1024  # under the guard it is fine, as before


@pytest.mark.parametrize("keep", [100, 0.5, 0.98])
def test_a_truncated_jpeg_over_the_guard_is_refused_as_damaged(photo_4000x3000, keep):
    data = encode(photo_4000x3000, quality=80)
    cut = data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)]
    with pytest.raises(ImageRejected) as caught:
        prepare_image("cut.jpg", cut, "high", max_pixels=GUARD)
    assert caught.value.reason == "the file is damaged or truncated"


def test_the_byte_limit_is_unchanged(big_phone_photo):
    assert inspect.signature(prepare_image).parameters["max_bytes"].default == 20 * 1024 * 1024
    data = big_phone_photo
    with pytest.raises(ImageRejected, match=r"^phone.jpg: the file is [\d.]+ MB; the limit is [\d.]+ MB$"):
        prepare_image("phone.jpg", data, "high", max_bytes=len(data) - 1)
    assert prepare_image("phone.jpg", data, "high", max_bytes=len(data)).width == 768


# --- real 108 and 200 MP photos ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_phone_photo() -> bytes:
    """12000×9000 (108 MP) as a phone stores a portrait photo: sensor-landscape pixels and EXIF orientation 6.
    Stored left half red, right half blue, a green block in the stored top-left corner."""
    image = Image.new("RGB", (12_000, 9_000), (0, 0, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 5_999, 8_999), fill=(255, 0, 0))
    draw.rectangle((0, 0, 1_499, 1_124), fill=(0, 255, 0))
    data = with_orientation(image, 6, quality=80)
    del image, draw
    return data


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # and no Pillow warning either
@pytest.mark.parametrize("detail, size, tokens", [("high", (768, 1024), 765), ("auto", (768, 1024), 765),
                                                  ("low", (384, 512), 85)])
def test_a_real_108_megapixel_phone_photo_is_scaled_and_sent(big_phone_photo, detail, size, tokens, decoded):
    prepared = prepare_image("IMG_0001.jpg", big_phone_photo, detail)
    assert decoded == [("JPEG", (1500, 1125))]  # 1/8 scale: 1.7 MP decoded, not 108
    assert (prepared.width, prepared.height) == size == azure_size(9_000, 12_000, prepared.detail)
    assert prepared.tokens == tokens == azure_tokens(9_000, 12_000, prepared.detail)
    image = decode(prepared.data)
    w, h = image.size  # orientation 6 turns the stored left (red) half to the top, its top-left corner to top-right
    for (x, y), colour in [((w // 2, h // 4), (255, 0, 0)), ((w // 2, 3 * h // 4), (0, 0, 255)),
                           ((w - 5, 5), (0, 255, 0)), ((5, 5), (255, 0, 0))]:
        assert all(abs(a - b) <= 24 for a, b in zip(image.getpixel((x, y)), colour)), (x, y, image.getpixel((x, y)))


@pytest.mark.parametrize("model, reduced, size, tokens", [("gpt-5-mini", (1500, 1125), (1056, 1408), 1743),
                                                           ("gpt-5.4-nano", (3000, 2250), (1368, 1824), 2942)])
def test_a_real_108_megapixel_photo_for_a_patch_model_is_read_at_the_reduction_its_size_needs(
        big_phone_photo, model, reduced, size, tokens, decoded):
    """gpt-4o's 768×1024 would be read at 1/8; gpt-5.4 nano keeps 1368×1824, more than 1/8 (1125×1500) holds."""
    prepared = prepare_image("IMG_0001.jpg", big_phone_photo, "auto", rule=family_capabilities(model).image_rule)
    assert decoded == [("JPEG", reduced)]
    assert (prepared.width, prepared.height, prepared.detail, prepared.tokens) == (*size, "high", tokens)
    image = decode(prepared.data)
    w, h = image.size
    for (x, y), colour in [((w // 2, h // 4), (255, 0, 0)), ((w // 2, 3 * h // 4), (0, 0, 255)),
                           ((w - 5, 5), (0, 255, 0))]:
        assert all(abs(a - b) <= 24 for a, b in zip(image.getpixel((x, y)), colour)), (x, y, image.getpixel((x, y)))


def test_a_real_200_megapixel_photo_is_scaled_although_pillow_alone_would_refuse_it(decoded):
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    image = Image.new("L", (16_320, 12_240), 40)  # greyscale keeps the test's own memory at 200 MB
    ImageDraw.Draw(image).rectangle((0, 0, 8_159, 12_239), fill=220)
    data = encode(image, quality=80)
    del image
    with pytest.raises(Image.DecompressionBombError):  # over Pillow's hard limit of 2 × 89 MP
        Image.open(io.BytesIO(data))
    prepared = prepare_image("IMG_0002.jpg", data, "auto")
    assert decoded == [("JPEG", (2040, 1530))]  # 1/8 scale: 3.1 MP decoded, not 200
    assert (prepared.width, prepared.height, prepared.detail) == (1024, 768, "high")
    assert prepared.tokens == azure_tokens(16_320, 12_240, "high") == 765
    out = decode(prepared.data).convert("L")
    assert abs(out.getpixel((200, 384)) - 220) <= 8 and abs(out.getpixel((824, 384)) - 40) <= 8
    assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before  # no global Pillow or warnings state changed


def test_memory_stays_bounded_measured_in_a_fresh_process(big_phone_photo, tmp_path):
    """Peak resident memory while preparing the 108 MP photo: a full decode alone would add 430 MB."""
    path = tmp_path / "phone.jpg"
    path.write_bytes(big_phone_photo)
    script = textwrap.dedent("""
        import resource, sys
        from chains.images import prepare_image
        data = open(sys.argv[1], "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        prepared = prepare_image("phone.jpg", data, "high")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(prepared.width, prepared.height, (after - before) // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    width, height, grown_mb = map(int, result.stdout.split())
    assert (width, height) == (768, 1024)
    assert grown_mb < 64, f"preparing a 108 MP JPEG grew the peak RSS by {grown_mb} MB"
