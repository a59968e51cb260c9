"""Every table of ours in one metadata: the ORM modules each area keeps under ``urbaneye/db/`` join
``Base.metadata`` when imported, so whatever compares or creates the whole schema (migrations, the
metadata-vs-migrations check) imports this module rather than ``urbaneye.db.models`` alone."""

from __future__ import annotations

from urbaneye.db import annotations, model_variants, models, rechecks

#: the metadata of every table: ``models`` plus the area modules that add theirs
metadata = models.Base.metadata

__all__ = ["annotations", "metadata", "model_variants", "models", "rechecks"]
