"""Composition root: configuration, CLI, HTTP, metrics and storage around the cores."""
