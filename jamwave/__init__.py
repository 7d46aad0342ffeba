"""jamwave: from grains (DEM jamming) to waves (finite elements) to compressed neural surrogates.

The distribution holds three top-level packages tied together by data files:

- :mod:`granular`: DEM of frictionless bidisperse spheres (Numba CPU and CUDA), jamming, moduli.
- :mod:`wavefe`: P1 finite elements for the 2D scalar wave equation, HDF5 training datasets.
- :mod:`surrogate`: CNN surrogates with a priori compressed convolutions, PQI-driven pruning.

This package holds the command line (:mod:`jamwave.cli`), the end-to-end demo and the small
file-safety helpers (:mod:`jamwave.files`) that the three packages share.
"""

__version__ = "0.1.0"
