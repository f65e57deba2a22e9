"""Text to 3D with a local diffusers Shap-E pipeline, exported as a binary glTF (GLB) with trimesh.

The pipeline (`ShapEPipeline`) loads through `from_pretrained` from a local folder
(`local_files_only`, nothing is fetched at run time): a real Shap-E folder (`openai/shap-e` in
diffusers layout) and the tiny random-weight pipeline of `generators.tiny_3d` share one layout.

Generation makes the two calls `ShapEPipeline(output_type="mesh")` makes: the prior denoises a
latent from the prompt (`output_type="latent"`), then `shap_e_renderer.decode_to_mesh` queries the
latent's signed distance field on a grid, runs marching cubes and colours the vertices. Calling them
apart exposes the grid size (the pipeline fixes 128) and keeps one latent per request. A request's
`seed` seeds a `torch.Generator`; generations are serialized by a lock (the renderer copies each
latent's weights into its MLP), so the same prompt, guidance and seed give the same GLB bytes.

Explicit device ("auto": CUDA when present) and dtype ("auto": float16 on CUDA, float32 on the CPU).

`render_views` draws a GLB from a few directions with numpy and Pillow, so the image detectors can
screen exactly the mesh that is released (see its docstring for why not Shap-E's own renderer).
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generators.base import GeneratorError
from generators.devices import describe, load_once, resolve_device, resolve_dtype_name

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MIME", "DiffusersMeshGenerator", "GeneratedMesh", "export_glb", "render_views"]

MIME = "model/gltf-binary"
_DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class GeneratedMesh:
    glb: bytes  # a complete binary glTF 2.0 file: one mesh with vertex colours, Y up
    vertices: int
    faces: int
    seed: int


def export_glb(vertices: Any, faces: Any, colors: Any | None = None) -> bytes:
    """A triangle mesh (Z-up, as Shap-E makes it) as GLB bytes in glTF's Y-up frame.

    `colors` are per-vertex RGB floats in [0, 1] (linear, as glTF's COLOR_0 expects).
    """
    import numpy as np
    import trimesh

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise GeneratorError(f"not a triangle mesh: vertices {v.shape}, faces {f.shape}")
    if not np.isfinite(v).all():
        raise GeneratorError("the mesh has non-finite vertex positions")
    y_up = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)  # rotate -90° about X
    rgba = None
    if colors is not None:
        c = np.clip(np.nan_to_num(np.asarray(colors, dtype=np.float64)), 0.0, 1.0)
        rgba = np.concatenate([(c * 255.0).round(), np.full((len(c), 1), 255.0)], axis=1).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=y_up, faces=f, vertex_colors=rgba, process=False)
    data: Any = mesh.export(file_type="glb")
    return bytes(data)


def load_glb(data: bytes) -> Any:
    """A GLB file as one `trimesh.Trimesh` (scenes are concatenated)."""
    import trimesh

    try:
        mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh", process=False)
    except Exception as exc:
        raise GeneratorError(f"cannot read the GLB: {describe(exc)}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise GeneratorError("the GLB holds no triangles")
    return mesh


def render_views(glb: bytes, *, size: int = 256, views: int = 4, elevation_deg: float = 20.0) -> list[Image]:
    """Draw the mesh of a GLB from `views` directions around its vertical axis (white background).

    Orthographic projection, back faces culled, faces painted far to near with Pillow's polygon
    fill, each shaded (ambient + Lambert from the camera side) times its mean vertex colour. It
    needs no OpenGL, so it runs on any CPU. Shap-E's own `decode_to_image` renders the latent's
    NeRF heads (density and NeRF colour), a different part of the model than the signed distance
    and STF colours the mesh comes from; drawing the GLB screens exactly what is released, and any
    backend that makes a GLB can be screened the same way.
    """
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageDraw

    mesh = load_glb(glb)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    colors = _vertex_colors(mesh, len(v))
    lo, hi = v.min(axis=0), v.max(axis=0)
    v = v - (lo + hi) / 2
    v = v / max(float(np.linalg.norm(v, axis=1).max()), 1e-9)  # inside the unit sphere: any view fits
    face_rgb = colors[f].mean(axis=1)
    pitch = math.radians(elevation_deg)
    images: list[Image] = []
    for k in range(views):
        yaw = 2 * math.pi * k / views
        rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        rot_x = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
        p = v @ (rot_x @ rot_y).T  # camera looks down -Z; +Y is up on screen
        tri = p[f]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        lengths = np.linalg.norm(normals, axis=1)
        facing = normals[:, 2] > 0
        light = np.where(lengths > 0, normals[:, 2] / np.maximum(lengths, 1e-12), 0.0)
        shade = 0.35 + 0.65 * np.clip(light, 0.0, 1.0)
        order = np.argsort(tri[:, :, 2].mean(axis=1))  # far (small z) first
        xy = np.empty((len(f), 3, 2))
        xy[:, :, 0] = (tri[:, :, 0] * 0.48 + 0.5) * (size - 1)
        xy[:, :, 1] = (0.5 - tri[:, :, 1] * 0.48) * (size - 1)
        rgb = np.clip(face_rgb * shade[:, None], 0, 255).astype(np.uint8)
        image = PILImage.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        for i in order[facing[order]]:
            draw.polygon([tuple(pt) for pt in xy[i].tolist()], fill=tuple(rgb[i].tolist()))
        images.append(image)
    return images


def _vertex_colors(mesh: Any, n: int) -> Any:
    import numpy as np

    visual = getattr(mesh, "visual", None)
    if visual is not None and getattr(visual, "kind", None) == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3]
        if len(colors) == n:
            return colors
    return np.full((n, 3), 200.0)


class DiffusersMeshGenerator:
    """A Shap-E text-to-3D pipeline loaded from a local folder; meshes come out as GLB."""

    name = "diffusers_3d"

    def __init__(
        self,
        model: str | Path,
        *,
        steps: int = 64,
        guidance_scale: float = 15.0,
        grid_size: int = 128,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = True,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if steps < 1 or not 8 <= grid_size <= 512:
            raise ValueError("steps must be >= 1 and grid_size within [8, 512]")
        self.model = str(model)
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.grid_size = grid_size
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.version = f"diffusers-{metadata.version('diffusers')}"
        self._pipe: Any = None
        self._torch_device = "cpu"
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # one generation at a time: the renderer's MLP holds the latent

    def load(self) -> None:
        load_once(
            self._load_lock, lambda: self._pipe is not None, self._load, f"diffusers_3d: cannot load {self.model!r}"
        )

    def _load(self) -> None:
        import diffusers
        import torch

        d: Any = diffusers  # loosely typed; keep mypy --strict quiet
        device = resolve_device(self.device)
        dtype = getattr(torch, resolve_dtype_name(self.dtype, device, on_cuda="float16"))
        pipe: Any = d.ShapEPipeline.from_pretrained(self.model, dtype=dtype, local_files_only=self.local_files_only)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to(device)
        self._torch_device = device

    def generate(self, prompt: str, *, seed: int, guidance_scale: float | None = None) -> GeneratedMesh:
        import torch

        self.load()
        if not prompt.strip():
            raise GeneratorError("diffusers_3d: the prompt is empty")
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        try:
            with self._lock, torch.inference_mode():
                generator = torch.Generator(device="cpu").manual_seed(seed)
                latents = self._pipe(
                    prompt,
                    num_inference_steps=self.steps,
                    guidance_scale=guidance,
                    generator=generator,
                    output_type="latent",
                ).images
                if not torch.isfinite(latents).all():
                    raise GeneratorError("diffusers_3d: the prior produced non-finite latents")
                mesh = self._decode(latents[0][None])
        except GeneratorError:
            raise
        except Exception as exc:
            raise GeneratorError(f"diffusers_3d: generation failed: {describe(exc)}") from exc
        verts = mesh.verts.float().cpu().numpy()
        faces = mesh.faces.cpu().numpy()
        channels = mesh.vertex_channels or {}
        colors = None
        if all(c in channels for c in "RGB"):
            colors = torch.stack([channels[c] for c in "RGB"], dim=1).float().cpu().numpy()
        return GeneratedMesh(export_glb(verts, faces, colors), len(verts), len(faces), seed)

    def _decode(self, latent: Any) -> Any:
        renderer = self._pipe.shap_e_renderer
        try:
            return renderer.decode_to_mesh(latent, self._torch_device, grid_size=self.grid_size)
        except (ValueError, RuntimeError) as exc:
            # decode_to_mesh cannot stack the colours of a mesh without vertices: the field never
            # crossed zero. No surface means no mesh (never a stand-in).
            if "non-empty" in str(exc) or "max()" in str(exc):
                raise GeneratorError("diffusers_3d: the mesh decoder found no surface for this latent") from exc
            raise
