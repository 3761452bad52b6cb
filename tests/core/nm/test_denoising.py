"""Denoising contract (seed 003): network inputs, target, slice-by-slice denoising, support window, CT resampling.

Values are hand-computed: CT channel ``max(HU + 1000, 0) / mean`` on a volume of known composition; the
de-normalisation ``(fast / mean) * mean`` gives the fast volume back up to float32 rounding (``RTOL`` = 1e-6);
count ratio within 1e-6; resampled constant CT within 1e-3 HU.
"""

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import InputDataError
from core.geometry import Grid
from core.nm.denoising import (
    BODY_HU,
    SIZE_MULTIPLE,
    _support_window,
    body_support,
    count_ratio,
    ct_on_spect_grid,
    denoise_volume,
    network_inputs,
    normalisation_support,
    target_of,
)

SEED = 5
RTOL = 1e-6
HU_ATOL = 1e-3


class FastChannel(nn.Module):
    """Returns channel 0 (the normalised fast SPECT) plus ``offset``, as U2-Net's tuple or as a tensor."""

    def __init__(self, as_tuple: bool = True, offset: float = 0.0) -> None:
        super().__init__()
        self.as_tuple, self.offset = as_tuple, offset
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor):
        self.shapes.append(tuple(x.shape))
        y = x[:, :1] + self.offset
        return (y, torch.zeros_like(y)) if self.as_tuple else y


