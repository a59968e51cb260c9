"""Which camera sources the API stores: network URLs of allowed schemes, never local paths, link-local
or metadata hosts, and in production only addresses inside the camera networks.

The policy of the service (``URBANEYE_CAMERA_SCHEMES``, ``URBANEYE_CAMERA_NETWORKS``) applied to what
admins submit; the cameras file is trusted and not checked here. Pure except for resolving host names.
"""

from __future__ import annotations

import re
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from urbaneye.redact import mask_text as mask_url


class SourceRefused(ValueError):
    """A camera source the API will not store: wrong scheme, a local path, or a forbidden address."""


#: Cloud metadata services by name (their addresses are link-local and refused as such too).
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "instance-data", "metadata.azure.com"})
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", re.I)


def check_source_url(
    url: str,
    allowed_schemes: frozenset[str],
    networks: tuple[IPv4Network | IPv6Network, ...] | None,
) -> None:
    """Raise ``SourceRefused`` unless ``url`` is a network source a camera added through the API may use.

    Always refused: a scheme outside ``allowed_schemes`` (``file:``, a bare path or device index), no
    host, a metadata host name, and link-local (169.254.0.0/16 — cloud metadata — fe80::/10),
    multicast or unspecified addresses. With ``networks`` (production) the host must also resolve, and
    every address it resolves to must lie inside one of them.

    Example:
        >>> check_source_url("file:///etc/passwd", frozenset({"rtsp"}), None)
        Traceback (most recent call last):
        SourceRefused: camera source scheme 'file' is not allowed; use one of ['rtsp']
    """
    shown = mask_url(url)
    if "://" not in url:
        raise SourceRefused(
            f"camera source {shown!r} is not a URL; file paths and devices belong in a cameras file, "
            "give rtsp://host/path"
        )
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        raise SourceRefused(f"camera source {shown!r} is not a valid URL; check its host and port") from None
    if parts.scheme.lower() not in allowed_schemes:
        raise SourceRefused(
            f"camera source scheme {parts.scheme.lower()!r} is not allowed; use one of {sorted(allowed_schemes)}"
        )
    if not host:
        raise SourceRefused(f"camera source {shown!r} has no host; give rtsp://host/path")
    if host in METADATA_HOSTS:
        raise SourceRefused(
            f"camera source host {host!r} is a cloud metadata service; give the camera's address"
        )
    literal = _host_address(host)
    if literal is not None:
        addresses = [literal]
    elif networks is not None:
        try:
            addresses = sorted(
                {ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
            )
        except (OSError, UnicodeError):
            raise SourceRefused(
                f"camera source host {host!r} does not resolve; check the name or give its address"
            ) from None
    else:
        addresses = []  # outside production names are not resolved here
    for addr in addresses:
        mapped = addr.ipv4_mapped if isinstance(addr, IPv6Address) else None
        addr = mapped or addr
        if addr.is_link_local or addr.is_multicast or addr.is_unspecified:
            raise SourceRefused(
                f"camera source host {host!r} is {addr}, a link-local, multicast or unspecified address "
                "(cloud metadata lives there); give the camera's own address"
            )
        if networks is not None and not any(addr.version == n.version and addr in n for n in networks):
            raise SourceRefused(
                f"camera source host {host!r} is {addr}, outside URBANEYE_CAMERA_NETWORKS; add the camera "
                "network there or give an address inside it"
            )


def _host_address(host: str) -> IPv4Address | IPv6Address | None:
    """The address a host literal denotes, including the forms libc also accepts (``2852039166``,
    ``0xa9.254.169.254``, ``169.254.43518``), so they cannot slip past the checks."""
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
