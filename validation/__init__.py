"""Validation studies of infntk: Monte Carlo convergence of finite networks to the analytic limit.

``python -m validation run CONFIG [--profile cpu|full] [--out DIR]`` runs one configuration of
``validation/configs`` (or ``all``); the library side is :mod:`infntk.studies.convergence`.
"""
