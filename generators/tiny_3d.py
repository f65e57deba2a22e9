"""A tiny Shap-E text-to-3D pipeline built from configs with random weights, for tests and demos.

Like `generators.tiny`: the pipeline is saved with `save_pretrained` and loaded back through the
real `from_pretrained` path (`generators.diffusers_3d`), so the serving code is the code that
serves a real local Shap-E folder. It makes a random blob, not an object.

Three things a config alone does not give, each set here on purpose (never a stored or primitive mesh):

1. The marching-cubes lookup table. `ShapERenderer.mesh_decoder` holds it as two buffers
   (`cases`, `masks`) that a real checkpoint ships and a config-built renderer leaves at zero, so
   the decoder finds no triangle at all. `marching_cubes_table` computes the table (the classic
   construction: per cube face, edges whose corners differ in sign are joined, inside corners of an
   ambiguous face kept apart so neighbouring cubes agree; the loops are fanned into triangles facing
   outward) in the decoder's corner and edge order; the meshes it makes are closed and consistently
   wound (tested on analytic fields).
2. A low-frequency field. The first MLP layer is projected from the latent; with random weights it
   reads every NeRF position encoding up to 2^14, and the signed distance field is noise that
   marching cubes turns into 60,000-480,000 faces at 32³-64³ (measured). The projection's
   per-channel scale and offsets are zeroed for encodings above `_MAX_DEGREE`.
3. The decoder's output bias (signed-distance channel). With random weights the field is positive
   or negative almost everywhere, so no surface exists (or it is the grid's border). The bias is
   shifted by the median of the field over a few calibration prompts and seeds, so that the zero
   level set cuts through the field and a surface exists for typical latents. A latent whose field
   still has no zero crossing yields no mesh, and the backend raises rather than invent one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["GRID_SIZE", "INIT_SEED", "MARKER", "ensure_tiny_shap_e", "marching_cubes_table"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-shap-e-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

GRID_SIZE = 32
"""Marching-cubes grid the tiny default is served with (real Shap-E: 128)."""

_FORMAT = "1"
"""Bump when the configs below change, so old tiny models are rebuilt."""

_MAX_DEGREE = 2  # keep the raw position and its sin/cos at scales 2^0 and 2^1
_RENDERER_DIM = 8
_LATENT_DIM = 32
_CALIBRATION = (("a chair", 0), ("a teapot", 1), ("a small house", 2), ("a tree", 3))

# Corner `i` of a cube is (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1): the bit order of
# `MeshDecoder.forward`. Edge `k` joins EDGES[k]: the order of `_create_flat_edge_indices`.
_CORNERS = [(i & 1, i >> 1 & 1, i >> 2 & 1) for i in range(8)]
_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
_FACES = [  # each face's corners in cyclic order
    [0, 2, 6, 4],  # x = 0
    [1, 3, 7, 5],  # x = 1
    [0, 1, 5, 4],  # y = 0
    [2, 3, 7, 6],  # y = 1
    [0, 1, 3, 2],  # z = 0
    [4, 5, 7, 6],  # z = 1
]


def ensure_tiny_shap_e(root: Path) -> Path:
    """Build the tiny Shap-E pipeline into `root` once (see `generators.build_once`); return `root`."""
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def marching_cubes_table() -> tuple[list[list[tuple[int, int, int]]], int]:
    """Triangles (as edge-index triples) for each of the 256 inside/outside patterns of a cube.

    Returns the table and the largest number of triangles in one case (the decoder holds 5).
    Bit `i` of a case is set when corner `i` is inside (field > 0).
    """
    edge_of = {pair: k for k, pair in enumerate(_EDGES)}
    mid = [tuple((_CORNERS[a][d] + _CORNERS[b][d]) / 2 for d in range(3)) for a, b in _EDGES]

    def edge(a: int, b: int) -> int:
        return edge_of[(min(a, b), max(a, b))]

    table: list[list[tuple[int, int, int]]] = []
    for case in range(256):
        inside = [bool(case >> i & 1) for i in range(8)]
        links: dict[int, list[int]] = {}
        for ring in _FACES:
            sides = [(ring[k], ring[(k + 1) % 4]) for k in range(4)]
            crossing = [edge(a, b) for a, b in sides if inside[a] != inside[b]]
            if len(crossing) == 2:
                segments = [(crossing[0], crossing[1])]
            elif len(crossing) == 4:  # ambiguous face: cut each inside corner off on its own
                segments = [(edge(ring[k - 1], ring[k]), edge(ring[k], ring[(k + 1) % 4])) for k in range(4)]
                segments = [s for s, k in zip(segments, range(4), strict=True) if inside[ring[k]]]
            else:
                segments = []
            for a, b in segments:
                links.setdefault(a, []).append(b)
                links.setdefault(b, []).append(a)
        triangles: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        for start in sorted(links):
            if start in seen:
                continue
            loop, previous, current = [start], -1, start
            seen.add(start)
            while True:
                following = [n for n in links[current] if n != previous and n not in seen]
                if not following:
                    break
                previous, current = current, following[0]
                loop.append(current)
                seen.add(current)
            if _facing(loop, mid, inside) < 0:
                loop.reverse()
            triangles += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
        table.append(triangles)
    return table, max(len(t) for t in table)


def _facing(loop: list[int], mid: list[tuple[float, ...]], inside: list[bool]) -> float:
    """> 0 when the loop's winding (Newell normal) points from the inside corners to the outside ones."""
    normal = [0.0, 0.0, 0.0]
    for i, k in enumerate(loop):
        p, q = mid[k], mid[loop[(i + 1) % len(loop)]]
        normal[0] += p[1] * q[2] - p[2] * q[1]
        normal[1] += p[2] * q[0] - p[0] * q[2]
        normal[2] += p[0] * q[1] - p[1] * q[0]
    outward = [0.0, 0.0, 0.0]
    for k in loop:
        a, b = _EDGES[k]
        inner, outer = (a, b) if inside[a] else (b, a)
        for d in range(3):
            outward[d] += _CORNERS[outer][d] - _CORNERS[inner][d]
    return sum(n * o for n, o in zip(normal, outward, strict=True))


