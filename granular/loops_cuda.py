"""Host side of the CUDA backend: device state, rebuilds with overflow retry, MD and FIRE loops.

Same four entry points as :mod:`granular.loops_cpu` (``evaluate``, ``pairs``, ``run_md``,
``run_fire``), same arguments and results, so :mod:`granular.simulate` and
:mod:`granular.measure` do not know which backend runs. Arrays stay on the device for a whole
call. MD reads its 4-entry flag array (rebuild needed, overflow, non-finite) once per chunk of up
to :data:`CHECK_EVERY` steps, with a restore-and-redo that keeps the results exact
(:class:`_MDLoop`); FIRE keeps its step logic on the device and reads its state once per block
of up to 64 steps (:mod:`granular.fire_cuda`); scalar sums are read only to record.
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
        self._saved = None

    def _launch(self, kernel, *args):
        blocks, threads = _grid(self.n)
        kernel[blocks, threads](*args)

    def clear_flags(self):
        self.flags.copy_to_device(np.zeros(4, np.int64))

    def read_flags(self):
        return self.flags.copy_to_host()

    def save(self):
        """Copy positions, velocities, forces (on the device) and the box, for :meth:`restore`."""
        if self._saved is None:
            self._saved = tuple(cuda.device_array_like(a) for a in (self.position, self.velocity, self.force))
        for dst, src in zip(self._saved, (self.position, self.velocity, self.force)):
            dst.copy_to_device(src)
        self._saved_box = self.box.copy()

    def restore(self):
        """Return to the state of the last :meth:`save` (same Verlet list) and clear the flags."""
        for dst, src in zip((self.position, self.velocity, self.force), self._saved):
            dst.copy_to_device(src)
        self.box = self._saved_box.copy()
        self.clear_flags()

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


CHECK_EVERY = 64  # MD steps between two flag reads in steady state (one chunk)


class _MDLoop:
    """Velocity-Verlet MD on the device, with one flag read per chunk of steps (exact).

    A chunk of n steps runs n passes and n - 1 force calls with the current Verlet list and no
    host read; then the flags are read once, between the last pass and its force call, as the
    step-by-step loop does after every pass. Clean flags mean every pass stayed within the skin,
    so the chunk equals n single steps. A flagged chunk (a particle moved past the rebuild
    threshold, or a non-finite value) is restored from the copy taken at its start and redone
    one step at a time, which rebuilds (or stops) at exactly the step the single-step loop
    would: results are identical, not merely close. Chunks end where the host knows something
    happens (a record step starts a chunk, a compression that eats the skin forces a rebuild),
    and shrink when the last rebuild interval predicts a rebuild soon, so that redos stay rare.
    """

    def __init__(self, dev, k_n, gamma_n, model, dt, damping, log_scale, steps, record_every, solid, rmax,
                 check_every):
        self.dev, self.k_n, self.gamma_n, self.model = dev, float(k_n), float(gamma_n), int(model)
        self.dt, self.damping, self.scale = dt, damping, math.exp(log_scale)
        self.steps, self.record_every, self.solid, self.rmax = steps, record_every, solid, rmax
        self.check_every = max(1, int(check_every))
        self.records = np.zeros((steps // record_every + 1 if record_every > 0 else 0, 7))
        self.n_rec = 0
        self.last_rebuild, self.interval = 0, None
        self.stats = {"flag_reads": 0, "chunks": 0, "redos": 0, "steps": steps}

    def _pass(self, step):
        """One fused Verlet pass (and its record); returns the rebuild threshold it used."""
        dev, dt = self.dev, self.dt
        kick, ke_kick = (0.5 * dt, 0.0) if step == 0 else (dt, 0.5 * dt)
        new_box = dev.box * self.scale
        threshold = rebuild_threshold(new_box, dev.box_ref, dev.skin, self.rmax)
        record_now = self.record_every > 0 and step % self.record_every == 0
        _pass(dev, dt, kick, ke_kick, self.damping, self.scale, new_box, threshold, record_now)
        if record_now:
            kinetic, acc = float(dev.scalar.copy_to_host()[0]), dev.acc.copy_to_host()
            _record(self.records, self.n_rec, step, dt, self.solid, dev.box, acc, kinetic, dev.n,
                    dev.rebuilds)
            self.n_rec += 1
        dev.box = new_box
        return threshold

    def _forces(self, step):
        measure = step + 1 == self.steps or (self.record_every > 0 and (step + 1) % self.record_every == 0)
        self.dev.forces(self.k_n, self.gamma_n, self.model, measure)

    def _chunk_length(self, step):
        """Steps of the next chunk: no record step but the first, a forced rebuild only at the end."""
        dev = self.dev
        n = min(self.check_every, self.steps - step)
        if self.record_every > 0:
            n = min(n, self.record_every - step % self.record_every)
        if self.interval is not None:
            n = min(n, max(1, int(0.8 * self.interval) - (step - self.last_rebuild)))
        box = dev.box
        for k in range(n - 1):
            box = box * self.scale
            if rebuild_threshold(box, dev.box_ref, dev.skin, self.rmax) <= 0:
                return k + 1
        return n

    def run(self):
        """Run all steps; returns (status, last step)."""
        dev, step, redo_until = self.dev, 0, 0
        while step < self.steps:
            n = 1 if step < redo_until else self._chunk_length(step)
            if n > 1:
                dev.save()
                saved_rec = self.n_rec
            for k in range(n):
                threshold = self._pass(step + k)
                if k < n - 1:
                    self._forces(step + k)
            flags = dev.read_flags()
            self.stats["flag_reads"] += 1
            self.stats["chunks"] += n > 1
            last = step + n - 1
            if n > 1 and (flags[K.FLAG_MOVED] or flags[K.FLAG_NONFINITE]):
                dev.restore()
                self.n_rec, redo_until = saved_rec, step + n
                self.stats["redos"] += 1
                continue
            if flags[K.FLAG_NONFINITE]:
                return STATUS_NONFINITE, last + 1
            if flags[K.FLAG_MOVED] or threshold <= 0:
                dev.rebuild()
                self.interval, self.last_rebuild = last + 1 - self.last_rebuild, last + 1
            self._forces(last)
            step = last + 1
        return STATUS_OK, self.steps


def run_md(position, velocity, radius, species, box, k_n, gamma_n, model, dt, damping, log_scale, steps,
           record_every, skin, check_every=None, stats=None):
    """Same contract as :func:`granular.loops_cpu.run_md` (updates the arrays in place).

    ``check_every`` caps the steps between two flag reads (default :data:`CHECK_EVERY`; 1 reads
    after every step); ``stats``, a dict, receives the counts of flag reads, chunks and redos.
    """
    dev = DeviceSystem(position, velocity, radius, species, box, skin)
    solid = float(np.sum((4.0 / 3.0) * np.pi * radius**3))
    loop = _MDLoop(dev, k_n, gamma_n, model, dt, damping, log_scale, steps, record_every, solid,
                   float(radius.max()), CHECK_EVERY if check_every is None else check_every)
    dev.rebuild()
    dev.forces(k_n, gamma_n, model)
    status, last = loop.run()
    if status == STATUS_OK and steps > 0 and dev.read_flags()[K.FLAG_NONFINITE]:
        status, last = STATUS_NONFINITE, steps
    if status == STATUS_OK:
        kick = 0.5 * dt if steps > 0 else 0.0
        _pass(dev, 0.0, kick, kick, damping, 1.0, dev.box, math.inf)
        if record_every > 0 and steps % record_every == 0:
            kinetic, acc = float(dev.scalar.copy_to_host()[0]), dev.acc.copy_to_host()
            _record(loop.records, loop.n_rec, steps, dt, solid, dev.box, acc, kinetic, dev.n, dev.rebuilds)
            loop.n_rec += 1
        lx, ly, lz = (float(v) for v in dev.box)
        dev._launch(K.wrap_kernel, dev.position, lx, ly, lz, dev.reference)
    if stats is not None:
        stats.update(loop.stats, rebuilds=dev.rebuilds)
    position[:] = dev.position.copy_to_host()
    velocity[:] = dev.velocity.copy_to_host()
    box[:] = dev.box
    return (status, last, loop.records[:loop.n_rec], dev.rebuilds, dev.force.copy_to_host(),
            dev.acc.copy_to_host())


def run_fire(position, velocity, radius, species, box, k_n, model, skin, inv_mass, par, state, stats=None):
    """Same contract and algorithm as :func:`granular.loops_cpu.run_fire` (updates the arrays in
    place); the loop is :func:`granular.fire_cuda.fire_on_device`, which fills ``stats`` (a dict:
    the length of every block of steps between two reads of the state) when given."""
    velocity[:] = 0.0
    dev = DeviceSystem(position, velocity, radius, species, box, skin, inv_mass)
    dev.rebuild()
    dev.forces(k_n, 0.0, model, measure=par[P_ENERGY_TOL] > 0.0)
    rebuilds = fire_on_device(dev, k_n, model, par, state, stats=stats)
    if state[S_HALT] != HALT_NONFINITE:
        lx, ly, lz = (float(v) for v in dev.box)
        dev._launch(K.wrap_kernel, dev.position, lx, ly, lz, dev.reference)
    dev.forces(k_n, 0.0, model)  # the same positions: energy and sums of the final state
    position[:] = dev.position.copy_to_host()
    velocity[:] = dev.velocity.copy_to_host()
    inv_mass[:] = dev.inv_mass.copy_to_host()
    return rebuilds, dev.force.copy_to_host(), dev.acc.copy_to_host()
