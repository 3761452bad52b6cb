"""Denoise a fast (1/7-time) bone SPECT with the CT (U2-Net, seed 003) and write the derived NM series."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries

from core.nm.denoising_model import DenoisingModel
from core.nm.denoising_outputs import DenoisingSeriesNumbers, denoise_study, write_denoising_outputs
from core.orientation import canonical
from core.run_record import OutputFile, StageTimings
from operators.ct_volume_operator import CtVolume
from operators.nm_volume_operator import source_file

logger = logging.getLogger(__name__)

FAST_BONE = "bone_fast"
"""Selection role of a fast bone SPECT (see app.config.BONE_FAST)."""


class SpectDenoisingOperator(Operator):
    """Denoise the study's fast bone SPECT; write a derived NM series and a comparison Secondary Capture.

    The model is loaded and its contract checked once, when the operator is built.  The CT is used
    only when it shares the SPECT's Frame of Reference (it is resampled onto the SPECT grid); a
    model that needs the CT is not run without one, with a warning.  Without a fast bone SPECT the
    operator passes the file list on unchanged.

    Named inputs
    ------------
    ``INPUT_NM_SERIES``: ``list[StudySelectedSeries]`` (selection name = role), for the source file.
    ``INPUT_NM_VOLUMES``: ``dict[str, tuple[numpy.ndarray, Grid]]`` by role, from :class:`operators.NmVolumeOperator`.
    ``INPUT_NM_FRAMES``: ``dict[str, str]``, their FrameOfReferenceUIDs.
    ``INPUT_CT``: :class:`operators.ct_volume_operator.CtVolume` or ``None``.
    ``INPUT_FILES``: ``list[core.run_record.OutputFile]`` written before.

    Named outputs
    -------------
    ``OUTPUT_FILES``: the earlier files, then the derived NM and the comparison picture.
    ``OUTPUT_SUMMARY``: dict for the run record, or ``None`` when nothing was denoised.
    """

    INPUT_NM_SERIES = "nm_series"
    INPUT_NM_VOLUMES = "nm_volumes"
    INPUT_NM_FRAMES = "nm_frames_of_reference"
    INPUT_CT = "ct_volume"
    INPUT_FILES = "files_so_far"
    OUTPUT_FILES = "output_files"
    OUTPUT_SUMMARY = "denoising_summary"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        model_dir: Path,
        output_dir: Path,
        app_version: str,
        timings: StageTimings,
        series_numbers: DenoisingSeriesNumbers | None = None,
        **kwargs: Any,
    ) -> None:
        """Load the model once (raises :class:`core.errors.ModelContractError` on a bad model)."""
        self._model = DenoisingModel(model_dir)
        self._output_dir = Path(output_dir)
        self._app_version = app_version
        self._timings = timings
        self._numbers = series_numbers or DenoisingSeriesNumbers()
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        for name in (
            self.INPUT_NM_SERIES,
            self.INPUT_NM_VOLUMES,
            self.INPUT_NM_FRAMES,
            self.INPUT_CT,
            self.INPUT_FILES,
        ):
            spec.input(name)
        spec.output(self.OUTPUT_FILES)
        spec.output(self.OUTPUT_SUMMARY).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Denoise when the study has a fast bone SPECT; pass the file list on."""
        selected = op_input.receive(self.INPUT_NM_SERIES)
        volumes = op_input.receive(self.INPUT_NM_VOLUMES)
        frames = op_input.receive(self.INPUT_NM_FRAMES)
        ct = op_input.receive(self.INPUT_CT)
        earlier = op_input.receive(self.INPUT_FILES)
        if not isinstance(volumes, dict) or not isinstance(frames, dict):
            raise TypeError(f"{self.INPUT_NM_VOLUMES} and {self.INPUT_NM_FRAMES} must be dicts by role")
        if ct is not None and not isinstance(ct, CtVolume):
            raise TypeError(f"{self.INPUT_CT} must be a CtVolume or None, got {type(ct).__name__}")
        if not isinstance(earlier, list) or not all(isinstance(f, OutputFile) for f in earlier):
            raise TypeError(f"{self.INPUT_FILES} must be a list of OutputFile")
        written = list(earlier)
        summary = None
        if FAST_BONE in volumes:
            summary = self._denoise(selected, volumes, frames, ct, written)
        op_output.emit(written, self.OUTPUT_FILES)
        op_output.emit(summary, self.OUTPUT_SUMMARY)

    def _denoise(
        self, selected: Any, volumes: dict, frames: dict, ct: CtVolume | None, written: list[OutputFile]
    ) -> dict[str, Any] | None:
        source = _source_of(selected, FAST_BONE)
        fast, grid = volumes[FAST_BONE]
        ct_frame = str(ct.slices[0].get("FrameOfReferenceUID", "")) if ct is not None else ""
        same_frame = bool(ct_frame) and frames.get(FAST_BONE) == ct_frame
        if self._model.needs_ct and not same_frame:
            why = "no CT in the study" if ct is None else "the CT has another Frame of Reference than the SPECT"
            logger.warning("Fast bone SPECT not denoised: the model needs the CT of the SPECT's frame (%s)", why)
            return {"not_denoised": f"the denoising model needs the CT of the SPECT's Frame of Reference: {why}"}
        with self._timings.measure(self.name):
            ct_hu = ct_grid = None
            if ct is not None and same_frame:
                ct_hu, ct_grid, _ = canonical(ct.hu, ct.affine_lps)
            result = denoise_study(self._model, fast, grid, ct_hu, ct_grid)
        logger.info("Denoised the fast bone SPECT in %.1f s (counts out/in %.4f)", result.seconds, result.count_ratio)
        paths = write_denoising_outputs(
            result,
            source,
            self._output_dir,
            app_version=self._app_version,
            numbers=self._numbers,
            timings=self._timings,
        )
        written += [OutputFile.from_dicom(path, self._output_dir) for path in paths]
        return result.summary()


def _source_of(selected: Any, role: str) -> Path:
    """The file of the series chosen for ``role``."""
    if not isinstance(selected, list) or not all(isinstance(s, StudySelectedSeries) for s in selected):
        raise TypeError(f"nm_series must be a list of StudySelectedSeries, got {type(selected).__name__}")
    for study in selected:
        for chosen in study.selected_series:
            if chosen.selection_name == role:
                return source_file(chosen.series.get_sop_instances())
    raise ValueError(f"no series was selected for {role!r}")
