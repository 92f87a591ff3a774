"""What every result records of how it was produced (``provenance``)."""
