"""Evaluation: intervals now; perplexity, steering, multiple choice and translation build on them."""
