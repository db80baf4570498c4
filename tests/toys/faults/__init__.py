"""Faults injected into real training processes (a rank that dies)."""