class Ones(nn.Module):
    """Returns 1 everywhere: the output is the fast SPECT's mean wherever the network ran."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x[:, :1])


def small_active_volume(shape: tuple[int, int, int] = (5, 37, 50)) -> np.ndarray:
    """Poisson counts in a small window (rows 12..18, columns 30..40) of an otherwise empty volume."""
    rng = np.random.default_rng(SEED)
    fast = np.zeros(shape, dtype=np.float32)
    fast[1:4, 12:19, 30:41] = rng.poisson(20.0, (3, 7, 11)) + 1.0
    return fast


# ---------------------------------------------------------------------------------------------- network_inputs


def test_fast_channel_is_divided_by_its_mean():
    fast = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4)  # mean 12.5
    inputs, scale = network_inputs(fast, None)
    assert inputs.shape == (1, 2, 3, 4)
    assert inputs.dtype == np.float32
    assert scale == pytest.approx(12.5)
    np.testing.assert_allclose(inputs[0], fast / 12.5, rtol=RTOL)
    assert inputs[0].mean() == pytest.approx(1.0, rel=RTOL)


def test_ct_channel_is_offset_clipped_and_divided_by_its_mean():
    # 8 voxels each of -1500, -1000 (air), 0 (water), 1000 HU -> 0, 0, 1000, 2000: mean 750
    ct = np.repeat(np.array([-1500.0, -1000.0, 0.0, 1000.0], dtype=np.float32), 8).reshape(2, 4, 4)
    fast = np.ones_like(ct)
    inputs, _ = network_inputs(fast, ct)
    assert inputs.shape == (2, 2, 4, 4)
    attenuation = inputs[1].ravel()
    np.testing.assert_array_equal(attenuation[:16], 0.0)  # below -1000 and air
    np.testing.assert_allclose(attenuation[16:24], 1000.0 / 750.0, rtol=RTOL)  # water
    np.testing.assert_allclose(attenuation[24:], 2000.0 / 750.0, rtol=RTOL)
    assert inputs[1].mean() == pytest.approx(1.0, rel=RTOL)


@pytest.mark.parametrize("bad", ["zero", "nan", "inf"])
def test_unusable_fast_spect_raises_input_data_error(bad: str):
    fast = np.ones((2, 4, 4), dtype=np.float32)
    if bad == "zero":
        fast[:] = 0.0
    else:
        fast[1, 2, 3] = np.nan if bad == "nan" else np.inf
    with pytest.raises(InputDataError, match="fast SPECT"):
        network_inputs(fast, None)


@pytest.mark.parametrize("value", [np.nan, np.inf, -2000.0])
def test_unusable_ct_raises_input_data_error(value: float):
    """A non-finite CT, or one that is air everywhere (no attenuation to normalise by)."""
    fast = np.ones((2, 4, 4), dtype=np.float32)
    ct = np.full((2, 4, 4), -2000.0 if value == -2000.0 else 0.0, dtype=np.float32)
    ct[0, 0, 0] = value
    with pytest.raises(InputDataError, match="CT"):
        network_inputs(fast, ct)


def test_shape_mismatch_raises_value_error():
    with pytest.raises(ValueError, match="differs"):
        network_inputs(np.ones((2, 4, 4), dtype=np.float32), np.zeros((2, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="volume"):
        network_inputs(np.ones((4, 4), dtype=np.float32), None)


def test_target_has_mean_one():
    standard = np.random.default_rng(SEED).gamma(2.0, 3.0, (3, 10, 12)).astype(np.float32)
    target = target_of(standard)
    assert target.dtype == np.float32
    assert float(np.mean(target, dtype=np.float64)) == pytest.approx(1.0, rel=RTOL)
    np.testing.assert_allclose(target * standard.mean(dtype=np.float64), standard, rtol=1e-5)


# ----------------------------------------------------------------------------------- normalisation over the body


def body_in_field_of_view(pad: int) -> tuple[np.ndarray, np.ndarray]:
    """A water block (0 HU) with Poisson uptake in a field of view of air (-1000 HU, no counts), ``pad`` voxels wide."""
    rng = np.random.default_rng(SEED)
    ct = np.full((3, 8 + 2 * pad, 8 + 2 * pad), -1000.0, dtype=np.float32)
    fast = np.zeros(ct.shape, dtype=np.float32)
    inside = (slice(None), slice(pad, pad + 8), slice(pad, pad + 8))
    ct[inside] = 0.0
    ct[1, pad + 3, pad + 3] = 1000.0  # one bone voxel
    fast[inside] = rng.poisson(30.0, (3, 8, 8)) + 1.0
    return fast, ct


def test_body_normalised_inputs_do_not_change_with_the_field_of_view():
    """The same body in a field of view 2.2x and 4.5x as wide: over the body the channels and the scale are the
    same; over the whole volume (seed 003) they grow with the air around the body (the NEMA phantom's problem)."""
    small_fast, small_ct = body_in_field_of_view(1)
    for pad in (5, 14):
        fast, ct = body_in_field_of_view(pad)
        inside = (slice(None), slice(None), slice(pad - 1, pad + 9), slice(pad - 1, pad + 9))
        small, small_scale = network_inputs(small_fast, small_ct, support=body_support(small_ct))
        large, large_scale = network_inputs(fast, ct, support=body_support(ct))
        assert large_scale == pytest.approx(small_scale, rel=RTOL)
        np.testing.assert_allclose(large[inside], small, rtol=1e-5)
        whole_small, _ = network_inputs(small_fast, small_ct)
        whole_large, _ = network_inputs(fast, ct)
        fill_ratio = (10 / (8 + 2 * pad)) ** 2  # the body's share of the slice, large against small
        np.testing.assert_allclose(whole_large[inside] * fill_ratio, whole_small, rtol=1e-5)


def test_body_support_is_the_ct_above_minus_500_hu():
    ct = np.array([[[-1000.0, -501.0, BODY_HU, -499.0, 0.0, 1500.0]]], dtype=np.float32)
    np.testing.assert_array_equal(body_support(ct)[0, 0], [False, False, False, True, True, True])
    with pytest.raises(InputDataError, match="no body"):
        body_support(np.full((2, 3, 3), -1000.0, dtype=np.float32))


def test_target_over_the_body_has_mean_one_there():
    fast, ct = body_in_field_of_view(4)
    support = body_support(ct)
    target = target_of(fast, support=support)
    assert float(target[support].mean(dtype=np.float64)) == pytest.approx(1.0, rel=RTOL)
    np.testing.assert_array_equal(target[~support], 0.0)


@pytest.mark.parametrize("bad", ["shape", "dtype", "empty"])
def test_unusable_support_raises_value_error(bad: str):
    fast, ct = body_in_field_of_view(2)
    support = body_support(ct)
    if bad == "shape":
        support = support[:, :-1]
    elif bad == "dtype":
        support = support.astype(np.uint8)
    else:
        support = np.zeros_like(support)
    with pytest.raises(ValueError, match="support"):
        network_inputs(fast, ct, support=support)


def test_denoise_volume_de_normalises_with_the_body_mean():
    """A network that answers 1 everywhere gives back the fast SPECT's mean over the body, not over the volume
    (the water block here is 64 of 400 voxels per slice, so the two differ 6.25-fold)."""
    fast, ct = body_in_field_of_view(6)
    out = denoise_volume(Ones(), fast, ct, support=body_support(ct))
    body_mean = float(fast[ct > -500.0].mean(dtype=np.float64))
    assert body_mean == pytest.approx(6.25 * float(fast.mean(dtype=np.float64)), rel=1e-6)
    np.testing.assert_allclose(out[fast > 0], body_mean, rtol=1e-6)


def test_normalisation_support_is_the_body_only_for_body_models():
    _, ct = body_in_field_of_view(2)
    assert normalisation_support("volume", ct) is None
    assert normalisation_support("volume", None) is None
    np.testing.assert_array_equal(normalisation_support("body", ct), ct > -500.0)
    with pytest.raises(ValueError, match="needs the CT"):
        normalisation_support("body", None)


# --------------------------------------------------------------------------------------------- denoise_volume


@pytest.mark.parametrize("as_tuple", [True, False])
@pytest.mark.parametrize("with_ct", [True, False])
def test_identity_network_returns_the_fast_volume(as_tuple: bool, with_ct: bool):
    fast = small_active_volume()
    ct = np.zeros_like(fast) if with_ct else None
    model = FastChannel(as_tuple)
    out = denoise_volume(model, fast, ct, batch_size=2)
    assert out.shape == fast.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, fast, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(out[fast == 0], 0.0)
    assert count_ratio(out, fast) == pytest.approx(1.0, abs=1e-6)
    for shape in model.shapes:
        assert shape[1] == (2 if with_ct else 1)
        assert shape[2] % SIZE_MULTIPLE == 0 and shape[3] % SIZE_MULTIPLE == 0


def test_identity_network_on_a_fully_active_odd_volume():
    fast = np.random.default_rng(SEED).uniform(1.0, 50.0, (3, 37, 50)).astype(np.float32)
    out = denoise_volume(FastChannel(), fast, np.zeros_like(fast))
    np.testing.assert_allclose(out, fast, rtol=RTOL, atol=0)
    assert count_ratio(out, fast) == pytest.approx(1.0, abs=1e-6)


def test_ct_channel_reaches_the_network():
    """A network returning the CT channel gives (attenuation / its mean) * mean(fast)."""

    class CTChannel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 1:2]

    rng = np.random.default_rng(SEED)
    fast = rng.uniform(1.0, 5.0, (3, 37, 50)).astype(np.float32)  # active everywhere: the network sees all
    ct = rng.uniform(-1200.0, 800.0, fast.shape).astype(np.float32)
    attenuation = np.clip(ct.astype(np.float64) + 1000.0, 0.0, None)
    expected = attenuation / attenuation.mean() * fast.mean(dtype=np.float64)
    np.testing.assert_allclose(denoise_volume(CTChannel(), fast, ct), expected, rtol=1e-5, atol=1e-5)


