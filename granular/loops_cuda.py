"""Host side of the CUDA backend: device state, rebuilds with overflow retry, MD and FIRE loops.

Same four entry points as :mod:`granular.loops_cpu` (``evaluate``, ``pairs``, ``run_md``,
``run_fire``), same arguments and results, so :mod:`granular.simulate` and
:mod:`granular.measure` do not know which backend runs. Arrays stay on the device for a whole
call; in MD the host reads a 4-entry flag array after every step (rebuild needed, overflow,
non-finite) and scalar sums only when it records; FIRE keeps its step logic on the device and
checks every few steps (:mod:`granular.fire_cuda`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from granular import kernels_cuda as K
from granular.fire_cuda import fire_on_device
from granular.integrator import HALT_NONFINITE, P_ENERGY_TOL, S_HALT
from granular.partition import grid_dims, radius_levels, rebuild_threshold

STATUS_OK, STATUS_NONFINITE = 0, 1


def _grid(n):
    return ((n + K.THREADS - 1) // K.THREADS,), (K.THREADS,)


class DeviceSystem:
    """Particles, Verlet list and scratch on the GPU, with host copies of the box."""

    def __init__(self, position, velocity, radius, species, box, skin, inv_mass=None):
        self.n = len(radius)
        self.radius_host = np.ascontiguousarray(radius, dtype=np.float64)
        self.level_host, self.level_rmax = radius_levels(self.radius_host)
        self.box = np.array(box, dtype=np.float64)
        self.box_ref = self.box.copy()
        self.skin = float(skin)
        self.position = cuda.to_device(np.ascontiguousarray(position, dtype=np.float64))
        self.velocity = cuda.to_device(np.ascontiguousarray(velocity, dtype=np.float64))
        self.radius = cuda.to_device(self.radius_host)
        self.species = cuda.to_device(np.ascontiguousarray(species, dtype=np.int8))
        self.level = cuda.to_device(self.level_host)
        if inv_mass is None:
            inv_mass = 1.0 / ((4.0 / 3.0) * np.pi * self.radius_host**3)
        self.inv_mass = cuda.to_device(np.ascontiguousarray(inv_mass, dtype=np.float64))
        self.force = cuda.device_array((self.n, 3), dtype=np.float64)
        self.reference = cuda.device_array((self.n, 3), dtype=np.float64)
        self.flags = cuda.to_device(np.zeros(4, np.int64))
        self.acc = cuda.to_device(np.zeros(K.N_ACC))
        self.scalar = cuda.to_device(np.zeros(3))
        self.cell_cap = 8
        self.max_nbr = 16
        self.neighbours = None
        self.counts = cuda.device_array(self.n, dtype=np.int64)
        self.rebuilds = 0
        self.reallocations = 0

    def _launch(self, kernel, *args):
        blocks, threads = _grid(self.n)
        kernel[blocks, threads](*args)

    def clear_flags(self):
        self.flags.copy_to_device(np.zeros(4, np.int64))

    def read_flags(self):
        return self.flags.copy_to_host()

    def rebuild(self):
        """Wrap, bin into per-level grids and build the half list; grow capacities on overflow."""
        lx, ly, lz = (float(v) for v in self.box)
        self._launch(K.wrap_kernel, self.position, lx, ly, lz, self.reference)
        counts = np.bincount(self.level_host, minlength=self.level_rmax.size)
        dims = np.array([grid_dims(self.box, 2.0 * r + self.skin, int(c))
                         for r, c in zip(self.level_rmax, counts)], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(np.prod(dims, axis=1))]).astype(np.int64)
        d_dims, d_offset = cuda.to_device(dims), cuda.to_device(offset)
        while True:
            self.clear_flags()
            cell_count = cuda.to_device(np.zeros(offset[-1], np.int64))
            cell_list = cuda.device_array(offset[-1] * self.cell_cap, dtype=np.int64)
            self._launch(K.bin_kernel, self.position, self.level, d_dims, d_offset, lx, ly, lz, cell_count,
                         cell_list, self.cell_cap, self.flags)
            flags = self.read_flags()
            if flags[K.FLAG_CELL] > 0:
                self.cell_cap = int(flags[K.FLAG_CELL] * 1.25) + 1
                self.reallocations += 1
                continue
            if self.neighbours is None or self.neighbours.size != self.max_nbr * self.n:
                self.neighbours = cuda.device_array(self.max_nbr * self.n, dtype=np.int64)
            self._launch(K.neighbour_kernel, self.position, self.radius, self.level, d_dims, d_offset, lx,
                         ly, lz, self.skin, cell_count, cell_list, self.cell_cap, self.neighbours,
                         self.counts, self.max_nbr, self.flags)
            flags = self.read_flags()
            if flags[K.FLAG_NBR] > 0:
                self.max_nbr = int(flags[K.FLAG_NBR] * 1.25) + 1
                self.reallocations += 1
                continue
            break
        self.box_ref = self.box.copy()
        self.rebuilds += 1

    def forces(self, k_n, gamma_n, model, measure=True):
        """Contact forces into self.force; sums into self.acc (on the device) if ``measure``."""
        if measure:
            self.acc.copy_to_device(np.zeros(K.N_ACC))
        self._launch(K.zero_kernel, self.force)
        lx, ly, lz = (float(v) for v in self.box)
        self._launch(K.force_kernel, self.position, self.velocity, self.radius, self.species, lx, ly, lz,
                     self.neighbours, self.counts, float(k_n), float(gamma_n), int(model), self.force,
                     self.acc, self.flags, 1 if measure else 0)

    def pairs(self):
        counts = self.counts.copy_to_host()
        table = self.neighbours.copy_to_host().reshape(self.max_nbr, self.n)
        owner = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        first = np.cumsum(counts) - counts
        slot = np.arange(owner.size, dtype=np.int64) - np.repeat(first, counts)
        return owner, table[slot, owner]


def evaluate(position, velocity, radius, species, box, k_n, gamma_n, model):
    dev = DeviceSystem(position, velocity, radius, species, box, 0.0)
    dev.rebuild()
    dev.forces(k_n, gamma_n, model)
    return dev.force.copy_to_host(), dev.acc.copy_to_host()


def pairs(position, radius, box):
    dev = DeviceSystem(position, np.zeros_like(position), radius, np.zeros(len(radius), np.int8), box, 0.0)
    dev.rebuild()
    return dev.pairs()


def _record(records, n_rec, step, dt, solid, box, acc, kinetic, n, rebuilds):
    volume = float(np.prod(box))
    records[n_rec] = (step * dt, solid / volume, (acc[1] + acc[2] + acc[3]) / (3.0 * volume),
                      2.0 * acc[4] / n, kinetic, acc[0], rebuilds)


def _pass(dev, dt, kick, ke_kick, damping, scale, new_box, threshold, measure=True):
    s = new_box / dev.box_ref
    if measure:
        dev.scalar.copy_to_device(np.zeros(3))
    dev._launch(K.verlet_kernel, dev.position, dev.velocity, dev.force, dev.inv_mass, dev.reference,
                float(s[0]), float(s[1]), float(s[2]), float(new_box[0]), float(new_box[1]),
                float(new_box[2]), dt, kick, ke_kick, float(damping), float(scale), max(threshold, 0.0),
                dev.scalar, dev.flags)


def run_md(position, velocity, radius, species, box, k_n, gamma_n, model, dt, damping, log_scale, steps,
           record_every, skin):
    """Same contract as :func:`granular.loops_cpu.run_md` (updates the arrays in place)."""
    n = len(radius)
    dev = DeviceSystem(position, velocity, radius, species, box, skin)
    solid = float(np.sum((4.0 / 3.0) * np.pi * radius**3))
    rmax = float(radius.max())
    records = np.zeros((steps // record_every + 1 if record_every > 0 else 0, 7))
    n_rec = 0
    dev.rebuild()
    dev.forces(k_n, gamma_n, model)
    scale = math.exp(log_scale)
    status, last = STATUS_OK, steps
    # one flag read per step: the pass reports displacement and non-finite values, the force
    # kernel's non-finite flag persists and is seen at the next read
    for step in range(steps):
        kick, ke_kick = (0.5 * dt, 0.0) if step == 0 else (dt, 0.5 * dt)
        new_box = dev.box * scale
        threshold = rebuild_threshold(new_box, dev.box_ref, dev.skin, rmax)
        record_now = record_every > 0 and step % record_every == 0
        _pass(dev, dt, kick, ke_kick, damping, scale, new_box, threshold, record_now)
        if record_now:
            kinetic, acc = float(dev.scalar.copy_to_host()[0]), dev.acc.copy_to_host()
            _record(records, n_rec, step, dt, solid, dev.box, acc, kinetic, n, dev.rebuilds)
            n_rec += 1
        dev.box = new_box
        flags = dev.read_flags()
        if flags[K.FLAG_NONFINITE]:
            status, last = STATUS_NONFINITE, step + 1
            break
        if flags[K.FLAG_MOVED] or threshold <= 0:
            dev.rebuild()
        measure = step + 1 == steps or (record_every > 0 and (step + 1) % record_every == 0)
        dev.forces(k_n, gamma_n, model, measure)
    if status == STATUS_OK and steps > 0 and dev.read_flags()[K.FLAG_NONFINITE]:
        status, last = STATUS_NONFINITE, steps
    if status == STATUS_OK:
        kick = 0.5 * dt if steps > 0 else 0.0
        _pass(dev, 0.0, kick, kick, damping, 1.0, dev.box, math.inf)
        if record_every > 0 and steps % record_every == 0:
            kinetic, acc = float(dev.scalar.copy_to_host()[0]), dev.acc.copy_to_host()
            _record(records, n_rec, steps, dt, solid, dev.box, acc, kinetic, n, dev.rebuilds)
            n_rec += 1
        lx, ly, lz = (float(v) for v in dev.box)
        dev._launch(K.wrap_kernel, dev.position, lx, ly, lz, dev.reference)
    position[:] = dev.position.copy_to_host()
    velocity[:] = dev.velocity.copy_to_host()
    box[:] = dev.box
    return status, last, records[:n_rec], dev.rebuilds, dev.force.copy_to_host(), dev.acc.copy_to_host()


def run_fire(position, velocity, radius, species, box, k_n, model, skin, inv_mass, par, state):
    """Same contract and algorithm as :func:`granular.loops_cpu.run_fire` (updates the arrays in
    place); the loop is :func:`granular.fire_cuda.fire_on_device`."""
    velocity[:] = 0.0
    dev = DeviceSystem(position, velocity, radius, species, box, skin, inv_mass)
    dev.rebuild()
    dev.forces(k_n, 0.0, model, measure=par[P_ENERGY_TOL] > 0.0)
    rebuilds = fire_on_device(dev, k_n, model, par, state)
    if state[S_HALT] != HALT_NONFINITE:
        lx, ly, lz = (float(v) for v in dev.box)
        dev._launch(K.wrap_kernel, dev.position, lx, ly, lz, dev.reference)
    dev.forces(k_n, 0.0, model)  # the same positions: energy and sums of the final state
    position[:] = dev.position.copy_to_host()
    velocity[:] = dev.velocity.copy_to_host()
    inv_mass[:] = dev.inv_mass.copy_to_host()
    return rebuilds, dev.force.copy_to_host(), dev.acc.copy_to_host()
