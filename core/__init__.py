"""Framework-free library of the perfusion imaging MAP (no monai.deploy imports here)."""
