"""Variant drivers: each changes one piece of EM and reuses the model interface unchanged."""
from .cavi import CAVIResult, cavi
