"""The installed neurospec version, in one place every module may import without importing the package's API."""

__version__ = "0.1.0"
