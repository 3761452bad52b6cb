"""Training side of the product: the networks of the seed papers, their data, training, evaluation and export.

Dependencies point one way: ``trainer`` may import ``core``; nothing in ``core``, ``operators`` or ``app``
imports ``trainer``. The app only loads the TorchScript files that the trainer exports.
"""
