"""Exchange studies with a PACS: pull a study and push results back over DICOMweb (:mod:`core.pacs.dicomweb`)."""
