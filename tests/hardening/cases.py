"""Bad inputs for the hardening suite, each written into a test's temporary folder.

Every study is made from the bundled synthetic sample ``dicom_samples/thorax_small`` (no patient
data): :func:`small_ct` shrinks its chest CT to 96 x 96 pixels at 4.2 mm and keeps every other
slice (48 slices 6 mm apart), which still holds both lungs, and the builders below break it in
one way each.  Sizes stay small so that one application run costs seconds.  UIDs are derived
from fixed strings, so that every build of a case is the same.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from tests.testdata import REPO_ROOT

SAMPLE_DICOM = REPO_ROOT / "dicom_samples" / "thorax_small" / "dicom"
IN_PLANE_FACTOR = 2
"""The small CT averages 2 x 2 pixels of the sample (192 -> 96 pixels, 2.1 -> 4.2 mm)."""
SLICE_STEP = 2
"""The small CT keeps every other sample slice (96 -> 48 slices, 3 -> 6 mm apart)."""
SMALL_CT_SLICES = 48
SMALL_CT_SERIES_NUMBER = 1

Builder = Callable[[Path], Path]
"""Writes one study into the given (new) folder and returns the folder to give the app."""


def uid(*parts: object) -> str:
    """A UID derived from ``parts``: the same on every build."""
    return generate_uid(entropy_srcs=["tests.hardening", *map(str, parts)])


@functools.cache
def _small_ct_template() -> tuple[Dataset, ...]:
    sources = sorted(SAMPLE_DICOM.glob("CT_*.dcm"))[::SLICE_STEP]
    slices = []
    for index, path in enumerate(sources):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        rows, columns = (n // IN_PLANE_FACTOR for n in pixels.shape)
        pooled = pixels.reshape(rows, IN_PLANE_FACTOR, columns, IN_PLANE_FACTOR).mean(axis=(1, 3))
        ds.PixelData = np.round(pooled).astype(pixels.dtype).tobytes()
        ds.Rows, ds.Columns = rows, columns
        # the first pixel's centre moves half an original pixel towards the second one
        spacing = [float(v) for v in ds.PixelSpacing]
        cosines = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        shift = (cosines[:3] * spacing[1] + cosines[3:] * spacing[0]) * (IN_PLANE_FACTOR - 1) / 2
        ds.ImagePositionPatient = [round(float(v), 4) for v in np.asarray(ds.ImagePositionPatient, float) + shift]
        ds.PixelSpacing = [v * IN_PLANE_FACTOR for v in spacing]
        ds.SliceThickness = float(ds.SliceThickness) * SLICE_STEP
        ds.InstanceNumber = index + 1
        slices.append(ds)
    return tuple(slices)


def small_ct(series: str = "small ct", series_number: int = SMALL_CT_SERIES_NUMBER) -> list[Dataset]:
    """The small chest CT (48 x 96 x 96, 6 x 4.2 x 4.2 mm), head first, LPS-ordered rows and columns.

    Every call returns new datasets; ``series`` seeds the Series and SOP Instance UIDs.
    """
    slices = [copy.deepcopy(ds) for ds in _small_ct_template()]
    series_uid = uid(series)
    for ds in slices:
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SOPInstanceUID = uid(series, ds.InstanceNumber)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return slices


def write_series(slices: Sequence[Dataset], folder: Path, prefix: str = "CT") -> list[Path]:
    """Write ``slices`` as ``folder/<prefix>_NNNN.dcm`` (each in its own transfer syntax)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(slices, start=1):
        path = folder / f"{prefix}_{index:04d}.dcm"
        if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:  # save_as() keeps the source's byte order
            pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)
        else:
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (links followed), by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- studies that end in a result ---------------------------------------------------------------


