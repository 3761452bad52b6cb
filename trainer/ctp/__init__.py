"""Training of seed 002's CTP Transformer on simulated tissue curves: config, data, loss, train, export."""
