"""Which hosts an HTTP tool may reach, checked on the address the client connects to.

Only an admin sets a tool's scheme and host (see `app.services.agent.tools`), so:

* loopback and private hosts (an internal CRM at ``10.0.5.7``, ``localhost:8080``)
  are allowed by default: they are what the gateway's users connect to;
* link-local and cloud metadata destinations are always refused, in every spelling:
  ``169.254.0.0/16``, ``fe80::/10``, ``fd00:ec2::254`` (AWS IMDS over IPv6),
  ``100.100.100.200`` (Alibaba), ``0.0.0.0/8``, ``::``; the names
  ``metadata.google.internal``, ``metadata`` and kin; IPv4 embedded in IPv6
  (``::ffff:a.b.c.d``, ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo); the
  legacy numeric forms ``inet_aton(3)`` accepts (``2852039166``, ``0xA9FEA9FE``,
  ``0251.0376.0251.0376``, ``169.254.43518``); and names that embed such an
  address (``169.254.169.254.nip.io``, ``169-254-169-254.sslip.io``,
  ``a9fea9fe.nip.io``);
* `TOOL_ALLOWED_HOSTS`, when set, restricts further: only listed names, addresses
  or CIDR networks pass.

Two places apply the policy. `HostPolicy.check_host` looks at the host as written
(when a tool is saved, and before each request; aiohttp never resolves an IP
literal). `PolicyResolver` is the tools' HTTP client's DNS resolver: it checks every
address a name resolves to and hands aiohttp only those, so the client connects to
the address that was checked (no second lookup, no DNS-rebinding window).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
    }
)
ALWAYS_BLOCKED_NETS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("::/128"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp")
# Overlapping matches (lookahead), delimited by start/end, "." or "-":
_DASHED_V4 = re.compile(r"(?=(?<![^-.])(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})(?![^-.]))")
_HEX_V4 = re.compile(r"(?=(?<![^-.])([0-9a-f]{8})(?![^-.]))")
_BLOCKED = "a link-local or cloud metadata address"
_DOTTED_V4 = re.compile(r"(?=(?<![^.])(\d{1,3}(?:\.\d{1,3}){3})(?![^.]))")


class ToolBlocked(Exception):
    """The tool's destination is refused by the host policy.

    The message is for admins (logs, call log, tool test); the model only gets
    "error: request refused".
    """


class HostRefused(ToolBlocked, OSError):
    """Raised by `PolicyResolver`; an `OSError` so aiohttp reports it as a DNS failure."""


def normalize_host(host: str) -> str:
    """`host` lower-cased, without brackets, trailing dots or an IPv6 zone (``%eth0``)."""
    return host.strip().strip("[]").lower().rstrip(".").split("%", 1)[0]


def _inet_aton_part(text: str) -> int | None:
    if text.startswith(("0x", "0X")):
        digits, base = text[2:] or "0", 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    try:
        return int(digits, base) if digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 the way ``inet_aton(3)`` (and so ``getaddrinfo``) does.

    One to four parts, each decimal, octal (leading ``0``) or hex (``0x``); the last
    part fills the remaining bytes: ``2852039166``, ``0xA9FEA9FE``, ``169.254.43518``
    and ``0251.0376.0251.0376`` are all 169.254.169.254.

    Returns:
        The address, or None when `text` is not such a literal.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    *head, last = numbers
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, byte in enumerate(head):
        value |= byte << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_ip(host: str) -> IPAddress | None:
    """The address `host` spells (IPv6, or IPv4 in any ``inet_aton`` form), or None for a name."""
    host = normalize_host(host)
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return parse_ipv4_loose(host)


def _embedded_ipv4(addr: IPAddress) -> list[IPAddress]:
    """`addr` plus any IPv4 address it carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            found.append(addr.ipv4_mapped)
        if addr.sixtofour is not None:
            found.append(addr.sixtofour)
        if addr.teredo is not None:
            found.append(addr.teredo[1])
        low = int(addr) & 0xFFFFFFFF
        # NAT64, and IPv4-compatible ::a.b.c.d (not ::1, which is loopback)
        if addr in _NAT64 or (int(addr) >> 32 == 0 and low >= 1 << 24):
            found.append(ipaddress.IPv4Address(low))
    return found


def is_always_blocked(addr: IPAddress) -> bool:
    """True when `addr` (or an IPv4 address inside it) is link-local or metadata."""
    return any(c in net for c in _embedded_ipv4(addr) for net in ALWAYS_BLOCKED_NETS)


def _embedded_in_name(host: str) -> Iterable[IPAddress]:
    """Addresses a wildcard-DNS name spells (nip.io, sslip.io: dots, dashes, hex)."""
    for match in _DOTTED_V4.finditer(host):
        found = parse_ipv4_loose(match.group(1))
        if found is not None:
            yield found
    for match in _DASHED_V4.finditer(host):
        found = parse_ipv4_loose(".".join(match.groups()))
        if found is not None:
            yield found
    for match in _HEX_V4.finditer(host):
        yield ipaddress.IPv4Address(int(match.group(1), 16))
    for label in host.split("."):
        if "--" in label:  # sslip.io writes IPv6 with dashes: fe80--1.sslip.io
            spelled = parse_ip(label.replace("-", ":"))
            if spelled is not None:
                yield spelled


