"""Domain exceptions.  Each says what was wrong and what the user can do."""


class PerfusionMapError(Exception):
    """Base class of every error this project raises on purpose."""


class InputDataError(PerfusionMapError):
    """Raised when the input study cannot be used (no matching series, broken files, wrong geometry)."""


class NoMatchingSeriesError(InputDataError):
    """Raised when a study holds none of the series the application knows how to process."""


class SimulationParameterError(PerfusionMapError, ValueError):
    """Raised when phantom or acquisition parameters are outside their physical range."""


class NoLungsFoundError(InputDataError):
    """Raised when a CT holds no lungs (abdomen-only, head, extremity) or too little lung to segment."""


class ModelContractError(PerfusionMapError):
    """Raised when a model folder is missing, or its metadata.json does not match what the application does."""


class PacsError(PerfusionMapError):
    """Raised when a PACS cannot be reached over DICOMweb, answers with an error, or rejects stored objects."""


class StudyNotFoundError(PacsError):
    """Raised when the PACS holds no study with the requested StudyInstanceUID."""
