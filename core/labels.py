"""Label values shared by the simulation, the segmentation and the writers."""

from enum import IntEnum


class LungLabel(IntEnum):
    """Lung mask values (left/right in the patient's sense)."""

    BACKGROUND = 0
    RIGHT_LUNG = 1
    LEFT_LUNG = 2


class Tissue(IntEnum):
    """Tissue classes of the digital thorax phantom (uint8 label map)."""

    OUTSIDE_AIR = 0
    TABLE = 1
    FAT = 2
    MUSCLE = 3
    CORTICAL_BONE = 4
    MARROW = 5
    MEDIASTINUM = 6
    HEART = 7
    GREAT_VESSEL = 8
    AIRWAY = 9
    LUNG = 10
    PULMONARY_VESSEL = 11
    LIVER = 12
    SPLEEN = 13
    STOMACH = 14
    KIDNEY = 15
    BLADDER = 16
    SPINAL_CANAL = 17
    EFFUSION = 18
    TUMOUR = 19
    OESOPHAGUS = 20
    CARTILAGE = 21


class BrainTissue(IntEnum):
    """Tissue classes of the digital head phantom of CT perfusion (uint8 label map)."""

    OUTSIDE_AIR = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GREY_MATTER = 4
    WHITE_MATTER = 5
    ARTERY = 6
    VENOUS_SINUS = 7
