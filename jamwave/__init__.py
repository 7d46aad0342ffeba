"""jamwave: from grains (DEM jamming) to waves (finite elements) to compressed neural surrogates.

The distribution holds three top-level packages tied together by data files:

- :mod:`granular`: DEM of frictionless bidisperse spheres (Numba CPU and CUDA), jamming, moduli.
- :mod:`wavefe`: P1 finite elements for the 2D scalar wave equation, HDF5 training datasets.
- :mod:`surrogate`: CNN surrogates with a priori compressed convolutions, PQI-driven pruning.

This package holds the command line (:mod:`jamwave.cli`) and the end-to-end demo. What the three
packages share (the version, atomic output files) sits below them in :mod:`jamcommon`, so none of
them imports this package.
"""

from jamcommon import __version__

__all__ = ["__version__"]
