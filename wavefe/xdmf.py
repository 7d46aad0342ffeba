"""XDMF side-car so ParaView opens a wave dataset's sample as a time series.

Two small files sit beside ``<stem>.h5``: ``<stem>.xdmf`` (sample 0; ``<stem>_s<k>.xdmf`` for sample
k) and ``<stem>_xdmf.hdf5`` (``<stem>_s<k>_xdmf.hdf5``), an HDF5 file of *virtual datasets* that
expose frame f of the sample, ``/fields/u[k, f]``, as a plain (ny, nx) dataset ``/u_<f>`` and the
speed ``/fields/c[k]`` as ``/c`` without copying any value (HDF5 1.10 virtual datasets; the source
is referenced by the dataset's file name, relative, so the three files move together).

Why not XDMF hyperslabs: ParaView's default reader for ``.xdmf`` (Xdmf3, the one
``paraview.simple.OpenDataFile`` picks) turns an ``ItemType="HyperSlab"`` DataItem into a reference
array whose number type is only known after reading, and VTK asks for the type first: it prints
"Skipping unrecognized array type [None]" and drops the field. Plain ``Format="HDF"`` DataItems with
``NumberType`` and ``Precision`` are read by both the Xdmf3 readers and the legacy ``XDMFReader``.
The geometry is ``/mesh/points`` and the topology ``/mesh/cells`` (the FE triangles) of the dataset.

ParaView 5.11's Xdmf3 reader resolves the relative HDF5 names wrongly when the ``.xdmf`` path has no
folder part (``d.xdmf`` from the current folder): open ``./d.xdmf`` or an absolute path.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import h5py
import numpy as np

from jamcommon.files import atomic_path, atomic_write_text


def views_name(h5path, sample: int = 0) -> Path:
    """The virtual-dataset file of ``sample``'s side-car, beside ``h5path``."""
    h5path = Path(h5path)
    tag = "" if sample == 0 else f"_s{sample}"
    return h5path.with_name(f"{h5path.stem}{tag}_xdmf.hdf5")


def _shapes(h5path: Path, sample: int):
    with h5py.File(h5path, "r") as f:
        n, F, ny, nx = f["fields/u"].shape
        if not 0 <= sample < n:
            raise ValueError(f"sample must be in [0, {n - 1}], got {sample}")
        return (n, F, ny, nx), f["t"][:], f["mesh/points"].shape[0], f["mesh/cells"].shape[0]


def write_views(h5path, sample: int = 0, *, overwrite: bool = False) -> Path:
    """Write the virtual datasets ``/u_<f>`` (ny, nx) and ``/c`` (ny, nx) of ``sample`` (atomic)."""
    h5path = Path(h5path)
    (n, F, ny, nx), _, _, _ = _shapes(h5path, sample)
    out = views_name(h5path, sample)
    u_src = h5py.VirtualSource(h5path.name, "/fields/u", shape=(n, F, ny, nx), dtype=np.float32)
    c_src = h5py.VirtualSource(h5path.name, "/fields/c", shape=(n, ny, nx), dtype=np.float32)
    with atomic_path(out, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["source"] = h5path.name
            f.attrs["sample"] = sample
            for k in range(F):
                layout = h5py.VirtualLayout(shape=(ny, nx), dtype=np.float32)
                layout[:, :] = u_src[sample, k, :, :]
                f.create_virtual_dataset(f"u_{k}", layout, fillvalue=np.nan)
            layout = h5py.VirtualLayout(shape=(ny, nx), dtype=np.float32)
            layout[:, :] = c_src[sample, :, :]
            f.create_virtual_dataset("c", layout, fillvalue=np.nan)
    out.chmod(0o644)
    return out


def _item(dims: tuple, number: str, precision: int, ref: str) -> str:
    return (f'<DataItem Dimensions="{" ".join(map(str, dims))}" NumberType="{number}" '
            f'Precision="{precision}" Format="HDF">{escape(ref)}</DataItem>')


def xdmf_text(h5path, sample: int = 0) -> str:
    """The XDMF 3 document for ``sample`` of the dataset at ``h5path`` (see the module docstring)."""
    h5path = Path(h5path)
    (_, _, ny, nx), times, n_nodes, n_cells = _shapes(h5path, sample)
    name, views = h5path.name, views_name(h5path, sample).name
    geometry = (f'<Geometry GeometryType="XY">{_item((n_nodes, 2), "Float", 8, name + ":/mesh/points")}'
                f"</Geometry>")
    topology = (f'<Topology TopologyType="Triangle" NumberOfElements="{n_cells}">'
                f'{_item((n_cells, 3), "Int", 8, name + ":/mesh/cells")}</Topology>')
    c_attr = ('<Attribute Name="c" AttributeType="Scalar" Center="Node">'
              + _item((ny, nx), "Float", 4, views + ":/c") + "</Attribute>")
    grids = []
    for k, t in enumerate(times):
        u_attr = ('<Attribute Name="u" AttributeType="Scalar" Center="Node">'
                  + _item((ny, nx), "Float", 4, f"{views}:/u_{k}") + "</Attribute>")
        grids.append(f'<Grid Name="frame_{k}" GridType="Uniform"><Time Value="{float(t)!r}"/>'
                     f"{topology}{geometry}{u_attr}{c_attr}</Grid>")
    body = "\n".join(grids)
    return ('<?xml version="1.0" ?>\n<Xdmf Version="3.0">\n<Domain>\n'
            f'<Grid Name="sample_{sample}" GridType="Collection" CollectionType="Temporal">\n'
            f"{body}\n</Grid>\n</Domain>\n</Xdmf>\n")


def write_xdmf(h5path, sample: int = 0, out=None, *, overwrite: bool = False) -> Path:
    """Write the side-car of ``sample``: the ``.xdmf`` and its virtual-dataset file.

    Parameters
    ----------
    h5path : path-like
        A ``jamwave.wave2d/1`` dataset file.
    sample : int
        Sample index in ``[0, n_samples)``.
    out : path-like, optional
        The ``.xdmf`` (default ``<stem>.xdmf``, or ``<stem>_s<sample>.xdmf``); it must be in the
        folder of ``h5path`` (relative references).
    overwrite : bool
        Replace existing side-car files.

    Returns
    -------
    pathlib.Path
        The ``.xdmf`` file.
    """
    h5path = Path(h5path)
    if out is None:
        suffix = ".xdmf" if sample == 0 else f"_s{sample}.xdmf"
        out = h5path.with_name(h5path.stem + suffix)
    out = Path(out)
    if out.parent.resolve() != h5path.parent.resolve():
        raise ValueError("out must be in the same folder as the HDF5 file (relative reference)")
    text = xdmf_text(h5path, sample)
    write_views(h5path, sample, overwrite=overwrite)
    atomic_write_text(out, text, overwrite=overwrite)
    out.chmod(0o644)
    return out
