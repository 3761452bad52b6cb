"""Brain-tumour DSC-MRI phantom: a T2*-weighted perfusion time series with its true perfusion maps.

Steps (deterministic for a seed; independent random streams for anatomy, tumour, physiology, AIF
and noise, so that the same seed at another dose gives the same patient and the same noise):

1. head anatomy of the CTP phantom (:func:`core.simulation.head.head_anatomy`; its stroke layout is
   not used) and a tumour (:class:`core.simulation.dsc_params.TumourParams`): an irregular
   ellipsoid with an enhancing rim, a necrotic centre and surrounding oedema, all parenchyma (CSF
   clefts inside it are filled);
2. per-voxel true CBF, CBV, MTT = CBV / CBF x 60 s, bolus arrival delay and dispersion T_A with a
   smooth spatial variation, quantised as in the CTP phantom; one noise-free concentration curve per
   distinct parameter set by :func:`core.perfusion.simulation.simulate_curves` (seed 002 Eqs. 1,
   5-7, one global AIF), arteries carry the AIF, the venous sinuses a delayed, dispersed copy;
3. the MR signal ``S = S0 exp(-TE * dose * k * C)`` (:mod:`core.simulation.dsc_params`; ``k`` larger in
   tissue than in blood), blurred
   in-plane by the EPI point-spread function, plus Gaussian noise, clipped at 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.errors import SimulationParameterError
from core.geometry import Grid
from core.labels import BrainTissue
from core.perfusion.aif import AIF_KINDS, AifShape
from core.simulation.ctp_params import sample_head_params
from core.simulation.ctp_phantom import AIF_TIME_SCALE, BolusTiming, noise_free_curves, quantise
from core.simulation.dsc_params import DscPhysiology, DscSpec, TumourParams, sample_tumour_params
from core.simulation.head import HeadAnatomy, head_anatomy, smooth_field
from core.simulation.shapes import centred_axes_mm

logger = logging.getLogger(__name__)

TUMOUR_NONE, TUMOUR_OEDEMA, TUMOUR_ENHANCING, TUMOUR_NECROSIS = 0, 1, 2, 3
"""Values of :attr:`DscPhantom.tumour_regions`."""
TRUTH_NAMES = ("cbv_ml_100g", "cbf_ml_100g_min", "mtt_s")


@dataclass(frozen=True)
class DscPhantom:
    """One simulated DSC acquisition and its truth.

    Attributes
    ----------
    signal
        ``(T, nz, ny, nx)`` float32 MR signal of every frame (noisy, >= 0).
    s0
        ``(nz, ny, nx)`` float32 noise-free baseline signal.
    truth
        True maps ``(nz, ny, nx)`` float32 named by :data:`TRUTH_NAMES`; zero outside the parenchyma.
    tumour_regions
        ``TUMOUR_*`` values (uint8).
    arterial_dr2, venous_dr2
        ``(T,)`` noise-free ``Delta R2*`` (1/s) of arterial blood and of the venous sinus at this dose.
    dr2_per_unit
        ``Delta R2*`` (1/s) per unit of the AIF model's concentration at full dose.
    """

    spec: DscSpec
    seed: int
    dose: float
    anatomy: HeadAnatomy
    tumour: TumourParams
    physiology: DscPhysiology
    aif: AifShape
    signal: np.ndarray
    s0: np.ndarray
    truth: dict[str, np.ndarray]
    tumour_regions: np.ndarray
    arterial_dr2: np.ndarray
    venous_dr2: np.ndarray
    dr2_per_unit: float
    n_curves: int

    @property
    def grid(self) -> Grid:
        """Geometry of every frame."""
        return self.anatomy.grid

    @property
    def times_s(self) -> np.ndarray:
        """``(T,)`` frame times from the first frame (s)."""
        return self.spec.times_s

    @property
    def brain_mask(self) -> np.ndarray:
        """Everything inside the skull: parenchyma, tumour, CSF and vessels."""
        return self.anatomy.brain_mask

    @property
    def tissue_mask(self) -> np.ndarray:
        """Parenchyma including the tumour (no CSF, no vessels)."""
        return self.anatomy.tissue_mask

    @property
    def tumour_mask(self) -> np.ndarray:
        """The enhancing (high blood volume) part of the tumour."""
        return self.tumour_regions == TUMOUR_ENHANCING


def tumour_layout(anatomy: HeadAnatomy, tumour: TumourParams, rng: np.random.Generator) -> np.ndarray:
    """``TUMOUR_*`` region of every voxel; the tumour and oedema replace CSF clefts by parenchyma.

    Modifies ``anatomy.labels`` in place: CSF inside the tumour or oedema becomes white matter.
    """
    grid = anatomy.grid
    z, y, x = centred_axes_mm(grid)
    cz, cy, cx = tumour.centre_mm
    sz, sy, sx = tumour.semi_axes_mm
    q = np.sqrt(((z - cz) / sz) ** 2 + ((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2)
    q = q - 0.15 * smooth_field(grid, 12.0, rng)
    labels = anatomy.labels
    parenchyma = anatomy.brain_mask & ((labels == BrainTissue.CSF) | anatomy.tissue_mask)
    regions = np.zeros(grid.shape, dtype=np.uint8)
    regions[parenchyma & (q < tumour.oedema_reach)] = TUMOUR_OEDEMA
    regions[parenchyma & (q < 1.0)] = TUMOUR_ENHANCING
    regions[parenchyma & (q < tumour.necrotic_fraction)] = TUMOUR_NECROSIS
    labels[(regions != TUMOUR_NONE) & (labels == BrainTissue.CSF)] = BrainTissue.WHITE_MATTER
    return regions


def _lerp(bounds: tuple[float, float], s: np.ndarray) -> np.ndarray:
    return bounds[0] + (bounds[1] - bounds[0]) * s


def _unit(field: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + 0.25 * field, 0.0, 1.0)


def tissue_parameters(
    anatomy: HeadAnatomy, regions: np.ndarray, phys: DscPhysiology, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Continuous true CBF, MTT, delay and T_A of every parenchymal voxel, ``(V,)`` in ``tissue_mask`` order."""
    grid, tissue = anatomy.grid, anatomy.tissue_mask
    fields = [smooth_field(grid, 30.0, rng)[tissue] for _ in range(4)]
    tumour_field = _unit(smooth_field(grid, 8.0, rng)[tissue])
    grey = anatomy.labels[tissue] == BrainTissue.GREY_MATTER
    region = regions[tissue]
    cbf = np.where(grey, phys.gm_cbf_ml_100g_min, phys.wm_cbf_ml_100g_min) * (1.0 + phys.cbf_variation * fields[0])
    mtt_normal = np.where(
        grey, phys.gm_cbv_ml_100g / phys.gm_cbf_ml_100g_min, phys.wm_cbv_ml_100g / phys.wm_cbf_ml_100g_min
    )
    mtt = 60.0 * mtt_normal * (1.0 + 0.5 * phys.cbf_variation * fields[1])
    delay = _lerp(phys.normal_delay_s, _unit(fields[2]))
    ta = _lerp(phys.normal_ta_s, _unit(fields[3]))
    cbv = cbf * mtt / 60.0

    enhancing, necrosis, oedema = (region == r for r in (TUMOUR_ENHANCING, TUMOUR_NECROSIS, TUMOUR_OEDEMA))
    cbv = np.select(
        [enhancing, necrosis, oedema],
        [
            _lerp(phys.tumour_cbv_ml_100g, tumour_field),
            np.full_like(cbv, phys.necrosis_cbv_ml_100g),
            phys.oedema_cbv_ml_100g * (1.0 + phys.cbf_variation * fields[0]),
        ],
        cbv,
    )
    mtt = np.select(
        [enhancing, necrosis, oedema],
        [
            _lerp(phys.tumour_mtt_s, 1.0 - tumour_field),
            np.full_like(mtt, phys.necrosis_mtt_s),
            np.full_like(mtt, phys.oedema_mtt_s),
        ],
        mtt,
    )
    in_tumour = enhancing | necrosis
    delay = np.where(in_tumour, _lerp(phys.tumour_delay_s, tumour_field), delay)
    ta = np.where(in_tumour, _lerp(phys.tumour_ta_s, tumour_field), ta)
    return {"cbf_ml_100g_min": 60.0 * cbv / mtt, "mtt_s": mtt, "delay_s": delay, "ta_s": ta}


