"""Cluster setup: hardware detection, node start scripts, job submission."""
