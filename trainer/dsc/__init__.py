"""Training of seed 004's stU-Net on DSC phantoms: config, data, train, export, evaluate (Table 1, Fig. 1)."""
