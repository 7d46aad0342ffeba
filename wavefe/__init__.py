"""wavefe: P1 finite elements for the 2D scalar wave equation ``u_tt = div(c^2 grad u) + f``.

Public API::

    mesh = wavefe.rectangle(128)                         # structured triangle mesh of [0,1]^2
    c = wavefe.media.layered(mesh.points, [1.0, 2.0], [0.5])
    dt = 0.8 * wavefe.stable_dt(mesh, c)
    sim = wavefe.ExplicitWave(mesh, c, dt=dt, boundary="absorbing",
                              sources=[wavefe.RickerSource(0.5, 0.5, frequency=5.0)])
    frames = sim.run(n_frames=50, save_every=4)          # (50, n_nodes) float32
    wavefe.generate_dataset("train.h5", n_samples=100, grid=64, n_frames=50, save_every=4)
"""

from wavefe import assemble, media, sources
from wavefe.dataset import SCHEMA, generate_dataset, generate_splits, read_sample
from wavefe.explicit import ExplicitWave, stable_dt
from wavefe.mesh import TriMesh, from_arrays, read_mesh, rectangle
from wavefe.newmark import NewmarkWave
from wavefe.samples import DatasetConfig
from wavefe.sources import GaussianPulse, RickerSource, ricker
from wavefe.xdmf import write_xdmf

__all__ = [
    "SCHEMA", "DatasetConfig", "ExplicitWave", "GaussianPulse", "NewmarkWave", "RickerSource",
    "TriMesh", "assemble", "from_arrays", "generate_dataset", "generate_splits", "media",
    "read_mesh", "read_sample", "rectangle", "ricker", "sources", "stable_dt", "write_xdmf",
]
