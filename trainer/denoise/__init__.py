"""SPECT denoising of fast (1/7-time) bone SPECT with the CT (seed 003): data, loss, training, evaluation."""
