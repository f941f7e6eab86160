"""Helpers every layer may use: atomic writes, paths kerasdl owns, plotting."""
