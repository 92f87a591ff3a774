"""Data: the shared multiple-choice item type, and (later) corpora and benchmark loaders."""
