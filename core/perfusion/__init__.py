"""Tracer kinetics for perfusion imaging (seed 002): simulation, SVD deconvolution, perfusion parameters."""
