"""Bulk modulus of a jammed packing: isotropic strain with relaxation, and Hessian linear response.

Two independent methods for K = dP/d(epsilon_v), with epsilon_v = -dV/V (positive in compression):

1. :func:`bulk_modulus` (``method="strain"``): scale box and positions by (1 -+ epsilon_v)^(1/3),
   relax each state with FIRE, and take the central difference of the contact-virial pressure.
   The pressure split P = P_SS + P_SL + P_LL gives the partial moduli K_SS, K_SL, K_LL.
2. :func:`linear_response` : for a pair potential U = sum_c V(d_c) at mechanical equilibrium,

       K = (sum_c V''(d_c) d_c^2 - Xi^T H^+ Xi) / (9 V) + 2 P / 3,

   where H is the 3N x 3N Hessian of the contact network (sparse), Xi = d^2U / (dr de) the force
   field that an affine isotropic stretch e creates, and H^+ Xi the non-affine relaxation. The
   ``2P/3`` term is the change of the virial's volume and lever arms at fixed forces; it makes the
   result the exact derivative that the strain method approximates. Rattlers (no contacts) are
   dropped; the translation null space is projected out of Xi, and the singular system is solved
   with a shifted sparse LU factorisation followed by iterative refinement with the unshifted H.

Units: reduced (d_L = 1, k_n = 1 unless set); K* = K d_L / k_n is dimensionless for linear contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from granular.contact import ContactLaw
from granular.measure import pair_forces

PAIR_TYPES = ("LL", "SL", "SS")  # pair_type codes 0, 1, 2 of granular.measure.contacts


@dataclass(frozen=True)
class LinearResponse:
    """Bulk modulus by linear response (units k_n / d_L).

    Attributes
    ----------
    K : float
        Bulk modulus, affine minus non-affine part plus the 2P/3 term.
    K_affine, K_nonaffine : float
        sum V'' d^2 / (9V) and Xi^T H^+ Xi / (9V); ``K = K_affine - K_nonaffine + 2P/3``.
    K_SS, K_SL, K_LL : float
        Partial moduli dP_type/d(epsilon_v) from the same non-affine displacement field.
    pressure : float
        Contact-virial pressure of the state.
    residual : float
        Relative residual ||H u + Xi|| / ||Xi|| of the non-affine solve.
    n_active : int
        Particles with at least one contact (the others are rattlers without contacts).
    """

    K: float
    K_affine: float
    K_nonaffine: float
    K_SS: float
    K_SL: float
    K_LL: float
    pressure: float
    residual: float
    n_active: int


def contact_stiffness(overlap: np.ndarray, law) -> tuple[np.ndarray, np.ndarray]:
    """Elastic normal force f(xi) (the kernels' pair law) and stiffness df/dxi of each contact,
    shape (M,) each."""
    force = pair_forces(overlap, law)
    overlap = np.asarray(overlap, dtype=np.float64)
    k_n = float(getattr(law, "k_n", 1.0))
    if getattr(law, "model", "linear") == "hertz":
        return force, 1.5 * k_n * np.sqrt(np.maximum(overlap, 0.0))
    return force, np.full_like(overlap, k_n)


def contact_hessian(
    n_particles: int,
    i: np.ndarray,
    j: np.ndarray,
    normal: np.ndarray,
    distance: np.ndarray,
    force: np.ndarray,
    stiffness: np.ndarray,
) -> sp.csr_matrix:
    """Hessian d^2U/dr dr of a network of central contacts, shape (3N, 3N), CSR.

    Each contact c (between i and j, unit normal n from i to j, centre distance d, repulsive force
    f, stiffness k = df/dxi) adds the block ``B = k n n^T - (f/d) (I - n n^T)`` at (i,i) and (j,j)
    and ``-B`` at (i,j) and (j,i).
    """
    n = np.asarray(normal, dtype=np.float64)
    m = n.shape[0]
    outer = n[:, :, None] * n[:, None, :]
    eye = np.broadcast_to(np.eye(3), (m, 3, 3))
    ratio = (np.asarray(force) / np.asarray(distance))[:, None, None]
    block = np.asarray(stiffness)[:, None, None] * outer - ratio * (eye - outer)
    a = np.arange(3)
    rows_local = np.repeat(a, 3)
    cols_local = np.tile(a, 3)
    rows, cols, vals = [], [], []
    for p, q, sign in ((i, i, 1.0), (j, j, 1.0), (i, j, -1.0), (j, i, -1.0)):
        rows.append((3 * np.asarray(p)[:, None] + rows_local[None, :]).ravel())
        cols.append((3 * np.asarray(q)[:, None] + cols_local[None, :]).ravel())
        vals.append(sign * block.reshape(m, 9).ravel())
    size = 3 * n_particles
    return sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsr()


def _solve_singular(h: sp.csr_matrix, rhs: np.ndarray, refinements: int = 6) -> tuple[np.ndarray, float]:
    """Solve H u = rhs for symmetric positive semi-definite H and rhs orthogonal to its null space."""
    diag = h.diagonal()
    shift = 1e-10 * float(np.mean(np.abs(diag))) if diag.size else 0.0
    lu = spla.splu((h + shift * sp.identity(h.shape[0], format="csr")).tocsc())
    u = lu.solve(rhs)
    norm = float(np.linalg.norm(rhs)) or 1.0
    for _ in range(refinements):
        r = rhs - h @ u
        if np.linalg.norm(r) <= 1e-13 * norm:
            break
        u += lu.solve(r)
    return u, float(np.linalg.norm(rhs - h @ u) / norm)


def linear_response_from_contacts(
    n_particles: int,
    volume: float,
    i: np.ndarray,
    j: np.ndarray,
    normal: np.ndarray,
    distance: np.ndarray,
    overlap: np.ndarray,
    pair_type: np.ndarray,
    law,
) -> LinearResponse:
    """Bulk modulus by linear response from a contact list (see the module docstring).

    Parameters
    ----------
    n_particles : int
        N.
    volume : float
        Box volume V.
    i, j : ndarray (M,) int
        Particles of each contact.
    normal : ndarray (M, 3)
        Unit vector from i to j (minimum image).
    distance, overlap : ndarray (M,)
        Centre distance d and overlap xi = r_i + r_j - d > 0.
    pair_type : ndarray (M,)
        0 = large-large, 1 = small-large, 2 = small-small.
    law : ContactLaw
        ``model`` (linear or hertz) and ``k_n``.
    """
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    normal = np.asarray(normal, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(distance, dtype=np.float64)
    pair_type = np.asarray(pair_type)
    force, stiff = contact_stiffness(overlap, law)
    if i.size == 0:
        raise ValueError("the packing has no contacts: it is below jamming, so K is not defined")

    # Renumber to the particles that have contacts; the others are free rattlers (null modes).
    active = np.unique(np.concatenate([i, j]))
    index = np.full(n_particles, -1, dtype=np.int64)
    index[active] = np.arange(active.size)
    ia, ja = index[i], index[j]
    n_act = active.size

    h = contact_hessian(n_act, ia, ja, normal, d, force, stiff)
    # Xi_i = d^2 U / (dr_i de): -k d n on i, +k d n on j.
    xi_c = (stiff * d)[:, None] * normal
    xi = np.zeros((n_act, 3))
    np.add.at(xi, ia, -xi_c)
    np.add.at(xi, ja, xi_c)
    xi -= xi.mean(axis=0)  # exact zero sum up to round-off: remove the translation component
    u, residual = _solve_singular(h, -xi.ravel())
    u = u.reshape(n_act, 3)

    pressure_c = force * d / (3.0 * volume)
    k_affine = float(np.sum(stiff * d * d) / (9.0 * volume))
    k_nonaffine = float(-(xi.ravel() @ u.ravel()) / (9.0 * volume))
    pressure = float(pressure_c.sum())
    k_total = k_affine - k_nonaffine + 2.0 * pressure / 3.0

    # Partial moduli: K_c = -(1/3) dP_c/de, dP_c/de = (f - k d)(d + n.(u_j - u_i)) / (3V) - 3 P_c.
    stretch = d + np.einsum("ck,ck->c", normal, u[ja] - u[ia])
    dp_de = (force - stiff * d) * stretch / (3.0 * volume) - 3.0 * pressure_c
    k_c = -dp_de / 3.0
    partial = {name: float(k_c[pair_type == code].sum()) for code, name in enumerate(PAIR_TYPES)}
    return LinearResponse(
        K=k_total,
        K_affine=k_affine,
        K_nonaffine=k_nonaffine,
        K_SS=partial["SS"],
        K_SL=partial["SL"],
        K_LL=partial["LL"],
        pressure=pressure,
        residual=residual,
        n_active=int(n_act),
    )


def linear_response(packing, law=None, *, backbone_only: bool = True, backend="auto") -> LinearResponse:
    """Bulk modulus of a relaxed packing by Hessian linear response.

    Parameters
    ----------
    packing : granular.space.Packing
        A mechanically relaxed state above jamming (run FIRE first: the formula assumes zero net
        force on every particle).
    law : granular.contact.ContactLaw, optional
        Contact law (default ``ContactLaw()``, linear with k_n = 1).
    backbone_only : bool
        Keep only contacts between backbone particles (rattlers removed iteratively,
        :func:`granular.measure.backbone`). Rattlers touching the backbone with fewer than four
        contacts add floppy or unstable modes to H that carry no load; at a converged minimum their
        forces are at the level of the force tolerance, so dropping them changes P negligibly and
        keeps the non-affine solve well posed.
    backend : {"auto", "cpu", "cuda"} or granular.backend.Engine
        Where the contacts are found.

    Returns
    -------
    LinearResponse
    """
    from granular.measure import contacts

    law = ContactLaw() if law is None else law
    c = contacts(packing, law, backend=backend)
    keep = np.ones(c.i.size, dtype=bool)
    if backbone_only:
        from granular.measure import backbone

        jammed = backbone(packing, law, backend=backend).jammed
        keep = jammed[c.i] & jammed[c.j]
    return linear_response_from_contacts(
        packing.n, packing.volume, c.i[keep], c.j[keep], c.normal[keep], c.distance[keep],
        c.overlap[keep], c.pair_type[keep], law
    )


@dataclass(frozen=True)
class BulkModulus:
    """Bulk modulus of a jammed packing (units k_n / d_L for linear contacts).

    Attributes
    ----------
    K, K_SS, K_SL, K_LL : float
        Strain method: dP/d(epsilon_v) and its split by contact type (NaN if not computed).
    K_star : float
        K d_L / k_n (from the strain method, else from linear response).
    K_linear_response, K_linear_response_SS, K_linear_response_SL, K_linear_response_LL : float
        Hessian linear response (NaN if not computed).
    strain : float
        Volumetric strain amplitude epsilon_v of the strain method.
    pressure, pressure_SS, pressure_SL, pressure_LL : float
        Pressure split of the relaxed reference state.
    phi : float
        Packing fraction of the reference state.
    z_backbone : float
        Mean contact number of the backbone.
    """

    K: float
    K_SS: float
    K_SL: float
    K_LL: float
    K_star: float
    K_linear_response: float
    K_linear_response_SS: float
    K_linear_response_SL: float
    K_linear_response_LL: float
    strain: float
    pressure: float
    pressure_SS: float
    pressure_SL: float
    pressure_LL: float
    phi: float
    z_backbone: float

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__}


METHODS = ("both", "strain", "linear_response")


def bulk_modulus(
    packing,
    law: ContactLaw | None = None,
    *,
    strain: float = 1e-5,
    method: str = "both",
    force_tol: float = 1e-13,
    max_steps: int = 10**6,
    backend: str = "auto",
) -> BulkModulus:
    """Bulk modulus K = dP/d(epsilon_v) of a packing above jamming, with partial moduli.

    The packing is first relaxed with FIRE (the reference state). The strain method compresses and
    dilates it by a volumetric strain ``strain`` (V = V0 (1 -+ strain), affine rescaling of box and
    positions), relaxes both states with FIRE, and takes central differences of P, P_SS, P_SL and
    P_LL. The linear-response method (:func:`linear_response`) uses the Hessian of the reference.

    Parameters
    ----------
    packing : granular.space.Packing
        A jammed packing (e.g. from ``find_jamming`` compressed by ``excess_phi``).
    law : ContactLaw, optional
        Default linear, k_n = 1.
    strain : float
        Volumetric strain amplitude, in (0, 1e-2].
    method : {"both", "strain", "linear_response"}
    force_tol : float
        FIRE convergence, max |F_i| in units of k_n d_L.
    max_steps : int
        Step cap of one FIRE relaxation (reaching it raises RuntimeError).
    backend : {"auto", "cpu", "cuda"}

    Raises
    ------
    ValueError
        For a strain outside (0, 1e-2], an unknown method, a packing below jamming (no
        force-bearing backbone), or a strain large enough to unjam the dilated state.
    """
    from granular.backend import resolve_engine

    law = ContactLaw() if law is None else law
    _check_modulus_arguments(strain, method)
    backend = resolve_engine(backend)
    tol = force_tol * law.k_n
    ref, bb = _relaxed_reference(packing, law, tol, max_steps, backend)
    k = k_split = lr = None
    if method in ("both", "strain"):
        k, k_split = _strain_moduli(ref.packing, law, strain, tol, max_steps, backend)
    if method in ("both", "linear_response"):
        lr = linear_response(ref.packing, law, backend=backend)
    return _bulk_modulus_record(ref, bb.z_backbone, law, strain, k, k_split, lr)


def _check_modulus_arguments(strain: float, method: str) -> None:
    """Raise ValueError for a strain outside (0, 1e-2] or a method not in :data:`METHODS`."""
    if not (np.isfinite(strain) and 0 < strain <= 1e-2):
        raise ValueError(f"strain must be a small volumetric strain in (0, 0.01], got {strain}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _relaxed_reference(packing, law: ContactLaw, tol: float, max_steps: int, backend):
    """Relax ``packing`` with FIRE and check that it is jammed.

    Parameters
    ----------
    packing : granular.space.Packing
        The state to relax.
    law : ContactLaw
        Contact law.
    tol : float
        FIRE convergence, max |F_i| (units of force, already scaled by k_n).
    max_steps : int
        Step cap of the FIRE relaxation.
    backend : granular.backend.Engine
        Resolved engine.

    Returns
    -------
    ref : granular.jamming relaxation result
        The relaxed reference state (``packing``, ``pressure``, ``split``).
    bb : granular.measure backbone result
        Its force-bearing backbone (``z_backbone``).

    Raises
    ------
    ValueError
        If the relaxed state has no pressure or no force-bearing backbone (below jamming).
    """
    from granular.jamming import relax
    from granular.measure import backbone

    ref = relax(packing, law, force_tol=tol, max_steps=max_steps, backend=backend)
    bb = backbone(ref.packing, law, backend=backend)
    if ref.pressure <= 0 or bb.z_backbone == 0:
        raise ValueError(
            f"the packing is below jamming (relaxed pressure {ref.pressure:.3g}, no force-bearing "
            "backbone): compress it above phi_J first (e.g. `jamwave granular jam --excess-phi`)")
    return ref, bb


def _strain_moduli(
    reference, law: ContactLaw, strain: float, tol: float, max_steps: int, backend
) -> tuple[float, list[float]]:
    """K and its split (SS, SL, LL) by central differences of the relaxed pressure.

    Parameters
    ----------
    reference : granular.space.Packing
        The relaxed reference state at packing fraction phi0.
    law : ContactLaw
        Contact law.
    strain : float
        Volumetric strain amplitude epsilon_v; the states are at phi0 / (1 -+ strain).
    tol : float
        FIRE convergence, max |F_i| (already scaled by k_n).
    max_steps : int
        Step cap of each FIRE relaxation.
    backend : granular.backend.Engine
        Resolved engine.

    Returns
    -------
    k : float
        dP/d(epsilon_v) (units k_n / d_L for linear contacts).
    k_split : list of float, length 3
        dP_SS, dP_SL, dP_LL / d(epsilon_v).

    Raises
    ------
    ValueError
        If the dilated state unjams (the strain is too large for this state).
    """
    from granular.jamming import relax
    from granular.measure import backbone
    from granular.space import scale_to_phi

    phi0 = reference.packing_fraction
    compressed, dilated = (
        relax(scale_to_phi(reference, phi0 / (1.0 - sign * strain)), law, force_tol=tol,
              max_steps=max_steps, backend=backend)
        for sign in (1.0, -1.0)
    )
    if dilated.pressure <= 0.0 or backbone(dilated.packing, law, backend=backend).z_backbone == 0:
        raise ValueError(f"strain {strain:g} is not small for this state: the dilated packing unjams; "
                         "use a smaller strain or a state further above jamming")
    k = (compressed.pressure - dilated.pressure) / (2.0 * strain)
    k_split = [(a - b) / (2.0 * strain) for a, b in zip(compressed.split, dilated.split)]
    return k, k_split


def _bulk_modulus_record(
    ref, z_backbone: float, law: ContactLaw, strain: float,
    k: float | None, k_split: list[float] | None, lr: LinearResponse | None,
) -> BulkModulus:
    """Assemble :class:`BulkModulus`; a method that was not run leaves NaN in its fields.

    Parameters
    ----------
    ref : granular.jamming relaxation result
        The relaxed reference state (``packing``, ``pressure``, ``split``).
    z_backbone : float
        Mean contact number of its backbone.
    law : ContactLaw
        Contact law (``k_n`` makes K* dimensionless).
    strain : float
        Volumetric strain amplitude of the strain method.
    k, k_split : float and list of 3 floats, or None
        Strain-method K and (SS, SL, LL) split, None if not computed.
    lr : LinearResponse or None
        Linear-response result, None if not computed.
    """
    nan = float("nan")
    large = ref.packing.radius[ref.packing.species == 0]
    d_large = 2.0 * float(large.max() if large.size else ref.packing.radius.max())
    k_main = k if k is not None else lr.K
    return BulkModulus(
        K=k if k is not None else nan,
        K_SS=k_split[0] if k_split else nan,
        K_SL=k_split[1] if k_split else nan,
        K_LL=k_split[2] if k_split else nan,
        K_star=k_main * d_large / law.k_n,
        K_linear_response=lr.K if lr else nan,
        K_linear_response_SS=lr.K_SS if lr else nan,
        K_linear_response_SL=lr.K_SL if lr else nan,
        K_linear_response_LL=lr.K_LL if lr else nan,
        strain=float(strain),
        pressure=ref.pressure,
        pressure_SS=ref.split[0],
        pressure_SL=ref.split[1],
        pressure_LL=ref.split[2],
        phi=ref.packing.packing_fraction,
        z_backbone=z_backbone,
    )