def several_ct_series(folder: Path) -> Path:
    """Five CT series in one study: the 48-slice 6 mm axial CT must win.

    The others: the same slices labelled 8 mm thick (thicker), every other slice (fewer slices),
    a coronal reformat and a localizer.  Non-DICOM files lie beside them.
    """
    write_series(small_ct(), folder / "ct_6mm")
    thick = small_ct("thick", series_number=2)
    for ds in thick:
        ds.SliceThickness = 8.0
    write_series(thick, folder / "ct_8mm")
    write_series(small_ct("sparse", series_number=3)[::2], folder / "ct_12mm")
    write_series(_coronal_reformat(), folder / "coronal")
    localizer = small_ct("localizer", series_number=5)[0]
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    write_series([localizer], folder / "localizer")
    _write_non_dicom_files(folder)
    return folder


def _coronal_reformat() -> list[Dataset]:
    """Four coronal images (no pixel meaning needed: the selection rejects them from their headers)."""
    slices = small_ct("coronal", series_number=4)[:4]
    for k, ds in enumerate(slices):
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        ds.ImagePositionPatient = [-200.0, -100.0 + 6.0 * k, 0.0]
        ds.ImageType = ["DERIVED", "SECONDARY", "REFORMATTED"]
    return slices


def _write_non_dicom_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("scanned at the front desk\n", encoding="utf-8")
    (folder / "empty.dcm").write_bytes(b"")
    (folder / ".DS_Store").write_bytes(bytes(range(256)))
    (folder / "ct_6mm" / "Thumbs.db").write_bytes(np.random.default_rng(7).bytes(2048))


TRANSFER_SYNTAXES = (JPEG2000Lossless, JPEGLSLossless, RLELossless, ImplicitVRLittleEndian, ExplicitVRBigEndian)


def mixed_transfer_syntaxes(folder: Path) -> Path:
    """The small CT with its slices in turn in each of :data:`TRANSFER_SYNTAXES` (all lossless)."""
    slices = small_ct("mixed transfer syntaxes")
    for k, ds in enumerate(slices):
        _encode(ds, TRANSFER_SYNTAXES[k % len(TRANSFER_SYNTAXES)])
    write_series(slices, folder)
    return folder


def _encode(ds: Dataset, transfer_syntax: str) -> None:
    if transfer_syntax in (JPEG2000Lossless, JPEGLSLossless, RLELossless):
        ds.compress(transfer_syntax)
    elif transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    elif transfer_syntax == ExplicitVRBigEndian:
        pixels = ds.pixel_array
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        raise ValueError(f"no encoder for transfer syntax {transfer_syntax}")


def feet_first(folder: Path) -> Path:
    """The small CT as a feet-first supine scanner writes it.

    Columns run towards the patient's right (row cosine -x), so the slice normal points to the
    feet, and the instances are numbered from the feet up.
    """
    slices = small_ct("feet first")
    for ds in slices:
        _flip_in_plane(ds, flip_rows=False, flip_columns=True)
        ds.PatientPosition = "FFS"
        ds.InstanceNumber = SMALL_CT_SLICES + 1 - int(ds.InstanceNumber)
    write_series(slices, folder)
    return folder


def ras_ordered(folder: Path) -> Path:
    """The small CT stored in RAS order: columns run to the patient's right, rows to the front."""
    slices = small_ct("ras")
    for ds in slices:
        _flip_in_plane(ds, flip_rows=True, flip_columns=True)
    write_series(slices, folder)
    return folder


def _flip_in_plane(ds: Dataset, *, flip_rows: bool, flip_columns: bool) -> None:
    """Store the same anatomy with reversed rows and/or columns (pixels, orientation and position)."""
    pixels = ds.pixel_array
    cosines = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    row_step = cosines[:3] * float(ds.PixelSpacing[1])  # between columns
    column_step = cosines[3:] * float(ds.PixelSpacing[0])  # between rows
    position = np.asarray([float(v) for v in ds.ImagePositionPatient])
    if flip_columns:
        pixels = pixels[:, ::-1]
        position = position + row_step * (int(ds.Columns) - 1)
        cosines[:3] = -cosines[:3]
    if flip_rows:
        pixels = pixels[::-1, :]
        position = position + column_step * (int(ds.Rows) - 1)
        cosines[3:] = -cosines[3:]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.ImageOrientationPatient = [float(v) for v in cosines]
    ds.ImagePositionPatient = [round(float(v), 4) for v in position]


