"""Explaining: a run's summary, plans and fusion, sweeps, the advisor, the ceiling, and code to copy."""
