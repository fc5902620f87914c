"""Lepton: an interactive lab for transfer learning and domain shift.

The core (this package) never imports streamlit; ``app.py`` and ``pages/`` are a thin UI over it
and ``python -m lepton`` reaches the same functions.
"""
__version__ = "0.1.0"
