"""The Redis URL taken apart: which topology it names (one server, a Redis Cluster, Sentinel),
its nodes and logins, and the URL shown with every password hidden.

Parsing never quotes a password in its errors; :func:`redact_url` is what ``repr``, logs and
errors show of a URL.
"""

from __future__ import annotations

import ssl
from typing import Final, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import attrs

from .._secrets import REDACTED

__all__ = [
    "CERT_REQS",
    "FORMS",
    "SCHEMES",
    "TRUE",
    "Topology",
    "parse",
    "password_of",
    "redact_url",
    "secrets_of",
]

_PLAIN: Final = ("redis", "rediss", "unix")
_CLUSTER: Final = ("redis+cluster", "rediss+cluster")
_SENTINEL: Final = ("redis+sentinel", "rediss+sentinel")
#: Every scheme a Redis URL may have.
SCHEMES: Final = (*_PLAIN, *_CLUSTER, *_SENTINEL)

#: The URL forms, as errors list them.
FORMS: Final = (
    "redis://[user:password@]host[:port][/db]",
    "rediss://[user:password@]host[:port][/db] (TLS)",
    "unix://[user:password@]/path/to.sock[?db=N]",
    "redis+cluster://[user:password@]host:port[,host:port...]",
    "rediss+cluster://... (TLS)",
    "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]",
    "rediss+sentinel://... (TLS)",
)

#: Query parameters that hold a secret: redacted wherever a URL is shown.
_SECRET_PARAMS: Final = frozenset({"password", "sentinel_password"})
_SSL_PARAMS: Final = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)
_CLUSTER_PARAMS: Final = frozenset({"username", "password"}) | _SSL_PARAMS
_PLAIN_PARAMS: Final = _CLUSTER_PARAMS | {"db"}
_SENTINEL_PARAMS: Final = _PLAIN_PARAMS | {"sentinel_username", "sentinel_password"}
#: ``?ssl_cert_reqs=``: what each value asks of the server's certificate.
CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
#: ``?ssl_check_hostname=``: the values that mean yes, and no.
TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


@attrs.frozen
class Topology:
    """A URL taken apart."""

    kind: Literal["plain", "cluster", "sentinel"]
    tls: bool = False
    #: The server (plain), the nodes to start from (cluster), the sentinels (sentinel).
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: Sentinel: the monitored primary's name, its database, and the sentinels' own login.
    service: str = ""
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    ssl_options: tuple[tuple[str, str], ...] = ()
    #: ``unix://``: the socket's path.
    path: str | None = None


def parse(url: str) -> Topology:
    """``url`` taken apart; ``ValueError`` (never quoting a password) when it is malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme
    where = f"{scheme}:// URL"
    kind: Literal["plain", "cluster", "sentinel"] = (
        "plain" if scheme in _PLAIN else "cluster" if scheme in _CLUSTER else "sentinel"
    )
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = (unquote(secret) or None) if colon else None
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = value
    accepted = {"plain": _PLAIN_PARAMS, "cluster": _CLUSTER_PARAMS}.get(kind, _SENTINEL_PARAMS)
    unknown = sorted(set(query) - accepted)
    if unknown:
        raise ValueError(
            f"a {where} takes no {', '.join(unknown)} parameter (it takes "
            f"{', '.join(sorted(accepted))})"
        )
    username = query.get("username") or username
    password = query.get("password") or password
    if "ssl_cert_reqs" in query and query["ssl_cert_reqs"] not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    if "ssl_check_hostname" in query and query["ssl_check_hostname"].lower() not in (TRUE | _FALSE):
        raise ValueError("ssl_check_hostname must be true or false")
    ssl_options = tuple(
        sorted(
            (k, v.lower() if k == "ssl_check_hostname" else v)
            for k, v in query.items()
            if k in _SSL_PARAMS
        )
    )
    tls = scheme in ("rediss", "rediss+cluster", "rediss+sentinel")
    if kind == "plain":
        if scheme == "unix":
            if not parts.path or parts.path == "/":
                raise ValueError(f"a {where} needs the socket's path: unix:///path/to.sock")
            db = _db(query.get("db", "0"), where)
            return Topology("plain", False, (), username, password, db=db, path=unquote(parts.path))
        if not hosts:
            raise ValueError(f"a {where} needs the server's host: redis://host[:port][/db]")
        node = _host_port(hosts, 6379, where)
        db = _db(parts.path.strip("/") or query.get("db", "0"), where)
        return Topology("plain", tls, (node,), username, password, db=db, ssl_options=ssl_options)
    nodes = tuple(
        _host_port(spec, 6379 if kind == "cluster" else 26379, where) for spec in hosts.split(",")
    )
    if kind == "cluster":
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError(f"a {where} takes no database: a Redis Cluster has only database 0")
        return Topology("cluster", tls, nodes, username, password, ssl_options=ssl_options)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path else []
    if not segments or not segments[0] or len(segments) > 2:
        raise ValueError(f"a {where} needs the monitored primary's name: .../service[/db]")
    db_text = segments[1] if len(segments) == 2 else query.get("db", "0")
    return Topology(
        "sentinel",
        tls,
        nodes,
        username,
        password,
        service=segments[0],
        db=_db(db_text, where),
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ssl_options=ssl_options,
    )


def _db(value: str, where: str) -> int:
    if not value.isdigit():
        raise ValueError(f"the database of a {where} must be a number >= 0, not {value!r}")
    return int(value)


def _host_port(spec: str, default: int, where: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6 address][:port]``."""
    if spec.startswith("["):
        host, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"a {where} has a malformed host {spec!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = spec.partition(":")
    if not host:
        raise ValueError(f"a {where} needs host:port for each node, not {spec!r}")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"a {where} has a malformed port in {spec!r}")
    return host, int(port_text)


def password_of(url: str) -> str | None:
    """The data nodes' password as written in ``url`` (None without one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return parts.password or query.get("password")


def secrets_of(url: str) -> tuple[str, ...]:
    """Every password in ``url``, as written and percent-decoded."""
    parts = urlsplit(url)
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for key, value in parse_qsl(parts.query):
        if key in _SECRET_PARAMS and value:
            found += [value]
    return tuple(dict.fromkeys(found))


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``<redacted>``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = [(k, REDACTED if k in _SECRET_PARAMS else v) for k, v in parse_qsl(query)]
        query = urlencode(pairs, safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
