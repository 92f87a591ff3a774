"""Plumbing every layer may use and that knows nothing of models: errors, atomic files, locks, progress, ranks."""
