"""Digital phantoms and acquisition physics (no patient data).

- :mod:`core.simulation.thorax` - the thorax phantom (anatomy, CT, lung function, pathology);
- :mod:`core.simulation.tracers` - MAA, Technegas and MDP activity distributions;
- :mod:`core.simulation.spect` - SPECT projection, Poisson counts and OSEM;
- :mod:`core.simulation.nema` - the NEMA IEC body phantom;
- :mod:`core.simulation.head`, :mod:`core.simulation.ctp_phantom` - the brain CT-perfusion (stroke) phantom;
- :mod:`core.simulation.study`, :mod:`core.simulation.ctp_study` - writing cases as DICOM studies with ground truth;
- ``python -m core.simulation`` - the cohort generator.
"""
