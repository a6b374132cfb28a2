"""Variant drivers: each changes one piece of EM and reuses the model interface unchanged."""
from .cavi import CAVIResult, cavi
from . import cem, gem  # modules; the drivers are emlib.cem and emlib.gem
