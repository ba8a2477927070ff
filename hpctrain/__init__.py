"""hpctrain: data-parallel training and scaling studies on MPI clusters."""

__version__ = "0.1.0"
