import numpy as np
import pytest

import warpfields
from warpfields.errors import InputError
from warpfields.ops import OperatorSpec

pytest.importorskip("warpfields.fields.hybrid")
from sims.curvature_flow import CurvatureFlow, collapse_time, law_radius  # noqa: E402
from warpfields.fields.hybrid import preset_config  # noqa: E402
from warpfields.torch.train import TRAIN_PRESETS, train_field  # noqa: E402


@pytest.fixture(scope="module")
def circle_field():
    field, _ = train_field(warpfields.circle(0.5), preset_config("tiny", dim=2), TRAIN_PRESETS["tiny"], 0, "cpu", False)
    return field


def test_laws():
    assert collapse_time(0.5, 3) == pytest.approx(0.0625)
    assert collapse_time(0.5, 2) == pytest.approx(0.125)
    assert law_radius(0.5, 0.0625, 3) == 0.0
    assert law_radius(0.5, 0.03, 2) == pytest.approx(np.sqrt(0.25 - 0.06))


def test_circle_follows_law(circle_field):
    sim = CurvatureFlow(circle_field, OperatorSpec.for_field(circle_field), device="cpu", seed=1)
    r0 = sim.radius(np.zeros(2))
    assert r0 == pytest.approx(0.5, abs=0.02)
    dt = 0.002
    for _ in range(5):
        sim.step(dt)
    # After t = 0.01 the law shrinks r by 0.02; the tiny field's fit noise is ~0.003 per refit over
    # 5 refits and the refit lags the target, so demand the direction, a third of the decrease, and
    # no overshoot beyond the accumulated fit noise (5 x 0.003).
    r = sim.radius(np.zeros(2))
    expected = law_radius(r0, sim.time, 2)
    assert r < r0 - (r0 - expected) / 3
    assert r > expected - 0.015


def test_bad_inputs(circle_field):
    spec = OperatorSpec.for_field(circle_field)
    sim = CurvatureFlow(circle_field, spec, device="cpu")
    with pytest.raises(InputError, match="dt"):
        sim.step(0.0)
    with pytest.raises(InputError, match="dt"):
        sim.step(-1.0)
    with pytest.raises(InputError, match="hybrid"):
        CurvatureFlow(warpfields.circle(0.5), spec, device="cpu")
    with pytest.raises(InputError, match="method"):
        OperatorSpec.for_field(circle_field, method="spline")
    with pytest.raises(InputError, match="k="):
        CurvatureFlow(circle_field, OperatorSpec.for_field(circle_field, k=2, stencil="gauss"), device="cpu")
    with pytest.raises(InputError, match="band_width"):
        CurvatureFlow(circle_field, spec, band_width=-1.0, device="cpu")
