"""Generative-model metrics shared by the plugins (import-light: submodules import numpy/scipy/torch).

- :mod:`fk.metrics.fid`: Fréchet and kernel Inception distances on feature arrays (torch-fidelity's
  formulas and defaults), with the feature statistics they need.
- :mod:`fk.metrics.ssim`: structural similarity with kornia's conventions (CoRA's validation metric).
"""
