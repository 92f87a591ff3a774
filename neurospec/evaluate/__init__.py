"""Evaluation: perplexity matrix, Language Steering Shift, steering by generation, sweeps, self/cross
downstream tables, and the intervals they report (docs/evaluation.md)."""
