"""The Shap-E text-to-3D backend (generators.diffusers_3d) on the tiny config-built pipeline (generators.tiny_3d).

With random weights Shap-E's mesh decoder finds no surface: a config-built renderer has an all-zero
marching-cubes table, and its signed distance field hardly ever crosses zero. The tiny default fills
the table and sets the decoder's output bias (signed-distance channel) so that a surface exists; these
tests check that the meshes are real surfaces of the model's field, and that without the table the
backend fails rather than return a stand-in.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Any

import pytest

from generators.base import GeneratorError


@pytest.fixture(scope="module")
def tiny_shap_e(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generators.tiny_3d import ensure_tiny_shap_e

    return ensure_tiny_shap_e(tmp_path_factory.mktemp("tiny-shap-e"))


@pytest.fixture(scope="module")
def generator(tiny_shap_e: Path) -> Any:
    from generators.diffusers_3d import DiffusersMeshGenerator
    from generators.tiny_3d import GRID_SIZE

    gen = DiffusersMeshGenerator(tiny_shap_e, steps=2, grid_size=GRID_SIZE, device="cpu")
    gen.load()
    return gen


def _decoder_with_table() -> Any:
    import torch
    from diffusers.pipelines.shap_e.renderer import MeshDecoder

    from generators.tiny_3d import marching_cubes_table

    table, most = marching_cubes_table()
    assert most <= 5  # the decoder holds five triangles per cube
    decoder = MeshDecoder()
    for case, triangles in enumerate(table):
        for j, triangle in enumerate(triangles):
            decoder.cases[case, j] = torch.tensor(triangle)
            decoder.masks[case, j] = True
    return decoder


@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_marching_cubes_table_makes_closed_outward_surfaces(shape: str) -> None:
    import torch
    import trimesh

    n = 34
    axis = torch.linspace(-1, 1, n)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    if shape == "sphere":
        field = 0.6 - (x**2 + y**2 + z**2).sqrt()  # positive inside, as Shap-E's decoder expects
        expected = 4 / 3 * math.pi * 0.6**3
    else:
        field = 0.25 - ((((x**2 + y**2).sqrt() - 0.6) ** 2 + z**2).sqrt())
        expected = 2 * math.pi**2 * 0.6 * 0.25**2
    out = _decoder_with_table()(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))
    mesh = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy(), process=True)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # faces wound outward
    assert mesh.volume == pytest.approx(expected, rel=0.08)


def test_seeded_generation_gives_the_same_glb(generator: Any) -> None:
    import trimesh

    first = generator.generate("a small wooden chair", seed=7)
    again = generator.generate("a small wooden chair", seed=7)
    other = generator.generate("a small wooden chair", seed=8)
    assert first.glb[:4] == b"glTF"
    assert hashlib.sha256(first.glb).digest() == hashlib.sha256(again.glb).digest()
    assert first.glb != other.glb
    mesh = trimesh.load(io.BytesIO(first.glb), file_type="glb", force="mesh")
    assert len(mesh.faces) == first.faces > 100
    assert len(mesh.vertices) == first.vertices
    assert mesh.is_watertight  # a closed surface of the model's field, not a loose triangle soup
    assert mesh.visual.kind == "vertex"  # coloured by the STF colour head


def test_without_the_tiny_adjustments_no_surface_is_found(tiny_shap_e: Path) -> None:
    """A config-built renderer's marching-cubes table is all zero: no mesh, and the backend says so."""
    from generators.diffusers_3d import DiffusersMeshGenerator
    from generators.tiny_3d import GRID_SIZE

    gen = DiffusersMeshGenerator(tiny_shap_e, steps=2, grid_size=GRID_SIZE, device="cpu")
    gen.load()
    gen._pipe.shap_e_renderer.mesh_decoder.masks.zero_()
    with pytest.raises(GeneratorError, match="no surface"):
        gen.generate("a small wooden chair", seed=7)


def test_rendered_views_show_the_mesh(generator: Any) -> None:
    import numpy as np

    from generators.diffusers_3d import render_views

    glb = generator.generate("a lamp", seed=3).glb
    views = render_views(glb, size=96, views=4)
    assert len(views) == 4
    covered = [float((np.asarray(v) < 250).any(axis=2).mean()) for v in views]
    assert all(0.05 < c < 0.95 for c in covered), covered  # the mesh fills part of each view
    assert np.asarray(views[0]).tobytes() != np.asarray(views[1]).tobytes()  # different directions


def test_empty_prompt_and_broken_glb_are_errors(generator: Any) -> None:
    from generators.diffusers_3d import render_views

    with pytest.raises(GeneratorError):
        generator.generate("   ", seed=1)
    with pytest.raises(GeneratorError):
        render_views(b"glTF not really")
