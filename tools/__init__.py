"""Benchmarks and evaluations: ``urbaneye bench`` and ``urbaneye eval-events``.

They measure the whole stack (they render scenarios with ``datasets.synth``, run the stream runtime and
the detector), so they sit above every other package and nothing of ours imports them.
"""
