"""granular: DEM of frictionless bidisperse spheres on Numba CPU and Numba-CUDA.

Engine API (reduced units: large diameter d_L = 1, grain density 1, k_n = 1 unless set)::

    p = granular.make_packing(delta=0.5, x_small=0.5, n=4000, phi=0.3, seed=0)
    law = granular.ContactLaw(k_n=1.0, gamma_n=0.0, model="linear")
    c = granular.compress(p, law, target_phi=0.70, strain_rate=1e-3, damping=0.5)
    r = granular.fire_minimize(c.packing, law, force_tol=1e-12)
    granular.pressure(r.packing, law)        # PressureSplit(total, ss, sl, ll)
    granular.backbone(r.packing, law)        # rattlers removed, z_backbone, jammed fractions
"""

from granular.backend import resolve_backend
from granular.contact import ContactLaw
from granular.measure import (
    Backbone,
    Contacts,
    PressureSplit,
    backbone,
    contact_numbers,
    contacts,
    forces,
    pressure,
)
from granular.simulate import (
    CompressionResult,
    FireResult,
    MDResult,
    SimulationError,
    compress,
    fire_minimize,
    run_md,
)
from granular.space import Packing, make_packing, scale_to_phi

__all__ = [
    "Backbone",
    "CompressionResult",
    "ContactLaw",
    "Contacts",
    "FireResult",
    "MDResult",
    "Packing",
    "PressureSplit",
    "SimulationError",
    "backbone",
    "compress",
    "contact_numbers",
    "contacts",
    "fire_minimize",
    "forces",
    "make_packing",
    "pressure",
    "resolve_backend",
    "run_md",
    "scale_to_phi",
]
