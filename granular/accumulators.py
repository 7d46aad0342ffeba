"""The sums every force call accumulates (both backends): slot layout and what they measure.

A force kernel adds, over the touching pairs (overlap > 0), into a float64 vector of ``N_ACC``
slots: the elastic energy, the contact virial sum_c f_c |r_ij| split by pair type (species_i +
species_j: 0 large-large, 1 small-large, 2 small-small) and the number of touching pairs. The
slots are named here once; kernels, loops and measurements index them by these names.
"""

from __future__ import annotations

ACC_ENERGY = 0
"""Elastic energy sum_c V(xi_c) (units k_n d_L^2 for the linear law)."""
ACC_VIRIAL = 1
"""First of the three virial slots: ``ACC_VIRIAL + pair_type`` holds sum_c f_c |r_ij| of that type."""
ACC_VIRIAL_LL, ACC_VIRIAL_SL, ACC_VIRIAL_SS = ACC_VIRIAL, ACC_VIRIAL + 1, ACC_VIRIAL + 2
ACC_TOUCHING = 4
"""Number of touching pairs."""
N_ACC = 5
