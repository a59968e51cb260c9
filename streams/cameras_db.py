"""Cameras and zones in the database, as the stream workers use them: see ``urbaneye.cameras_repo``.

The repository lives in ``urbaneye`` so the API and the workers map rows to ``CameraConfig`` in one
place; this module keeps the workers' import path.
"""

from __future__ import annotations

from urbaneye.cameras_repo import CameraRegistry, CameraVersion, LoadedCamera, SeedReport, parse_zone

__all__ = ["CameraRegistry", "CameraVersion", "LoadedCamera", "SeedReport", "parse_zone"]
