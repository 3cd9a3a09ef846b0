"""Governance: the model registry (GTO tags), what a stage assignment deploys, the audit pack."""