def gantry_tilt(tilt_deg: float) -> Builder:
    """The small CT as if acquired with the gantry tilted by ``tilt_deg`` about the patient's x axis.

    The image planes are tilted (column cosine ``(0, cos t, sin t)``) while the table moves along
    z, so the slice positions are sheared with respect to the slice normal.
    """

    def build(folder: Path) -> Path:
        slices = small_ct(f"tilt {tilt_deg}")
        radians = np.radians(tilt_deg)
        for ds in slices:
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, float(np.cos(radians)), float(np.sin(radians))]
            ds.GantryDetectorTilt = tilt_deg
        write_series(slices, folder)
        return folder

    return build


def add_exact_duplicates(folder: Path) -> None:
    """Copy five of the slices in ``folder`` once more under other names (the same instances)."""
    for path in sorted(folder.glob("CT_*.dcm"))[10:15]:
        (folder / f"copy_of_{path.name}").write_bytes(path.read_bytes())


def add_corrupted_file(folder: Path) -> None:
    """Add ``garbage.dcm``: the DICOM preamble and prefix followed by random bytes."""
    rng = np.random.default_rng(11)
    (folder / "garbage.dcm").write_bytes(bytes(128) + b"DICM" + rng.bytes(4096))


def small_ct_study(folder: Path) -> Path:
    """The small CT alone."""
    write_series(small_ct(), folder)
    return folder


