"""Hotline (数字城管 / 12345) push through a transactional outbox, and signed status callbacks."""

from __future__ import annotations

from typing import Any

__all__ = ["apply_hotline_callback"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for signing helpers) should not pull in the database layer.
    if name == "apply_hotline_callback":
        from urbaneye.hotline.callbacks import apply_hotline_callback

        return apply_hotline_callback
    raise AttributeError(name)
