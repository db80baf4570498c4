"""Trainline's engine: an MMEngine-shaped training runner built on HF Accelerate."""

__version__ = "0.1.0"
