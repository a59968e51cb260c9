"""Credentials never reach a log line, and positional log args still format (uvicorn's access log)."""

from __future__ import annotations

import io
import logging

import pytest

from api.app import install_log_masking


@pytest.mark.parametrize(
    ("logger_name", "msg", "args"),
    [
        (
            "uvicorn.access",
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:1", "GET", "/x?u=rtsp://bob:secret@cam/1", "1.1", 200),
        ),
        ("streams", "open %(url)s failed", {"url": "rtsp://bob:secret@10.0.0.1/s"}),
        ("urbaneye", "open rtsp://bob:secret@10.0.0.1/s failed", ()),
    ],
)
def test_credentials_masked_and_args_still_format(logger_name: str, msg: str, args: object) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    # setLevel, not .level =: it clears the isEnabledFor cache a quieter earlier level left (an in-process
    # uvicorn started by an earlier test sets uvicorn.access to WARNING)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    old_disabled, logger.disabled = logger.disabled, False
    try:
        install_log_masking()
        if isinstance(args, dict):
            logger.info(msg, args)
        else:
            logger.info(msg, *args)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.disabled = old_disabled
    line = buf.getvalue()
    assert "secret" not in line
    assert "rtsp://***@" in line


def test_a_format_template_that_looks_like_a_url_still_formats() -> None:
    """uvicorn logs "Uvicorn running on %s://%s:%d": the template is not data, and masking it broke the
    placeholders ("* wants int")."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    old_disabled, logger.disabled = logger.disabled, False
    try:
        install_log_masking()
        logger.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8000)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.disabled = old_disabled
    assert buf.getvalue().strip() == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
