"""DICOM input and output of the synthetic studies: CT and NM series as a SPECT/CT scanner writes them.

Modules
-------
study
    :class:`~core.dicom.study.PatientStudy` and :func:`~core.dicom.study.synthetic_patient_study`.
ct_writer, ct_reader
    Axial CT Image Storage series (one file per slice) from/to a HU volume on a :class:`core.geometry.Grid`.
ctp_writer, ctp_reader
    4D CT perfusion: one CT series of single-frame images per slice and time point, from/to ``(T, z, y, x)`` HU.
mr_writer
    The MR Image Storage header (:func:`~core.dicom.mr_writer.mr_template`) and the MR pulse sequence.
dsc_writer, dsc_reader
    DSC-MRI perfusion: one MR series of single-frame images per slice and time point, from/to ``(T, z, y, x)`` signal.
dynamic_reader
    What the 4D readers share: grouping by slice position, completeness, frame times and geometry checks.
nm_writer
    Reconstructed SPECT as one multi-frame NM Image Storage object, and :func:`~core.dicom.nm_writer.read_nm_volume`.
radiopharmaceuticals
    Tc-99m tracers and their DICOM codes.
modules, plane
    Shared IOD module building blocks and the axial-orientation convention.
"""