def _concentration_table(
    values: dict[str, np.ndarray], spec: DscSpec, phys: DscPhysiology, aif: AifShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Noise-free ``Delta R2*`` (1/s, full dose): tissue sets ``(U, T)``, arterial and venous blood ``(T,)``."""
    tissue, arterial, venous, peak = noise_free_curves(values, BolusTiming.of(spec, phys), aif)
    per_unit = spec.arterial_peak_dr2_per_s / peak
    return spec.tissue_relaxivity_ratio * per_unit * tissue, per_unit * arterial, per_unit * venous, per_unit


def baseline_signal(anatomy: HeadAnatomy, regions: np.ndarray, spec: DscSpec, phys: DscPhysiology) -> np.ndarray:
    """Noise-free ``S0`` of every voxel (float32) from the tissue labels and tumour regions."""
    rel = dict(phys.relative_s0)
    lut = np.zeros(256, dtype=np.float32)
    for label in BrainTissue:
        lut[int(label)] = rel.get(label.name.lower(), 0.0)
    s0 = lut[anatomy.labels]
    for region, name in ((TUMOUR_ENHANCING, "tumour"), (TUMOUR_NECROSIS, "necrosis"), (TUMOUR_OEDEMA, "oedema")):
        s0[(regions == region) & anatomy.tissue_mask] = rel[name]
    return (spec.s0_reference * s0).astype(np.float32)


def make_dsc_phantom(
    spec: DscSpec,
    seed: int,
    dose: float = 1.0,
    physiology: DscPhysiology | None = None,
    tumour: TumourParams | None = None,
) -> DscPhantom:
    """Simulate one DSC case (see the module docstring); the same ``seed`` gives the same patient and noise.

    Parameters
    ----------
    spec
        Grid, timing and MR acquisition.
    seed
        Seed of every random draw.
    dose
        Injected dose relative to the standard 0.1 mmol/kg (scales the concentration), in (0, 2].
    physiology, tumour
        Overrides of the default physiology and of the drawn tumour.
    """
    if not 0.0 < dose <= 2.0:
        raise SimulationParameterError(f"dose must be in (0, 2] (relative to the standard dose), got {dose}")
    phys = physiology or DscPhysiology()
    grid = Grid.centred(spec.shape, spec.spacing_mm)
    anatomy_rng, tumour_rng, physiology_rng, aif_rng, noise_rng = (np.random.default_rng([seed, k]) for k in range(5))
    anatomy = head_anatomy(grid, sample_head_params(anatomy_rng), anatomy_rng)
    tumour = tumour or sample_tumour_params(tumour_rng)
    regions = tumour_layout(anatomy, tumour, tumour_rng)
    kind = spec.aif_kind or AIF_KINDS[int(aif_rng.integers(len(AIF_KINDS)))]
    aif = AifShape(kind, time_scale=float(aif_rng.uniform(*AIF_TIME_SCALE)))

    values, inverse = quantise(tissue_parameters(anatomy, regions, phys, physiology_rng))
    values["cbv_ml_100g"] = values["cbf_ml_100g_min"] * values["mtt_s"] / 60.0
    table, arterial, venous, per_unit = _concentration_table(values, spec, phys, aif)

    dr2 = np.zeros((spec.n_frames, *grid.shape), dtype=np.float32)
    flat = dr2.reshape(spec.n_frames, -1)
    tissue = anatomy.tissue_mask
    flat[:, np.flatnonzero(tissue)] = table[inverse].T
    labels = anatomy.labels.reshape(-1)
    flat[:, labels == BrainTissue.ARTERY] = arterial[:, None]
    flat[:, labels == BrainTissue.VENOUS_SINUS] = venous[:, None]

    s0 = baseline_signal(anatomy, regions, spec, phys)
    signal = s0[None] * np.exp(-spec.te_s * dose * dr2)
    if spec.blur_sigma_mm > 0:
        _, dy, dx = grid.spacing_mm
        sigma = (0.0, 0.0, spec.blur_sigma_mm / dy, spec.blur_sigma_mm / dx)
        signal = ndimage.gaussian_filter(signal, sigma=sigma, mode="nearest", truncate=3.0)
    signal += noise_rng.normal(0.0, spec.noise_sd, size=signal.shape).astype(np.float32)
    np.clip(signal, 0.0, None, out=signal)

    truth = {}
    for name in TRUTH_NAMES:
        volume = np.zeros(grid.shape, dtype=np.float32)
        volume[tissue] = values[name][inverse]
        truth[name] = volume
    logger.info("DSC phantom seed %d dose %.2f: %d distinct tissue curves", seed, dose, len(table))
    return DscPhantom(
        spec,
        seed,
        dose,
        anatomy,
        tumour,
        phys,
        aif,
        signal.astype(np.float32),
        s0,
        truth,
        regions,
        dose * arterial,
        dose * venous,
        per_unit,
        len(table),
    )
