"""The job planner backend: a tiny random-weight Llama, loaded through from_pretrained, writes schema-valid plans."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.job_plans import PlanError, PlanLimits, parse_plan, plan_schema

LIMITS = PlanLimits(max_steps=2, prompt_chars=80, image_sizes=("64x64",), video_sizes=("64x64",),
                    outline=("image", "speech"))  # fmt: skip


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from generators.tiny_planner import ensure_tiny_planner
    from generators.transformers_planner import TransformersPlanner

    planner = TransformersPlanner(str(ensure_tiny_planner(tmp_path_factory.mktemp("planner") / "tiny")))
    planner.load()
    return planner


def test_random_weights_still_write_a_valid_plan_under_the_schema(planner: Any) -> None:
    text = planner.plan("a photo of a kettle and a narration", plan_schema(LIMITS), max_new_tokens=400)
    plan = parse_plan(text, LIMITS)
    assert [s.modality for s in plan.steps] == ["image", "speech"]
    assert all(0 < len(s.prompt) <= 80 for s in plan.steps)
    assert plan.steps[0].depends_on == () and set(plan.steps[1].depends_on) <= {0}
    assert plan.steps[0].params == {"size": "64x64"}
    # greedy decoding: the same instruction gives the same plan (and reuses the cached index)
    assert planner.plan("a photo of a kettle and a narration", plan_schema(LIMITS), max_new_tokens=400) == text


def test_a_cut_short_plan_is_refused_not_repaired(planner: Any) -> None:
    text = planner.plan("a photo of a kettle", plan_schema(LIMITS), max_new_tokens=10)
    with pytest.raises(PlanError, match="not a valid plan"):
        parse_plan(text, LIMITS)


def test_rules_the_schema_cannot_state_are_checked() -> None:
    free = PlanLimits(max_steps=3, prompt_chars=80, image_sizes=("64x64",), video_sizes=("64x64",))
    forward = '{"steps": [{"modality": "image", "prompt": "a", "params": {"size": "64x64"}, "depends_on": [1]}]}'
    with pytest.raises(PlanError, match="does not come before it"):
        parse_plan(forward, free)
    blank = '{"steps": [{"modality": "image", "prompt": "  ", "params": {"size": "64x64"}, "depends_on": []}]}'
    with pytest.raises(PlanError, match="blank prompt"):
        parse_plan(blank, free)
    size = '{"steps": [{"modality": "image", "prompt": "a", "params": {"size": "9x9"}, "depends_on": []}]}'
    with pytest.raises(PlanError, match="not one of"):
        parse_plan(size, free)
