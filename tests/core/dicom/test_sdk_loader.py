"""The MONAI Deploy SDK's DICOM loader accepts the synthetic study and reads the CT as written.

Known SDK 4.0 limitations (not defects of the files, which highdicom and SimpleITK read
correctly): DICOMSeriesToVolumeOperator multiplies PixelSpacing[0] (the spacing between
rows, dy) into the x column of its affine, so its affine is wrong for non-square pixels;
and it does not stack a multi-frame NM object into a volume -- use
``core.dicom.nm_writer.read_nm_volume`` for NM.
"""

from __future__ import annotations

import numpy as np
from holoscan.core import Fragment
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy

HU_TOLERANCE = 1.0
CT_RULES = {"selections": [{"name": "CT", "conditions": {"Modality": "(?i)CT"}}]}


def test_sdk_loads_one_study_with_the_ct_and_both_spect_series(written_study: WrittenStudy) -> None:
    fragment = Fragment()
    studies = DICOMDataLoaderOperator(fragment, name="loader").load_data_to_studies(
        written_study.ct_paths[0].parents[1]
    )
    assert [s.StudyInstanceUID for s in studies] == [written_study.study.study_instance_uid]
    series = studies[0].get_all_series()
    assert sorted((s.Modality, len(s.get_sop_instances())) for s in series) == [("CT", 10), ("NM", 1), ("NM", 1)]

    selected = DICOMSeriesSelectorOperator(fragment, name="selector").filter(CT_RULES, studies)
    image = DICOMSeriesToVolumeOperator(fragment, name="to_volume", affine_lps_to_ras=False).convert_to_image(selected)
    np.testing.assert_allclose(image.asnumpy(), written_study.hu, atol=HU_TOLERANCE)
    affine = np.asarray(image.metadata()["affine"], dtype=np.float64)
    np.testing.assert_allclose(affine[:3, 3], CT_GRID.origin_lps_mm, atol=1e-4)
    np.testing.assert_allclose(affine[:3, 2], [0.0, 0.0, CT_GRID.spacing_mm[0]], atol=1e-4)
