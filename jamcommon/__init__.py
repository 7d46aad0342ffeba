"""What granular, wavefe, surrogate and the jamwave command share: the version and safe output files.

This package sits below the three libraries and imports none of them (nor :mod:`jamwave`), so each
library stands on its own: :mod:`jamcommon.files` writes every output atomically and refuses to
overwrite without an explicit flag, and :data:`__version__` is the distribution's version, the one
recorded in every file the project writes (the build reads it from here).
"""

__version__ = "0.1.0"
