"""Pipelines of the omnisupport example."""
