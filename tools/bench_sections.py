"""The section names of ``urbaneye bench`` (no imports: the CLI builds its help from them)."""

DEFAULT_SECTIONS = ("detector", "pipeline", "motion_gating")
SECTIONS = (*DEFAULT_SECTIONS, "static_objects", "config_poll", "live_queue")
