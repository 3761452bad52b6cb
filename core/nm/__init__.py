"""Nuclear-medicine (SPECT) images: standardisation (seed 000, Eq. 2) and resampling onto the CT grid."""