def _build(dest: Path) -> None:
    import diffusers
    import torch
    import transformers
    from diffusers.pipelines.shap_e import renderer as shap_e_module

    from generators.tiny import build_tiny_tokenizer

    d: Any = diffusers  # loosely typed libraries: keep mypy --strict quiet
    t: Any = transformers
    m: Any = shap_e_module
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        text_encoder = t.CLIPTextModelWithProjection(
            t.CLIPTextConfig(
                vocab_size=1000,
                hidden_size=_LATENT_DIM,
                projection_dim=_LATENT_DIM,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=32,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
                layer_norm_eps=1e-5,
            )
        ).eval()
        prior = d.PriorTransformer(
            num_attention_heads=2,
            attention_head_dim=16,
            embedding_dim=_LATENT_DIM,
            num_embeddings=32,
            embedding_proj_dim=_LATENT_DIM,
            time_embed_dim=4 * _LATENT_DIM,
            num_layers=1,
            clip_embed_dim=2 * _LATENT_DIM,
            additional_embeddings=0,
            time_embed_act_fn="gelu",
            norm_in_type="layer",
            encoder_hid_proj_type=None,
            added_emb_type=None,
        ).eval()
        r = _RENDERER_DIM
        renderer = m.ShapERenderer(
            param_shapes=((r, 93), (r, r), (r, r), (r, r)),
            d_latent=_LATENT_DIM,
            d_hidden=r,
            n_output=12,
            background=(255.0, 255.0, 255.0),
        ).eval()
    scheduler = d.HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    pipe = d.ShapEPipeline(
        prior=prior,
        text_encoder=text_encoder,
        tokenizer=build_tiny_tokenizer(),
        shap_e_renderer=renderer,
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    _fill_marching_cubes_table(renderer)
    _low_frequency_field(renderer)
    _center_surface(pipe, renderer)
    pipe.save_pretrained(str(dest), safe_serialization=True)


def _fill_marching_cubes_table(renderer: Any) -> None:
    import torch

    table, most = marching_cubes_table()
    decoder = renderer.mesh_decoder
    slots = int(decoder.cases.shape[1])
    if most > slots:  # pragma: no cover - a property of the table, checked by the tests
        raise RuntimeError(f"the marching-cubes table needs {most} triangles per cube, the decoder holds {slots}")
    cases = torch.zeros_like(decoder.cases)
    masks = torch.zeros_like(decoder.masks)
    for case, triangles in enumerate(table):
        for j, triangle in enumerate(triangles):
            cases[case, j] = torch.tensor(triangle)
            masks[case, j] = True
    with torch.no_grad():
        decoder.cases.copy_(cases)
        decoder.masks.copy_(masks)


def _low_frequency_field(renderer: Any) -> None:
    """Zero layer 0's weights on position encodings above 2^(_MAX_DEGREE - 1) (see the module doc)."""
    import torch

    # encode_position: [x, y, z, sin(2^k x_d) for k < 15, d < 3, then the same + pi/2], 93 channels
    keep = torch.zeros(93, dtype=torch.bool)
    keep[:3] = True
    for degree in range(_MAX_DEGREE):
        for axis in range(3):
            keep[3 + degree * 3 + axis] = True
            keep[48 + degree * 3 + axis] = True
    projection = renderer.params_proj.projections["nerstf__mlp__0__weight"]
    with torch.no_grad():
        projection.norm.weight[~keep] = 0.0
        projection.norm.bias[~keep] = 0.0
        projection.proj.bias.view(_RENDERER_DIM, 93)[:, ~keep] = 0.0


def _center_surface(pipe: Any, renderer: Any) -> None:
    """Shift the signed-distance output bias by the field's median over the calibration latents."""
    import torch
    from diffusers.pipelines.shap_e import renderer as shap_e_module

    r: Any = shap_e_module  # untyped
    points = r.volume_query_points(renderer.volume, GRID_SIZE)[None]
    values = []
    for prompt, seed in _CALIBRATION:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        latents = pipe(prompt, num_inference_steps=2, generator=generator, output_type="latent").images
        projected = renderer.params_proj(latents[0][None])
        with torch.no_grad():
            for name, param in renderer.mlp.state_dict().items():
                if f"nerstf.{name}" in projected:
                    param.copy_(projected[f"nerstf.{name}"].squeeze(0))
            out = renderer.mlp(position=points, direction=None, ts=None, nerf_level="fine", rendering_mode="stf")
        values.append(torch.atanh(out.signed_distance.clamp(-0.999999, 0.999999)).flatten())
    median = torch.cat(values).median()
    with torch.no_grad():
        renderer.mlp.mlp[-1].bias[0] -= median
