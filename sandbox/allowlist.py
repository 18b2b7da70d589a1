"""Allow-list entries and the address rules the broker applies before every connection.

    parse_allowlist(["crm.example.com", "billing.example.com:8443", "http://127.0.0.1:9000"])

Entries are `host`, `host:port` (HTTPS; `https://` may be written) or `http://host[:port]` (API.md
"Running"). A URL passes when its (scheme, host, port) equals an entry's, and every address its
host resolves to is public — or is the very IP an entry names literally, with the same scheme
and port (an IP entry opens that one port of the address, not the address). Hosts are compared in
one canonical spelling: lower-case ASCII names, dotted-quad IPv4, compressed IPv6. Any other
spelling of an address (2130706433, 0x7f.1, 0177.0.0.1, 127.1) is refused outright rather than
interpreted, so no two parsers can disagree about where it points.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse

from .errors import AllowListError, CallRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LOOKING = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # a label an IPv4 parser would eat
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
MAX_URL_CHARS = 8192

# IPv6 prefixes that carry an IPv4 address a gateway would reach: refuse unless listed literally.
EMBEDDING_NETWORKS: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible"),
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "local NAT64"),
    (ipaddress.IPv6Network("2002::/16"), "6to4"),
    (ipaddress.IPv6Network("2001::/32"), "Teredo"),
)
# Cloud metadata endpoints, named for the error message (both are also non-global).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset({
    ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254"),
})


@dataclasses.dataclass(frozen=True)
class Entry:
    scheme: str
    host: str             # canonical spelling
    port: int
    address: IPAddress | None   # set when the entry names an IP literally

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class AllowList:
    entries: frozenset[Entry]

    def find(self, scheme: str, host: str, port: int) -> Entry | None:
        for entry in self.entries:
            if (entry.scheme, entry.host, entry.port) == (scheme, host, port):
                return entry
        return None

    def literal_addresses(self) -> frozenset[IPAddress]:
        return frozenset(e.address for e in self.entries if e.address is not None)

    def opens(self, address: IPAddress, scheme: str, port: int) -> bool:
        """True when an entry names `address` literally with this very scheme and port. An IP
        entry opens one (scheme, port) on that address, never the address's other ports: with
        `http://127.0.0.1:19000` listed, a name entry `http://localhost:19001` resolving to
        127.0.0.1 must not reach 127.0.0.1:19001."""
        return any(e.address == address and e.scheme == scheme and e.port == port
                   for e in self.entries)


def parse_allowlist(hosts: list[str]) -> AllowList:
    """Each entry checked strictly; AllowListError names the first bad one and what to write."""
    if type(hosts) is not list:
        raise AllowListError(repr(hosts), "the allow-list must be a list of strings")
    entries = set()
    for raw in hosts:
        if type(raw) is not str or not raw:
            raise AllowListError(raw if type(raw) is str else repr(raw), "each entry must be a non-empty string")
        scheme = "https"
        text = raw.strip().lower()
        if "://" in text:
            scheme, _, text = text.partition("://")
            if scheme not in DEFAULT_PORTS:
                raise AllowListError(raw, "only http:// or https:// may be written before the host")
        if not text or any(c in text for c in "/?#@ \\") or _BAD_URL_CHARS.search(text):
            raise AllowListError(raw, "write host, host:port or http://host[:port] (no path, user or query)")
        try:
            parts = urllib.parse.urlsplit(f"{scheme}://{text}")
            port = DEFAULT_PORTS[scheme] if parts.port is None else parts.port
            host = parts.hostname or ""
            bracketed = text.startswith("[")
        except ValueError as exc:
            raise AllowListError(raw, f"bad port or address ({exc})") from None
        if not 0 < port < 65536:
            raise AllowListError(raw, "the port must be between 1 and 65535")
        try:
            host, address = canonical_host(host, bracketed=bracketed)
        except CallRefused as exc:
            raise AllowListError(raw, exc.reason) from None
        entries.add(Entry(scheme, host, port, address))
    return AllowList(frozenset(entries))


def canonical_host(host: str, *, bracketed: bool) -> tuple[str, IPAddress | None]:
    """The one spelling we compare, and the address if the host is an IP literal."""
    if bracketed:
        if "%" in host:
            raise CallRefused("IPv6 zone identifiers are not allowed")
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise CallRefused(f"{host!r} is not an IPv6 address") from None
        return v6.compressed, v6
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise CallRefused("the URL has no host")
    if not host.isascii():
        raise CallRefused(f"{host!r}: write internationalised names in their xn-- (punycode) form")
    host = host.lower()
    labels = host.split(".")
    if _NUMERIC_LOOKING.match(labels[-1]):
        try:
            v4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise CallRefused(
                f"{host!r} is not a dotted-quad IPv4 address; other spellings are refused") from None
        return v4.compressed, v4
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise CallRefused(f"{host!r} is not a valid host name")
    return host, None


def address_problem(address: IPAddress, allowlist: AllowList, scheme: str, port: int) -> str | None:
    """Why connecting to `address` on (scheme, port) is refused, or None. A literal allow-list
    entry wins for its own scheme and port only."""
    if allowlist.opens(address, scheme, port):
        return None
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        for network, name in EMBEDDING_NETWORKS:
            if address in network:
                return f"{address} is an {name} address (it embeds an IPv4 address)"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_unspecified or address.is_reserved or not address.is_global:
        return f"{address} is not a public address"
    return None