def pixel_digests(output: Path) -> dict[str, str]:
    """SHA-256 of the pixel data of every DICOM object in ``output``, by file name (UIDs differ between runs).

    Integer images hold PixelData, parametric maps FloatPixelData or DoubleFloatPixelData.
    """
    digests = {}
    for path in sorted(output.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if keyword in ds:
                digests[f"{path.name} {keyword}"] = hashlib.sha256(ds[keyword].value).hexdigest()
    return digests


# --- studies that must be refused ---------------------------------------------------------------


def single_slice(folder: Path) -> Path:
    """One CT slice: no volume."""
    write_series(small_ct()[20:21], folder)
    return folder


def missing_slice(folder: Path) -> Path:
    """The small CT without its 21st slice: a 12 mm gap in a 6 mm stack."""
    slices = small_ct()
    write_series(slices[:20] + slices[21:], folder)
    return folder


def conflicting_duplicates(folder: Path) -> Path:
    """Two different images (other instance, other pixels) at the position of the 21st slice."""
    slices = small_ct()
    extra = copy.deepcopy(slices[20])
    extra.SOPInstanceUID = uid("conflicting duplicate")
    extra.file_meta.MediaStorageSOPInstanceUID = extra.SOPInstanceUID
    extra.PixelData = (extra.pixel_array // 2).tobytes()
    write_series([*slices, extra], folder)
    return folder


def uneven_spacing(folder: Path) -> Path:
    """Slices 6 mm apart in the lower half and 7 mm apart in the upper half."""
    slices = small_ct()
    for k, ds in enumerate(slices[SMALL_CT_SLICES // 2 :], start=1):
        position = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [position[0], position[1], round(position[2] + k * 1.0, 4)]
    write_series(slices, folder)
    return folder


def truncated_slice(folder: Path) -> Path:
    """A slice of the CT cut off in the middle of its pixel data (an interrupted transfer)."""
    paths = write_series(small_ct(), folder)
    data = paths[20].read_bytes()
    paths[20].write_bytes(data[: len(data) - 4000])
    return folder


def truncated_header(folder: Path) -> Path:
    """A file cut off inside its header, after the 'DICM' prefix."""
    paths = write_series(small_ct(), folder)
    paths[20].write_bytes(paths[20].read_bytes()[:600])
    return folder


def corrupted_pixel_data(folder: Path) -> Path:
    """A JPEG 2000 CT whose 21st slice has its compressed stream overwritten with random bytes."""
    slices = small_ct("corrupted jpeg 2000")
    for ds in slices:
        ds.compress(JPEG2000Lossless)
    frame = pydicom.encaps.generate_frames(slices[20].PixelData, number_of_frames=1)
    length = len(next(frame))
    garbage = np.random.default_rng(12).bytes(length)
    slices[20].PixelData = pydicom.encaps.encapsulate([garbage])
    write_series(slices, folder)
    return folder


LARGE_PADDING_SERIES = 3
LARGE_PADDING_SLICES = 100
LARGE_PADDING_PIXELS = 512
"""The large study adds 3 x 100 coronal 512 x 512 reformats (150 MiB of pixel data) to the small CT."""


def large_study(folder: Path) -> Path:
    """The small CT and 150 MiB of series the app does not use (coronal reformats, rejected as not axial)."""
    write_series(small_ct(), folder / "ct")
    template = small_ct("padding")[0]
    pixels = np.zeros((LARGE_PADDING_PIXELS, LARGE_PADDING_PIXELS), dtype=np.uint16)
    pixels[::7, :] = 1000  # some structure, the same in every image
    for number in range(LARGE_PADDING_SERIES):
        series = []
        for k in range(LARGE_PADDING_SLICES):
            ds = copy.deepcopy(template)
            ds.SeriesInstanceUID = uid("padding", number)
            ds.SeriesNumber = 100 + number
            ds.SOPInstanceUID = uid("padding", number, k)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            ds.ImageType = ["DERIVED", "SECONDARY", "REFORMATTED"]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
            ds.ImagePositionPatient = [-200.0, -150.0 + 3.0 * k, 150.0]
            ds.Rows = ds.Columns = LARGE_PADDING_PIXELS
            ds.PixelData = pixels.tobytes()
            series.append(ds)
        write_series(series, folder / f"reformat_{number}", prefix="MPR")
    return folder


@dataclass(frozen=True)
class Identity:
    """Patient identifiers that must never reach a log or the run record."""

    name: str = "QUILLFEATHER^ZENOBIA^MARISOL"
    patient_id: str = "ZQ-77031-X"
    birth_date: str = "19370914"
    accession_number: str = "ACC5519ZQ"

    def variants(self) -> tuple[str, ...]:
        """Every form a leak could take: name parts, the name with spaces, the date with and without dashes."""
        parts = self.name.split("^")
        date = self.birth_date
        dashed, dotted = f"{date[:4]}-{date[4:6]}-{date[6:]}", f"{date[6:]}.{date[4:6]}.{date[:4]}"
        slashed = f"{date[4:6]}/{date[6:]}/{date[:4]}"
        identifiers = (self.patient_id, self.accession_number)
        return (self.name, " ".join(parts), *parts, *identifiers, date, dashed, dotted, slashed)


def set_identity(folder: Path, identity: Identity) -> None:
    """Give every DICOM file under ``folder`` the patient ``identity`` (rewritten in place: a copy only)."""
    for path in sorted(folder.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:  # the non-DICOM files of a case
            continue
        ds.PatientName = identity.name
        ds.PatientID = identity.patient_id
        ds.PatientBirthDate = identity.birth_date
        ds.AccessionNumber = identity.accession_number
        ds.save_as(path)


def add_sample_spect(folder: Path) -> None:
    """Copy the sample's perfusion and ventilation SPECT (the small CT's study and Frame of Reference)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("NM_PERFUSION.dcm", "NM_VENTILATION.dcm"):
        shutil.copy(SAMPLE_DICOM / name, folder / name)
