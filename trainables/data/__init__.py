"""Dataset readers for the community layouts (VTAB-1k, FGVC) and the built-in offline assets."""

from trainables.data.fgvc import FGVCDataset
from trainables.data.vtab1k import VTabDataset

__all__ = ["FGVCDataset", "VTabDataset"]
