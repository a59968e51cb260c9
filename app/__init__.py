"""Composition root: ``urbaneye run`` puts the stream workers, the API and the demo together.

It may import every package of ours; nothing of ours imports it (docs/architecture.md).
"""
