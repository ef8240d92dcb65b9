"""Measuring: the samplers, NVML, and what the connected cluster has."""
