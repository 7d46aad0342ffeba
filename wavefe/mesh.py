"""Triangle meshes: the structured mesh of a rectangle and general meshes from points and cells.

The structured mesh of ``[0, Lx] x [0, Ly]`` with ``nx x ny`` cells has ``(ny + 1) (nx + 1)``
nodes numbered row by row, ``p = j (nx + 1) + i`` for the node at ``(i hx, j hy)``, so a nodal
vector reshaped to ``(ny + 1, nx + 1)`` is the grid with ``y`` along the first axis. Each cell
``(i, j)`` is split along its rising diagonal into the triangles
``(a, b, c)`` and ``(a, c, d)`` with ``a = (i, j)``, ``b = (i + 1, j)``, ``c = (i + 1, j + 1)``,
``d = (i, j + 1)``, cell ``k = j nx + i`` holding elements ``2 k`` and ``2 k + 1``; both are
counter-clockwise. Every side of a cell is a leg (not the hypotenuse) of exactly one of its two
triangles, which is what makes the lumped P1 operator a 5-point stencil (see
:mod:`wavefe.stencil`).

Boundary edges carry a side tag: 0 left (x = xmin), 1 right, 2 bottom (y = ymin), 3 top, and 4
for edges of a general mesh that lie on none of the bounding-box sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDES = ("left", "right", "bottom", "top", "other")


@dataclass(frozen=True, eq=False)
class TriMesh:
    """A triangle mesh.

    Attributes
    ----------
    points : ndarray, shape (n_nodes, 2), float64
        Node coordinates.
    cells : ndarray, shape (n_cells, 3), int64
        Node indices of each triangle, counter-clockwise.
    boundary_edges : ndarray, shape (n_edges, 2), int64
        Node pairs of the edges that belong to one triangle only.
    boundary_sides : ndarray, shape (n_edges,), int8
        Side tag of each boundary edge (index into :data:`SIDES`).
    grid : tuple of int or None
        ``(nx, ny)`` cells for a structured mesh made by :func:`rectangle`, else ``None``.
    spacing : tuple of float or None
        ``(hx, hy)`` of a structured mesh, else ``None``.
    """

    points: np.ndarray
    cells: np.ndarray
    boundary_edges: np.ndarray
    boundary_sides: np.ndarray
    grid: tuple[int, int] | None = None
    spacing: tuple[float, float] | None = None

    @property
    def n_nodes(self) -> int:
        return self.points.shape[0]

    @property
    def n_cells(self) -> int:
        return self.cells.shape[0]

    @property
    def structured(self) -> bool:
        return self.grid is not None

    @property
    def node_shape(self) -> tuple[int, int]:
        """``(ny + 1, nx + 1)``: the nodal grid shape of a structured mesh."""
        if self.grid is None:
            raise ValueError("node_shape is defined for structured meshes only")
        return (self.grid[1] + 1, self.grid[0] + 1)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)``."""
        lo = self.points.min(axis=0)
        hi = self.points.max(axis=0)
        return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))

    def boundary_nodes(self, sides=None) -> np.ndarray:
        """Sorted indices of the nodes on the boundary edges of the given side tags (all if None)."""
        mask = np.ones(len(self.boundary_sides), bool)
        if sides is not None:
            mask = np.isin(self.boundary_sides, np.asarray(list(sides), dtype=np.int8))
        return np.unique(self.boundary_edges[mask])

    def cell_areas(self) -> np.ndarray:
        """Signed areas of the triangles, shape (n_cells,); positive when counter-clockwise."""
        p = self.points[self.cells]
        e1 = p[:, 1] - p[:, 0]
        e2 = p[:, 2] - p[:, 0]
        return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def rectangle(nx: int, ny: int | None = None, lx: float = 1.0, ly: float | None = None,
              origin: tuple[float, float] = (0.0, 0.0)) -> TriMesh:
    """Structured triangle mesh of ``[x0, x0 + lx] x [y0, y0 + ly]`` with ``nx x ny`` cells.

    Parameters
    ----------
    nx, ny : int
        Cells along x and y (``ny`` defaults to ``nx``), each >= 1.
    lx, ly : float
        Side lengths (``ly`` defaults to ``lx``), > 0.
    origin : (float, float)
        Lower-left corner.
    """
    ny = nx if ny is None else ny
    ly = lx if ly is None else ly
    for name, value in (("nx", nx), ("ny", ny)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("lx", lx), ("ly", ly)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite length > 0, got {value!r}")
    nx, ny = int(nx), int(ny)
    hx, hy = lx / nx, ly / ny
    xs = origin[0] + hx * np.arange(nx + 1)
    ys = origin[1] + hy * np.arange(ny + 1)
    X, Y = np.meshgrid(xs, ys)
    points = np.column_stack([X.ravel(), Y.ravel()])
    J, I = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    a = (J * (nx + 1) + I).ravel()
    b, c, d = a + 1, a + nx + 2, a + nx + 1
    cells = np.empty((2 * nx * ny, 3), np.int64)
    cells[0::2] = np.column_stack([a, b, c])
    cells[1::2] = np.column_stack([a, c, d])
    edges, sides = _rectangle_boundary(nx, ny)
    return TriMesh(points, cells, edges, sides, grid=(nx, ny), spacing=(hx, hy))


def _rectangle_boundary(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    row = nx + 1
    i = np.arange(nx)
    j = np.arange(ny)
    left = np.column_stack([j * row, (j + 1) * row])
    right = left + nx
    bottom = np.column_stack([i, i + 1])
    top = bottom + ny * row
    edges = np.concatenate([left, right, bottom, top]).astype(np.int64)
    sides = np.repeat(np.arange(4, dtype=np.int8), [ny, ny, nx, nx])
    return edges, sides


def from_arrays(points, cells) -> TriMesh:
    """A general triangle mesh from ``points`` (n, 2) and ``cells`` (m, 3).

    Cells are re-oriented counter-clockwise; degenerate cells or out-of-range indices raise
    ``ValueError``. Boundary edges on a side of the bounding box get that side's tag, others 4.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    cells = np.array(cells, dtype=np.int64, copy=True)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n_nodes, 2), got {points.shape}")
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise ValueError(f"cells must have shape (n_cells, 3), got {cells.shape}")
    if cells.size and (cells.min() < 0 or cells.max() >= len(points)):
        raise ValueError(f"cells must index points in [0, {len(points) - 1}]")
    p = points[cells]
    area2 = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (
        p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    scale = np.ptp(points, axis=0).max() ** 2
    if np.any(np.abs(area2) <= 1e-14 * scale):
        raise ValueError("cells contains degenerate (zero-area) triangles")
    flip = area2 < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    edges = np.sort(np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = unique[counts == 1]
    if np.any(counts > 2):
        raise ValueError("cells is not a manifold triangulation: an edge is shared by > 2 cells")
    xmin, ymin = points.min(axis=0)
    xmax, ymax = points.max(axis=0)
    tol = 1e-10 * np.sqrt(scale)
    bp = points[boundary]
    sides = np.full(len(boundary), 4, np.int8)
    for tag, (axis, value) in enumerate(((0, xmin), (0, xmax), (1, ymin), (1, ymax))):
        on = np.all(np.abs(bp[:, :, axis] - value) <= tol, axis=1)
        sides[on & (sides == 4)] = tag
    return TriMesh(points, cells, boundary, sides)


def read_mesh(path) -> TriMesh:
    """Read a triangle mesh with meshio (optional dependency); z coordinates are dropped."""
    try:
        import meshio
    except ImportError as exc:  # pragma: no cover - optional
        raise ImportError("reading mesh files needs meshio: pip install meshio") from exc
    m = meshio.read(path)
    tri = [block.data for block in m.cells if block.type == "triangle"]
    if not tri:
        raise ValueError(f"{path}: no triangle cells")
    return from_arrays(m.points[:, :2], np.concatenate(tri))
