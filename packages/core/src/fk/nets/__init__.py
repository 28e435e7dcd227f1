"""Shared neural networks that several plugins build on (import-light: submodules import torch).

- :mod:`fk.nets.stylegan2`: StyleGAN2-ADA's generator and discriminator with NVIDIA's parameter
  names, and a loader for NVIDIA's ``.pkl`` snapshots that never runs pickled code.
"""
