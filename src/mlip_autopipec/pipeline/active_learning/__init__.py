"""Active learning: explore with the fitted potential, catch extrapolation with γ, label what is new, refit.

Three parts: :mod:`.policy` decides (budget, epochs, stop rules; pure functions
of the settings and the record), :mod:`.steps` does (one function per step of a
generation, each with its own skip check and step marker, and the one
:func:`~.steps.refit`), :mod:`.loop` runs (the steps in order, one save of
``state.json`` after each, the stop rules).
"""
