"""Deterministic seed data for the omnisupport example."""
