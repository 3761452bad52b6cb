"""Validate seed 004's low-dose simulation (Eq. 1) the way the paper did, on phantoms.

``python -m trainer.low_dose_validation --out runs/dsc_low_dose [--cases 5] [--first-seed 500]``

The paper injected a rat twice (0.10 and 0.05 mmol/kg), degraded the full-dose sequence with
Eq. 1 at ``d = 0.5`` and compared the brain-average signals with the half-dose acquisition by eye
(its Figure 4).  Here each phantom brain is simulated at full dose and directly at the reduced dose
(:func:`core.simulation.dsc_phantom.make_dsc_phantom` with ``dose``: the same patient, the same
noise), and the full-dose signal is degraded with :func:`core.perfusion.dsc.low_dose_signal`.  The
difference is stated in numbers:

* brain-average curves: the largest absolute difference over time, as a percentage of the directly
  simulated signal drop at the bolus peak;
* voxel by voxel (brain, every frame): the root-mean-square difference, against the noise
  standard deviation;
* the brain-average Delta R2* at the peak, degraded against direct.

Writes ``low_dose_validation.json`` and ``low_dose_validation.png`` (a phantom's frame at the bolus
peak at full dose, degraded and direct half dose, and the brain-average curves, as the paper's
Figure 4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from core.perfusion.dsc import baseline_frames_of, delta_r2star, low_dose_signal
from core.simulation.dsc_params import DSC_PRESETS, DscSpec
from core.simulation.dsc_phantom import DscPhantom, make_dsc_phantom

DOSES = (0.5, 0.25)


def compare(full: DscPhantom, direct: DscPhantom) -> dict[str, float]:
    """Figures of Eq. 1 at ``direct.dose`` for one brain (see the module docstring)."""
    brain = full.brain_mask
    degraded = low_dose_signal(full.signal, direct.dose)
    mean_degraded = degraded[:, brain].mean(axis=1)
    mean_direct = direct.signal[:, brain].mean(axis=1)
    n_base = baseline_frames_of(full.signal, brain)
    drop = float(mean_direct[:n_base].mean() - mean_direct.min())
    rms = float(np.sqrt(np.mean((degraded[:, brain] - direct.signal[:, brain]) ** 2)))
    te = full.spec.te_s
    peak = int(np.argmin(mean_direct))
    dr2_degraded = float(delta_r2star(mean_degraded[:, None], te, n_base)[peak, 0])
    dr2_direct = float(delta_r2star(mean_direct[:, None], te, n_base)[peak, 0])
    return {
        "dose": direct.dose,
        "brain_mean_max_abs_difference": float(np.abs(mean_degraded - mean_direct).max()),
        "signal_drop_direct": drop,
        "max_difference_percent_of_drop": 100.0 * float(np.abs(mean_degraded - mean_direct).max()) / drop,
        "voxel_rms_difference": rms,
        "noise_sd": full.spec.noise_sd,
        "peak_delta_r2_degraded_per_s": dr2_degraded,
        "peak_delta_r2_direct_per_s": dr2_direct,
    }


def figure(full: DscPhantom, direct: DscPhantom, path: Path) -> None:
    """The paper's Figure 4 on a phantom: frames at the bolus peak and brain-average curves."""
    brain = full.brain_mask
    degraded = low_dose_signal(full.signal, direct.dose)
    mean_direct = direct.signal[:, brain].mean(axis=1)
    peak = int(np.argmin(mean_direct))
    z = int(np.argmax(brain.sum(axis=(1, 2))))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    frames = (
        (full.signal, "full dose"),
        (degraded, f"Eq. 1, d = {direct.dose:g}"),
        (direct.signal, f"simulated at {direct.dose:g} dose"),
    )
    vmax = float(np.percentile(full.signal[0, z], 99.5))
    for ax, (signal, title) in zip(axes[:3], frames, strict=True):
        ax.imshow(signal[peak, z], cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(f"{title}, t = {full.times_s[peak]:.0f} s")
        ax.axis("off")
    t = full.times_s
    axes[3].plot(t, full.signal[:, brain].mean(axis=1), label="full dose")
    axes[3].plot(t, degraded[:, brain].mean(axis=1), label=f"Eq. 1 (d = {direct.dose:g})")
    axes[3].plot(t, mean_direct, "--", label=f"direct {direct.dose:g} dose")
    axes[3].set_xlabel("time (s)")
    axes[3].set_ylabel("brain-average signal")
    axes[3].legend()
    fig.suptitle("Low-dose simulation (seed 004 Eq. 1) on a digital phantom - research use, not patient data")
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.92))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def validate(spec: DscSpec, seeds: range, out: Path) -> dict[str, object]:
    """Compare Eq. 1 with direct low-dose phantoms for every seed and dose; write the JSON and figure."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        full = make_dsc_phantom(spec, seed)
        for dose in DOSES:
            direct = make_dsc_phantom(spec, seed, dose=dose)
            rows.append({"seed": seed, **compare(full, direct)})
            if seed == seeds[0] and dose == DOSES[0]:
                figure(full, direct, out / "low_dose_validation.png")
    summary: dict[str, object] = {"cases": len(seeds), "rows": rows}
    for dose in DOSES:
        chosen = [r for r in rows if r["dose"] == dose]
        summary[f"dose_{dose:g}"] = {
            key: float(np.median([r[key] for r in chosen]))
            for key in ("max_difference_percent_of_drop", "voxel_rms_difference", "noise_sd")
        }
    (out / "low_dose_validation.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.low_dose_validation", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=500)
    parser.add_argument("--preset", choices=sorted(DSC_PRESETS), default="training")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    summary = validate(DSC_PRESETS[args.preset], range(args.first_seed, args.first_seed + args.cases), args.out)
    for dose in DOSES:
        s = summary[f"dose_{dose:g}"]
        assert isinstance(s, dict)
        print(
            f"dose {dose:g}: brain-average max |Eq. 1 - direct| = {s['max_difference_percent_of_drop']:.1f} % "
            f"of the signal drop; voxel RMS difference {s['voxel_rms_difference']:.2f} (noise sd {s['noise_sd']:g}); "
            f"median of {args.cases} phantoms"
        )
    print(f"figure: {args.out / 'low_dose_validation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
