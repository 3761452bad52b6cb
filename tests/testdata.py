"""Where the third-party test files live: ``shared/testdata`` beside the repository (as in CI).

They are read in place and never copied into the repository (see shared/testdata/README.md).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
REAL_CT_DIR = TESTDATA / "dcmqi_ct_seg"
OSIPI_DSC_CSV = TESTDATA / "osipi_dsc" / "dsc_data.csv"