def static_refusal(host: str) -> str | None:
    """Why `host`, as written, is always refused (metadata name or address), or None.

    Needs no DNS: used when a tool is saved and before each request.
    """
    name = normalize_host(host)
    if not name:
        return "the URL names no host"
    if name in METADATA_HOSTS:
        return f"{name} is a cloud metadata service"
    addr = parse_ip(name)
    if addr is not None:
        return f"host {name} is {addr}, {_BLOCKED}" if is_always_blocked(addr) else None
    for embedded in _embedded_in_name(name):
        if is_always_blocked(embedded):
            return f"host {name} names {embedded}, {_BLOCKED}"
    return None


def url_host_refusal(url: str) -> str | None:
    """Why a tool with this `url` can never be called (for the ``url`` field), or None.

    Only what is always refused (metadata, link-local); `TOOL_ALLOWED_HOSTS` and DNS
    answers are applied when the tool is called.
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None  # a malformed URL is reported by the URL check
    reason = static_refusal(host) if host else None
    return f"{reason}; tools may never call it" if reason else None


def is_internal_host(host: str) -> bool:
    """True when `host` is on the admin's own network, judged without DNS.

    Loopback and private addresses (in any spelling), ``localhost``, single-label
    names and the usual internal suffixes (``.local``, ``.internal``, ``.lan``,
    ``.home.arpa``, ``.corp``, ``.intranet``).
    """
    name = normalize_host(host)
    addr = parse_ip(name)
    if addr is not None:
        return any(a.is_loopback or a.is_private for a in _embedded_ipv4(addr))
    return name == "localhost" or "." not in name or name.endswith(_INTERNAL_SUFFIXES)


def internal_url_host(url: str) -> str | None:
    """The host of `url` when it is on the admin's own network (`is_internal_host`), else None."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host if host and static_refusal(host) is None and is_internal_host(host) else None


class HostPolicy:
    """Decides whether a tool may call a host and, after DNS, each address.

    Args:
        allowed_hosts: `TOOL_ALLOWED_HOSTS` entries: host names, IP addresses or CIDR
            networks. Empty means any host that is not link-local or metadata.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        """Parse the allow-list."""
        self._names: set[str] = set()
        self._nets: list[IPNetwork] = []
        for entry in (e.strip() for e in allowed_hosts):
            if not entry:
                continue
            try:
                self._nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(normalize_host(entry))
        self.restrictive = bool(self._names or self._nets)

    def _in_nets(self, addr: IPAddress) -> bool:
        return any(a in net for a in _embedded_ipv4(addr) for net in self._nets)

    def check_host(self, host: str) -> None:
        """Apply everything that needs no DNS to `host` as written in the URL.

        Raises:
            ToolBlocked: metadata or link-local in any spelling, or an IP literal
                outside `TOOL_ALLOWED_HOSTS` when that is set. (A name outside the
                list may still resolve into a listed network: `check_addresses`.)
        """
        reason = static_refusal(host)
        if reason:
            raise ToolBlocked(reason)
        addr = parse_ip(host)
        name = normalize_host(host)
        if self.restrictive and addr is not None and name not in self._names and not self._in_nets(addr):
            raise ToolBlocked(f"host {name} is not in TOOL_ALLOWED_HOSTS")

    def check_addresses(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        """The resolved `addresses` of `host` a tool may connect to, in order.

        Raises:
            HostRefused: one address is link-local or metadata (the whole answer is
                refused: a name that points there is hostile), or none is allowed.
        """
        name = normalize_host(host)
        for addr in addresses:
            if is_always_blocked(addr):
                raise HostRefused(f"host {name} resolves to {addr}, {_BLOCKED}")
        if not self.restrictive or name in self._names:
            allowed = list(addresses)
        else:
            allowed = [a for a in addresses if self._in_nets(a)]
        if not allowed:
            listed = " (not in TOOL_ALLOWED_HOSTS)" if self.restrictive else ""
            raise HostRefused(f"host {name} has no allowed address{listed}")
        return allowed

    def resolver(self, inner: AbstractResolver | None = None) -> PolicyResolver:
        """A `PolicyResolver` for the tools' HTTP client (call inside the event loop).

        Args:
            inner: the resolver that does the lookups; aiohttp's default when None.
        """
        return PolicyResolver(self, inner or DefaultResolver())


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that passes every answer through a `HostPolicy`.

    aiohttp connects only to the addresses this returns, so the address checked is
    the address dialled. aiohttp does not call a resolver for IP literals; those are
    covered by `HostPolicy.check_host`.

    Args:
        policy: the policy to apply.
        inner: the resolver that does the actual lookups.
    """

    def __init__(self, policy: HostPolicy, inner: AbstractResolver) -> None:
        """Keep the policy and the inner resolver."""
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and keep only allowed addresses.

        Raises:
            HostRefused: see `HostPolicy.check_addresses`.
            OSError: the lookup failed.
        """
        reason = static_refusal(host)
        if reason:
            raise HostRefused(reason)
        results = await self._inner.resolve(host, port, family)
        addresses = [ipaddress.ip_address(normalize_host(r["host"])) for r in results]
        allowed = set(self._policy.check_addresses(host, addresses))
        return [r for r, a in zip(results, addresses, strict=True) if a in allowed]

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()
