"""Typed results: each artifact kind as a class that owns its JSON form (format id, version, to/from JSON)."""