def test_network_runs_only_on_the_support_window():
    fast = small_active_volume()
    out = denoise_volume(Ones(), fast, None)
    scale = float(np.mean(fast, dtype=np.float64))
    ran = out > 0
    # every pixel with counts in some slice went through the network, in every slice
    assert ran[:, fast.max(axis=0) > 0].all()
    rows, cols = np.flatnonzero(ran.any(axis=(0, 2))), np.flatnonzero(ran.any(axis=(0, 1)))
    # active rows 12..18 (7) and columns 30..40 (11) grow to 32 x 32 windows inside the 37 x 50 image
    assert rows.size == 32 and cols.size == 32
    assert rows[-1] - rows[0] == 31 and cols[-1] - cols[0] == 31
    np.testing.assert_allclose(out[ran], scale, rtol=RTOL)
    assert ran.sum() == fast.shape[0] * 32 * 32


def test_negative_predictions_are_clipped_to_zero():
    fast = small_active_volume()
    scale = float(np.mean(fast, dtype=np.float64))
    out = denoise_volume(FastChannel(offset=-1.0), fast, None)
    # prediction (fast / scale - 1) * scale = fast - scale, clipped at 0
    np.testing.assert_allclose(out, np.clip(fast - scale, 0.0, None), rtol=1e-5, atol=1e-4)
    assert (out >= 0).all()
    assert (fast - scale < 0).any()  # something was clipped


def test_progress_reports_every_batch_and_ends_at_the_slice_count():
    fast = np.random.default_rng(SEED).uniform(1.0, 2.0, (10, 33, 33)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    denoise_volume(FastChannel(), fast, None, batch_size=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)]


