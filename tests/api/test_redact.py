"""The one URL-masking rule (urbaneye.redact): userinfo, secret query keys, unparseable URLs whole."""

from __future__ import annotations

import pytest

from urbaneye.redact import mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # userinfo
        ("rtsp://admin:hunter2@10.0.0.5:554/ch1", "rtsp://***@10.0.0.5:554/ch1"),
        ("rtsp://admin@10.0.0.5/ch1", "rtsp://***@10.0.0.5/ch1"),
        ("rtsp://a:p%40ss@[fd00::5]:554/x", "rtsp://***@[fd00::5]:554/x"),
        ("rtsp://a:p@ss@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),  # unescaped @ in the password
        # secret query keys, any case, other keys and the order kept
        ("http://cam/v?user=admin&pwd=x1&fps=5", "http://cam/v?user=***&pwd=***&fps=5"),
        ("http://cam/v?pass=x&password=y&passwd=z", "http://cam/v?pass=***&password=***&passwd=***"),
        ("https://h/x.m3u8?token=abc", "https://h/x.m3u8?token=***"),
        ("https://h/x?KEY=abc&Auth=b&channel=2", "https://h/x?KEY=***&Auth=***&channel=2"),
        (
            "https://h/o?X-Amz-Signature=ab12&X-Amz-Expires=60",
            "https://h/o?X-Amz-Signature=***&X-Amz-Expires=60",
        ),
        (
            "https://h/o?signature=ab&access_token=cd&api_key=ef",
            "https://h/o?signature=***&access_token=***&api_key=***",
        ),
        ("http://h/live#token=abc", "http://h/live#token=***"),
        ("http://u:p@h/v?username=a&sid=b", "http://***@h/v?username=***&sid=***"),
        # nothing to hide
        ("rtsp://10.0.0.5/ch1", "rtsp://10.0.0.5/ch1"),
        ("http://cam/v?channel=1&fps=5", "http://cam/v?channel=1&fps=5"),
        ("/data/clips/cam-1.mp4", "/data/clips/cam-1.mp4"),
        ("0", "0"),
        ("", ""),
        # malformed: where the secret ends is a guess, so everything goes
        ("rtsp://admin:pa/ss@10.0.0.5/ch1", "***"),  # '/' in the password
        ("rtsp://admin:12/34@10.0.0.5/ch1", "***"),  # ... even when the rest looks like a port
        ("rtsp://admin:pa?ss@10.0.0.5/ch1", "***"),  # '?' in the password
        ("rtsp://admin:pa#ss@10.0.0.5/ch1", "***"),  # '#' in the password
        ("rtsp://[::1/ch1", "***"),  # broken IPv6 literal
        ("rtsp://admin:secret@", "***"),  # no host
        ("rtsp://ad min:se cret@10.0.0.5/x", "***"),  # whitespace in the authority
        ("admin:secret@10.0.0.5/ch1", "***"),  # userinfo without a scheme
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    for secret in ("hunter2", "x1", "abc", "ab12", "p%40ss", "pa/ss", "secret"):
        if secret in url and secret not in expected:
            assert secret not in mask_url(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "open rtmp://u:p@h/live failed; retry rtsp://x:y@h2/a?pwd=1",
            "open rtmp://***@h/live failed; retry rtsp://***@h2/a?pwd=***",
        ),
        (
            '127.0.0.1:5 - "GET /api/evidence/object/c/1.jpg?expires=17&signature=9f0a HTTP/1.1" 200',
            '127.0.0.1:5 - "GET /api/evidence/object/c/1.jpg?expires=17&signature=*** HTTP/1.1" 200',
        ),
        ("camera 'rtsp://admin:pa/ss@h/1' is down", "camera '***' is down"),
        ("no url here: user=admin", "no url here: user=admin"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_streams_and_api_use_the_one_rule() -> None:
    import api.app
    import streams.sources
    from urbaneye import redact

    assert streams.sources.mask_url is redact.mask_text
    assert api.app.mask_text is redact.mask_text
