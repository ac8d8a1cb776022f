"""lrp-viewer: explain medical-imaging networks with Layer-wise Relevance Propagation."""

__version__ = "0.1.0"
