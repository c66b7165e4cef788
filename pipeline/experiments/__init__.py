"""Experiments that reproduce the MMoE paper's results on this project's models."""
