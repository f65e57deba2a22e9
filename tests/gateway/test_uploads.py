"""Decoding uploads: 8-bit samples whatever the file's depth, transparency kept, frames sampled and reduced."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gateway.errors import BadRequest
from gateway.uploads import (
    DECODED_MODES,
    decode_frames,
    decode_image,
    decoded_pixels,
    open_image,
    sample_frames,
    to_8bit,
    to_mask,
)

LIMIT = 4096 * 4096


def _encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _grey8() -> np.ndarray:
    """A 64 x 64 picture with every grey level, dark corners and a bright middle."""
    y, x = np.mgrid[0:64, 0:64]
    return ((np.sin(x / 9.0) * np.cos(y / 7.0) + 1) * 127.5).astype(np.uint8)


def test_a_16_bit_png_is_scaled_by_its_depth_not_clipped() -> None:
    grey = _grey8()
    data = _encode(Image.fromarray(grey.astype(np.uint16) * 257))
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")  # what Pillow reads; its convert("RGB") clips
    decoded = decode_image(data, field="image", max_pixels=LIMIT)
    assert decoded.mode == "L"
    assert np.array_equal(np.asarray(decoded), grey)  # the same picture as its 8-bit rendering
    # rounding, as the copyright detector reads 16-bit samples: x / 257 to the nearest level
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    scaled = np.asarray(decode_image(_encode(Image.fromarray(ramp)), field="image", max_pixels=LIMIT))
    assert np.array_equal(scaled, np.rint(ramp / 257.0).astype(np.uint8))
    assert (scaled == 255).mean() < 0.01  # Pillow's own conversion made 99.6 % of it white


def test_32_bit_samples_are_scaled_by_their_range() -> None:
    grey = _grey8()
    cases = {
        "I within 8 bits": Image.fromarray(grey.astype(np.int32)),
        "I within 16 bits": Image.fromarray(grey.astype(np.int32) * 257),
        "F as fractions": Image.fromarray(grey.astype(np.float32) / 255),
        "F within 16 bits": Image.fromarray(grey.astype(np.float32) * 257),
    }
    for name, image in cases.items():
        decoded = decode_image(_encode(image, "TIFF"), field="image", max_pixels=LIMIT)
        assert decoded.mode == "L", name
        assert np.abs(np.asarray(decoded).astype(int) - grey).max() <= 1, name
    # outside [0, 65535]: stretched from the lowest to the highest value
    wide = Image.fromarray(grey.astype(np.int32) * 1000 - 100_000)
    stretched = np.asarray(to_8bit(wide)).astype(int)
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.abs(stretched - (grey.astype(int) - grey.min()) * 255 / (grey.max() - grey.min())).max() <= 1
    # NaN is black, infinity white, and neither spoils the range of the others
    samples = grey.astype(np.float32) / 255
    samples[0, 0], samples[0, 1] = np.nan, np.inf
    odd = np.asarray(to_8bit(Image.fromarray(samples)))
    assert odd[0, 0] == 0 and odd[0, 1] == 255 and np.abs(odd[1:].astype(int) - grey[1:]).max() <= 1


def test_transparency_is_kept_not_composited() -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    rgba.paste((200, 10, 10, 255), (8, 8, 24, 24))
    la = Image.new("LA", (32, 32), (90, 128))
    palette = Image.new("P", (32, 32), 1)
    palette.putpalette([0, 0, 0, 250, 250, 250] + [0] * 762)
    grey_key = Image.new("L", (32, 32), 7)
    for image, options, mode in [
        (rgba, {}, "RGBA"),
        (la, {}, "LA"),
        (palette, {"transparency": 1}, "RGBA"),  # a transparent palette entry
        (grey_key, {"transparency": 7}, "LA"),  # a grey colour key (tRNS)
    ]:
        decoded = decode_image(_encode(image, **options), field="image", max_pixels=LIMIT)
        assert decoded.mode == mode, image.mode
        assert decoded.getchannel("A").getextrema()[0] < 255, "the transparency is there for the detectors"
    decoded = decode_image(_encode(rgba), field="image", max_pixels=LIMIT)
    assert decoded.getpixel((0, 0)) == (255, 255, 255, 0)  # its colour as stored, not flattened
    key16 = np.full((16, 16), 200 * 257, dtype=np.uint16)
    key16[4:8, 4:8] = 1000
    image16 = Image.fromarray(key16)
    image16.info["transparency"] = 1000
    with_key = to_8bit(image16)
    assert with_key.mode == "LA" and with_key.getpixel((5, 5))[1] == 0 and with_key.getpixel((0, 0))[1] == 255


def test_every_mode_comes_out_8_bit() -> None:
    for mode in ("1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LA", "I", "F", "I;16", "RGBX", "RGBa", "La"):
        assert to_8bit(Image.new(mode, (4, 4))).mode in DECODED_MODES, mode


def test_a_16_bit_mask_keeps_its_grey_values() -> None:
    grey = _grey8()
    mask = decode_image(_encode(Image.fromarray(grey.astype(np.uint16) * 257)), field="mask", max_pixels=LIMIT)
    assert np.array_equal(np.asarray(to_mask(mask, (64, 64))), grey)


def _animation(levels: list[int], size: tuple[int, int] = (32, 32), fmt: str = "GIF") -> bytes:
    frames = [Image.new("RGB", size, (v, v, v)) for v in levels]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)


def test_a_still_upload_refuses_an_animation_but_not_an_mpo() -> None:
    for fmt in ("GIF", "WEBP", "PNG"):
        data = _animation([20, 200], fmt=fmt)
        assert decode_image(data, field="image", max_pixels=LIMIT).size == (32, 32)  # first frame, as before
        with pytest.raises(BadRequest) as err:
            decode_image(data, field="image", max_pixels=LIMIT, still=True)
        assert (err.value.code, err.value.param) == ("animated_image", "image"), fmt
    # a camera JPEG with a preview appended (MPO) is one picture
    mpo = _encode(Image.new("RGB", (32, 32), "red"), "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    assert decode_image(mpo, field="image", max_pixels=LIMIT, still=True).mode == "RGB"


def test_sample_frames_spreads_over_the_whole_animation() -> None:
    assert sample_frames(1, 16) == [0]
    assert sample_frames(16, 16) == list(range(16))
    picked = sample_frames(40, 16)
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 39
    assert max(np.diff(picked)) <= 3
    assert sample_frames(1000, 16)[-1] == 999


def test_decode_frames_decodes_each_frame_and_reduces_it() -> None:
    levels = [10 + 5 * i for i in range(40)]  # distinct frames (a writer merges identical ones)
    image = open_image(_animation(levels), field="input", max_pixels=LIMIT)
    frames = decode_frames(image, field="input", max_pixels=LIMIT, max_frames=16, max_side=1024)
    assert frames.count == 40
    assert [n for n, _ in frames.images] == sample_frames(40, 16)
    for number, frame in frames.images:
        assert frame.mode in DECODED_MODES
        assert abs(np.asarray(frame.convert("L")).mean() - levels[number]) <= 2, number

    big = open_image(_encode(Image.new("RGB", (3000, 1500), (1, 2, 3))), field="input", max_pixels=LIMIT)
    ((_, reduced),) = decode_frames(big, field="input", max_pixels=LIMIT, max_frames=16, max_side=1024).images
    assert reduced.size == (1000, 500)  # a whole factor (3), as the copyright detector reduces
    jpeg = open_image(_encode(Image.new("RGB", (4096, 2048), (90, 90, 90)), "JPEG"), field="input", max_pixels=LIMIT)
    ((_, small),) = decode_frames(jpeg, field="input", max_pixels=LIMIT, max_frames=16, max_side=1024).images
    assert max(small.size) <= 1024


def test_bad_files_are_400s() -> None:
    with pytest.raises(BadRequest) as err:
        decode_image(b"", field="image", max_pixels=LIMIT)
    assert err.value.code == "invalid_image"
    with pytest.raises(BadRequest) as err:
        decode_image(_encode(Image.new("RGB", (100, 100))), field="image", max_pixels=64 * 64)
    assert err.value.code == "image_too_large"
    whole = _animation([20, 200, 90])
    with pytest.raises(BadRequest) as err:  # truncated in its second frame
        decode_frames(
            open_image(whole[: len(whole) - 40], field="input", max_pixels=LIMIT),
            field="input",
            max_pixels=LIMIT,
            max_frames=16,
            max_side=1024,
        )
    assert err.value.code == "invalid_image"


def test_pixels_decoded_count_every_frame_and_every_page() -> None:
    gif = open_image(_animation([20, 60, 100], size=(40, 30)), field="input", max_pixels=LIMIT)
    assert decoded_pixels(gif, field="input", max_pixels=LIMIT) == 3 * 40 * 30  # each frame is decoded in turn
    pages = [Image.new("RGB", size, "white") for size in ((32, 32), (200, 100), (10, 10))]
    tiff = _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert decoded_pixels(open_image(tiff, field="input", max_pixels=LIMIT), field="input", max_pixels=LIMIT) == (
        32 * 32 + 200 * 100 + 10 * 10
    )
    # a later page over the limit is refused as a first one would be, before any is decoded
    small_first = open_image(tiff, field="input", max_pixels=64 * 64)
    with pytest.raises(BadRequest) as err:
        decoded_pixels(small_first, field="input", max_pixels=64 * 64)
    assert err.value.code == "image_too_large"
    with pytest.raises(BadRequest) as err:
        decode_frames(
            open_image(tiff, field="input", max_pixels=64 * 64),
            field="input",
            max_pixels=64 * 64,
            max_frames=16,
            max_side=1024,
        )
    assert err.value.code == "image_too_large"
