"""granular: DEM of frictionless bidisperse spheres on Numba CPU and Numba-CUDA.

Engine API (reduced units: large diameter d_L = 1, grain density 1, k_n = 1 unless set)::

    p = granular.make_packing(delta=0.5, x_small=0.5, n=4000, phi=0.3, seed=0)
    law = granular.ContactLaw(k_n=1.0, gamma_n=0.0, model="linear")
    c = granular.compress(p, law, target_phi=0.70, strain_rate=1e-3, damping=0.5)
    r = granular.fire_minimize(c.packing, law, force_tol=1e-12)
    granular.pressure(r.packing, law)        # PressureSplit(total, ss, sl, ll)
    granular.backbone(r.packing, law)        # rattlers removed, z_backbone, jammed fractions

Protocols (reduced units as above)::

    jam = granular.find_jamming(p)                     # O'Hern FIRE-relaxed bisection in phi
    m = granular.bulk_modulus(granular.compress_to(jam.packing, jam.phi_j + 0.01))
    results, packing, jam = granular.jam_run(0.5, 0.5, n=2000, excess_phi=0.01, out="p.h5")
    granular.jamming_diagram([0.15], [0.1, 0.2, 0.3], 3, "sweep/")   # Executor or Dask

Modules: :mod:`~granular.space` (Packing, box, periodic geometry), :mod:`~granular.generate`
(random packings), :mod:`~granular.partition` (size levels, cell grids, the neighbour scan,
Verlet lists), :mod:`~granular.contact` (the pair law; like the geometry, one source for both
targets), :mod:`~granular.accumulators` (the sums of a force call),
:mod:`~granular.kernels_cpu` / :mod:`~granular.loops_cpu` (Numba CPU),
:mod:`~granular.kernels_cuda` / :mod:`~granular.loops_cuda` / :mod:`~granular.fire_cuda`
(Numba-CUDA), :mod:`~granular.integrator` (Verlet and FIRE updates, one source for both targets),
:mod:`~granular.backend` (choice of backend), :mod:`~granular.simulate` (MD, compression),
:mod:`~granular.minimize` (FIRE 2.0, preconditioners, relaxation), :mod:`~granular.enthalpy` /
:mod:`~granular.enthalpy_cpu` (FIRE with the box: relaxation at a target pressure),
:mod:`~granular.measure` (forces, contacts, pressure split, rattlers),
:mod:`~granular.reference` (brute-force O(N^2) check); protocols: :mod:`~granular.jamming`
(phi_J; its ladder methods in :mod:`~granular.pressure_ladder`, :mod:`~granular.enthalpy_ladder`),
:mod:`~granular.elasticity` (bulk modulus), :mod:`~granular.follow` (state following,
second transition), :mod:`~granular.diagram` (sweeps), :mod:`~granular.h5md` (packing files),
:mod:`~granular.h5md_reader` (reading every H5MD 1.1 form of a packing),
:mod:`~granular.protocol` (the jam-to-file run), :mod:`~granular.slice_plot`.

Additions to the team contract (all keyword arguments with defaults, so contract calls work):
``contacts``, ``pressure``, ``backbone`` take ``backend``; ``run_md`` takes ``record_every``,
``skin``, ``progress`` and returns ``MDResult(packing, history, steps, dt, rebuilds, force,
kinetic_energy, potential_energy, backend)``; ``compress`` takes ``dt``, ``skin``, ``progress``
and its history also holds ``potential_energy`` and ``rebuilds``; ``fire_minimize`` takes
``dt``, ``skin``, ``preconditioner`` and ``params`` (:class:`FireParams`) and its result also
holds ``force`` and the counters. Background damping is the force
-damping * v_i (LAMMPS ``fix viscous``). CPU threads: all of Numba's threads from 2048 particles
per thread up, one below; ``JAMWAVE_THREADS`` sets the number.
"""

from granular.backend import Engine, resolve_backend, resolve_engine
from granular.contact import ContactLaw
from granular.diagram import DiagramSettings, jamming_diagram, read_diagram, transition_crossover
from granular.elasticity import BulkModulus, bulk_modulus, linear_response
from granular.follow import follow_compression, second_transition
from granular.generate import make_packing
from granular.h5md import PackingFileError, read_packing, read_results, write_packing
from granular.jamming import JammingResult, compress_to, find_jamming
from granular.lbfgs import LbfgsParams, LbfgsResult, lbfgs_minimize
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
from granular.minimize import FireParams, FireResult, fire_minimize
from granular.protocol import jam_run
from granular.simulate import (
    CompressionResult,
    MDResult,
    SimulationError,
    compress,
    run_md,
)
from granular.space import Packing, scale_to_phi

__all__ = [
    "Backbone",
    "BulkModulus",
    "DiagramSettings",
    "JammingResult",
    "PackingFileError",
    "bulk_modulus",
    "compress_to",
    "find_jamming",
    "follow_compression",
    "jam_run",
    "jamming_diagram",
    "linear_response",
    "read_diagram",
    "read_packing",
    "read_results",
    "second_transition",
    "transition_crossover",
    "write_packing",
    "CompressionResult",
    "ContactLaw",
    "Contacts",
    "FireParams",
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
    "lbfgs_minimize",
    "LbfgsParams",
    "LbfgsResult",
    "forces",
    "make_packing",
    "pressure",
    "resolve_backend",
    "resolve_engine",
    "Engine",
    "run_md",
    "scale_to_phi",
]