# --------------------------------------------------------------------------------------------- _support_window


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(37, 50), (128, 128), (20, 70)])
def test_support_window_holds_every_active_pixel(seed: int, shape: tuple[int, int]):
    rng = np.random.default_rng(seed)
    active = np.zeros(shape, dtype=bool)
    y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
    h, w = rng.integers(1, shape[0] - y0 + 1), rng.integers(1, shape[1] - x0 + 1)
    active[y0 : y0 + h, x0 : x0 + w] = rng.random((h, w)) < 0.3
    active[y0, x0] = True
    rows, cols = _support_window(active)
    ys, xs = np.nonzero(active)
    for window, n, hits in ((rows, shape[0], ys), (cols, shape[1], xs)):
        assert 0 <= window.start < window.stop <= n
        assert window.start <= hits.min() and hits.max() < window.stop
        span = hits.max() - hits.min() + 1
        expected = min(n, -(-span // SIZE_MULTIPLE) * SIZE_MULTIPLE)  # the span rounded up to 32, if it fits
        assert window.stop - window.start == expected
    assert active[rows, cols].sum() == active.sum()


def test_support_window_next_to_the_far_border_is_shifted_inside():
    active = np.zeros((40, 50), dtype=bool)
    active[39, 49] = True
    rows, cols = _support_window(active)
    assert (rows.start, rows.stop) == (8, 40)
    assert (cols.start, cols.stop) == (18, 50)


def test_support_window_of_an_empty_image_is_the_whole_image():
    rows, cols = _support_window(np.zeros((37, 50), dtype=bool))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 37, 0, 50)


def test_empty_slices_stay_zero_when_the_whole_image_is_used():
    """A volume that is zero everywhere but one slice: the other slices are zero in the output."""
    fast = np.zeros((3, 37, 50), dtype=np.float32)
    fast[1] = 2.0
    out = denoise_volume(FastChannel(), fast, None)
    np.testing.assert_array_equal(out[[0, 2]], 0.0)
    np.testing.assert_allclose(out[1], 2.0, rtol=RTOL)


# -------------------------------------------------------------------------------------------- ct_on_spect_grid

SPECT_GRID = Grid.centred((8, 16, 16), (4.0, 4.0, 4.0))  # centres at +-2, +-6, ... mm on every axis


def test_ct_covering_the_spect_resamples_a_constant():
    ct_grid = Grid.centred((30, 40, 40), (2.5, 2.0, 2.0))  # 75 x 80 x 80 mm around the 32 x 64 x 64 mm SPECT
    ct = np.full(ct_grid.shape, 40.0, dtype=np.float32)
    out = ct_on_spect_grid(ct, ct_grid, SPECT_GRID)
    assert out.shape == SPECT_GRID.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, 40.0, atol=HU_ATOL)


def test_spect_voxels_outside_the_ct_are_air():
    ct_grid = Grid.centred((4, 8, 8), (2.0, 2.0, 2.0))  # centres z in [-3, 3], x and y in [-7, 7] mm
    ct = np.full(ct_grid.shape, 40.0, dtype=np.float32)
    out = ct_on_spect_grid(ct, ct_grid, SPECT_GRID)
    z = SPECT_GRID.axis_mm("z")[:, None, None]
    y = SPECT_GRID.axis_mm("y")[None, :, None]
    x = SPECT_GRID.axis_mm("x")[None, None, :]
    inside = (np.abs(z) <= 3) & (np.abs(y) <= 7) & (np.abs(x) <= 7)
    # more than half a CT voxel (1 mm) beyond the outermost CT centres
    outside = (np.abs(z) > 4) | (np.abs(y) > 8) | (np.abs(x) > 8)
    assert inside.sum() == 2 * 4 * 4 and (inside | outside).all()
    np.testing.assert_allclose(out[inside], 40.0, atol=HU_ATOL)
    np.testing.assert_array_equal(out[outside], -1000.0)


def test_preserve_total_counts_rescales_to_the_input_total_and_keeps_the_shape_of_the_image() -> None:
    from core.nm.denoising import preserve_total_counts

    rng = np.random.default_rng(3)
    fast = rng.poisson(5.0, (4, 16, 16)).astype(np.float32)
    biased = 1.03 * rng.uniform(0.0, 10.0, fast.shape).astype(np.float32)
    out = preserve_total_counts(biased, fast)
    assert float(out.sum()) == pytest.approx(float(fast.sum()), rel=1e-5)
    # a single global factor: every voxel's ratio to the input image is the same
    ratio = out[biased > 0] / biased[biased > 0]
    assert np.ptp(ratio) < 1e-5
    zeros = np.zeros_like(fast)
    assert preserve_total_counts(zeros, fast) is zeros
