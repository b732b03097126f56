"""The HTTP tool executor against a real local HTTP API: rendering, validation, safety."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route

from app.services.agent.host_policy import HostPolicy, internal_url_host, parse_ipv4_loose, url_host_refusal
from app.services.agent.tools import (
    ToolBlocked,
    ToolExecutor,
    create_tool_http_client,
    render_body,
    render_url,
)
from app.services.domain import CallContext, ToolSpec
from tests.utils import ORDER_TOOL_SCHEMA, LoopbackServer, ToolApi

CTX = CallContext(
    uniqueid="conv-9",
    channel_id="1795.1",
    caller_id_number="5551234",
    caller_id_name="Ann",
    stasis_args={"TENANT": "acme", "USER_INPUT": "hi"},
)


def gateway_http(policy: HostPolicy | None = None, **kw: Any) -> httpx.AsyncClient:
    """The client the gateway builds for tools (aiohttp, policy resolver), 10 s timeouts."""
    return create_tool_http_client(
        policy or HostPolicy(), timeout=httpx.Timeout(10.0), max_connections=20, **kw
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_http() as client:
        yield client


def tool(url: str, **kw: Any) -> ToolSpec:
    fields: dict[str, Any] = {
        "id": 1,
        "name": "t",
        "description": "",
        "parameters": ORDER_TOOL_SCHEMA,
        "url": url,
    }
    fields.update(kw)
    return ToolSpec(**fields)


async def test_get_renders_path_query_and_context_headers(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    spec = tool(
        tool_api.url + "/orders/{order_id}?tenant={TENANT}",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
        },
        headers={
            "X-Caller": "{caller_id_number}",
            "X-Name": "{caller_id_name}",
            "Authorization": "Bearer s3cr3t",
        },
    )
    result = await ex.execute(spec, {"order_id": "42", "verbose": True}, CTX)
    assert result.ok and result.status_code == 200 and result.outcome == "ok"
    req = tool_api.requests[-1]
    assert req["path"] == "/orders/42"
    assert req["query"] == {"tenant": "acme", "verbose": "true"}
    assert req["headers"]["x-caller"] == "5551234" and req["headers"]["x-name"] == "Ann"
    assert req["headers"]["authorization"] == "Bearer s3cr3t"
    assert '"status":"shipped"' in result.content


async def test_path_placeholders_are_fully_encoded(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    spec = tool(tool_api.url + "/orders/{order_id}", parameters={"type": "object"})
    await ex.execute(spec, {"order_id": "../../admin?x=1#frag"}, CTX)
    req = tool_api.requests[-1]
    assert req["raw_path"] == "/orders/%2E%2E%2F%2E%2E%2Fadmin%3Fx%3D1%23frag"
    assert req["query"] == {}
    # A lone ".." must not climb out of /orders/ (aiohttp would resolve an unencoded one).
    await ex.execute(spec, {"order_id": ".."}, CTX)
    assert tool_api.requests[-1]["raw_path"] == "/orders/%2E%2E"


async def test_model_cannot_override_call_context(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    spec = tool(
        tool_api.url + "/echo",
        method="POST",
        parameters={"type": "object"},
        headers={"X-C": "{caller_id_number}"},
    )
    await ex.execute(spec, {"caller_id_number": "999", "note": "x"}, CTX)
    req = tool_api.requests[-1]
    assert req["headers"]["x-c"] == "5551234"
    assert req["json"] == {"caller_id_number": "5551234", "note": "x"}


async def test_body_template_keeps_json_types(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    spec = tool(
        tool_api.url + "/echo",
        method="POST",
        parameters={"type": "object", "properties": {"qty": {"type": "integer"}, "items": {"type": "array"}}},
        body_template={
            "order": {"qty": "{qty}", "items": "{items}", "label": "for {caller_id_name}"},
            "conv": "{uniqueid}",
        },
    )
    await ex.execute(spec, {"qty": 3, "items": ["a", "b"]}, CTX)
    assert tool_api.requests[-1]["json"] == {
        "order": {"qty": 3, "items": ["a", "b"], "label": "for Ann"},
        "conv": "conv-9",
    }


async def test_invalid_arguments_never_reach_the_api(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    result = await ex.execute(tool(tool_api.url + "/orders/{order_id}"), {"order_id": "abc"}, CTX)
    assert not result.ok and result.outcome == "invalid_args"
    assert result.content.startswith("invalid arguments: order_id: 'abc' does not match")
    result = await ex.execute(tool(tool_api.url + "/orders/{order_id}"), {}, CTX)
    assert "'order_id' is a required property" in result.content
    assert tool_api.requests == []


async def test_errors_come_back_as_short_results(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, max_response_bytes=1000)
    free = {"type": "object"}
    r404 = await ex.execute(tool(tool_api.url + "/missing", parameters=free), {}, CTX)
    assert (r404.ok, r404.outcome, r404.status_code) == (False, "http_error", 404)
    assert r404.content.startswith("error: HTTP 404")
    slow = await ex.execute(
        tool(tool_api.url + "/slow", parameters=free, timeout_seconds=5), {}, CTX, timeout_seconds=0.3
    )
    assert slow.outcome == "timeout" and "0.3 s" in slow.content and slow.latency_ms < 2000
    big = await ex.execute(tool(tool_api.url + "/big", parameters=free), {}, CTX)
    assert big.ok and big.truncated and big.content.endswith("…[truncated]")
    assert len(big.content) < 1100
    dead = await ex.execute(tool("http://127.0.0.1:9/nothing", parameters=free), {}, CTX)
    assert dead.outcome == "connection_error"


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", [], "metadata"),
        ("http://metadata/computeMetadata/v1/", [], "metadata"),
        ("http://2852039166/latest/", [], "169.254.169.254"),
        ("http://0xA9FEA9FE/latest/", [], "169.254.169.254"),
        ("http://0251.0376.0251.0376/latest/", [], "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/latest/", [], "link-local"),
        ("http://[fd00:ec2::254]/latest/", ["fd00::/8"], "metadata"),
        ("http://[fe80::1]/x", [], "link-local"),
        ("http://169.254.169.254.nip.io/latest/", [], "169.254.169.254"),
        ("http://127.0.0.1:9/x", ["api.example.com"], "not in TOOL_ALLOWED_HOSTS"),
        ("http://127.0.0.1:9/x", ["10.0.0.0/8"], "not in TOOL_ALLOWED_HOSTS"),
        ("ftp://127.0.0.1/x", [], "http(s)"),
        ("http://{host}/x", [], "host"),
    ],
)
async def test_host_policy_refuses_and_the_model_only_hears_refused(
    url: str, allowed: list[str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = HostPolicy(allowed)
    async with gateway_http(policy) as client:
        ex = ToolExecutor(client, policy=policy)
        result = await ex.execute(tool(url, parameters={"type": "object"}), {"host": "evil.example"}, CTX)
    assert result.outcome == "blocked"
    assert result.content == "error: request refused"  # no admin advice reaches the caller
    assert result.detail is not None and reason in result.detail
    assert reason in caplog.text and "channel=1795.1" in caplog.text


async def test_internal_hosts_work_by_default(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http)
    free = {"type": "object"}
    assert (await ex.execute(tool(tool_api.url + "/echo", parameters=free), {}, CTX)).ok
    by_name = tool_api.url.replace("127.0.0.1", "localhost") + "/echo"
    assert (await ex.execute(tool(by_name, parameters=free), {}, CTX)).ok


async def test_allowlist_restricts_names_by_their_resolved_addresses(tool_api: ToolApi) -> None:
    by_name = tool_api.url.replace("127.0.0.1", "localhost") + "/echo"
    free = {"type": "object"}
    for allowed, outcome in ((["127.0.0.0/8"], "ok"), (["localhost"], "ok"), (["10.0.0.0/8"], "blocked")):
        policy = HostPolicy(allowed)
        async with gateway_http(policy) as client:
            result = await ToolExecutor(client, policy=policy).execute(
                tool(by_name, parameters=free), {}, CTX
            )
        assert result.outcome == outcome, (allowed, result)
    assert result.content == "error: request refused"
    assert result.detail is not None and "TOOL_ALLOWED_HOSTS" in result.detail
    assert len(tool_api.requests) == 2


class ScriptedDns(AbstractResolver):
    """DNS stand-in: answers each lookup with the next address list, records names asked."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=addr,
                port=port,
                family=socket.AF_INET6 if ":" in addr else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for addr in self.answers.pop(0)
        ]

    async def close(self) -> None:
        return None


async def test_dns_rebinding_never_reaches_the_metadata_address(tool_api: ToolApi) -> None:
    """The address the client dials is the one the policy saw: one lookup per connection."""
    dns = ScriptedDns(
        [
            ["93.184.215.14"],  # public
            ["169.254.169.254"],  # rebound to the metadata service
            ["93.184.215.14", "169.254.169.254"],  # both in one answer
            ["127.0.0.1"],  # the internal API itself
        ]
    )
    dialled: list[str] = []

    def socket_factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _name, sockaddr = addr_info
        dialled.append(sockaddr[0])
        if sockaddr[0] != "127.0.0.1":
            raise OSError("test: this address is never dialled for real")
        return socket.socket(family, type_, proto)

    policy = HostPolicy()
    url = tool_api.url.replace("127.0.0.1", "orders.example.test") + "/echo"
    async with gateway_http(policy, resolver=lambda: dns, socket_factory=socket_factory) as client:
        ex = ToolExecutor(client, policy=policy)
        outcomes = [
            (await ex.execute(tool(url, parameters={"type": "object"}), {}, CTX)).outcome for _ in range(4)
        ]
    assert outcomes == ["connection_error", "blocked", "blocked", "ok"]
    assert dns.lookups == ["orders.example.test"] * 4  # no separate check lookup
    assert dialled == ["93.184.215.14", "127.0.0.1"]
    assert len(tool_api.requests) == 1


async def test_redirects_only_to_the_same_host() -> None:
    async def to_other(_request: Any) -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)

    async def to_same(_request: Any) -> RedirectResponse:
        return RedirectResponse("/other", status_code=302)

    async def other(_request: Any) -> RedirectResponse:
        return RedirectResponse("/final", status_code=307)

    async def final(_request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("landed")

    server = LoopbackServer(
        Starlette(
            routes=[
                Route("/away", to_other),
                Route("/here", to_same),
                Route("/other", other),
                Route("/final", final),
            ]
        )
    )
    await server.start()
    try:
        async with gateway_http() as client:
            ex = ToolExecutor(client)
            free = {"type": "object"}
            away = await ex.execute(tool(server.url + "/away", parameters=free), {}, CTX)
            assert away.outcome == "blocked" and away.content == "error: request refused"
            assert away.detail is not None and "another host" in away.detail
            here = await ex.execute(tool(server.url + "/here", parameters=free), {}, CTX)
            assert here.ok and here.content == "landed"
    finally:
        await server.stop()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "order_id"]), st.text(max_size=40) | st.integers()))
def test_rendered_url_never_changes_scheme_or_host(values: dict[str, Any]) -> None:
    url, used = render_url("https://api.example.com:8443/v1/{order_id}/x/{a}?q={b}", values)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "api.example.com:8443")
    assert parts.path.startswith("/v1/") and parts.path.count("/") == 4
    assert "#" not in url and url.count("?") == 1
    assert used == {"order_id", "a", "b"}


@given(
    st.recursive(
        st.text(max_size=10) | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_body_template_without_placeholders_is_unchanged(template: Any) -> None:
    if "{" in repr(template):
        return
    assert render_body(template, {"x": 1}) == template


def test_placeholder_in_host_is_refused() -> None:
    with pytest.raises(ToolBlocked):
        render_url("http://{tenant}.example.com/x", {"tenant": "a"})


def _v4_spellings(value: int) -> st.SearchStrategy[str]:
    """Every way `inet_aton(3)` (so getaddrinfo) reads `value`: parts in dec, oct, hex."""
    octets = list(value.to_bytes(4, "big"))

    def part(n: int, style: str) -> str:
        return {"dec": str(n), "oct": "0" + format(n, "o"), "hex": "0x" + format(n, "x")}[style]

    styles = st.sampled_from(["dec", "oct", "hex"])
    four = st.lists(styles, min_size=4, max_size=4).map(
        lambda s: ".".join(part(o, x) for o, x in zip(octets, s, strict=True))
    )
    three = st.tuples(styles, styles, styles).map(
        lambda s: f"{part(octets[0], s[0])}.{part(octets[1], s[1])}.{part(value & 0xFFFF, s[2])}"
    )
    two = st.tuples(styles, styles).map(lambda s: f"{part(octets[0], s[0])}.{part(value & 0xFFFFFF, s[1])}")
    one = styles.map(lambda s: part(value, s))
    return st.one_of(four, three, two, one)


def _v6_spellings(addr: ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    return st.sampled_from([addr.compressed, addr.exploded, addr.exploded.upper()]).map(lambda t: f"[{t}]")


_LINK_LOCAL_V4 = st.integers(0xA9FE0000, 0xA9FEFFFF)


@st.composite
def metadata_hosts(draw: st.DrawFn) -> str:
    """A URL host that means a link-local or metadata address, in one of its spellings."""
    value = draw(_LINK_LOCAL_V4)
    dotted = str(ipaddress.IPv4Address(value))
    mapped = ipaddress.IPv6Address(0xFFFF00000000 | value)
    nat64 = ipaddress.IPv6Address((0x64FF9B << 96) | value)
    link_local_v6 = ipaddress.IPv6Address((0xFE80 << 112) | draw(st.integers(0, 2**64 - 1)))
    kind = draw(
        st.sampled_from(["v4", "mapped", "mapped-dotted", "nat64", "ll6", "ec2", "nip", "sslip", "hex"])
    )
    prefix = draw(st.sampled_from(["", "app.", "x-"]))
    host = {
        "v4": lambda: draw(_v4_spellings(value)),
        "mapped": lambda: draw(_v6_spellings(mapped)),
        "mapped-dotted": lambda: f"[::ffff:{dotted}]",
        "nat64": lambda: draw(_v6_spellings(nat64)),
        "ll6": lambda: draw(_v6_spellings(link_local_v6)),
        "ec2": lambda: draw(_v6_spellings(ipaddress.IPv6Address("fd00:ec2::254"))),
        "nip": lambda: f"{prefix.replace('x-', 'x.')}{dotted}.nip.io",
        "sslip": lambda: f"{prefix.replace('.', '-')}{dotted.replace('.', '-')}.sslip.io",
        "hex": lambda: f"{prefix}{value:08x}.nip.io",
    }[kind]()
    return draw(st.sampled_from([host, host.upper()])) + draw(st.sampled_from(["", "."]))


@settings(max_examples=300, deadline=None)
@given(metadata_hosts())
def test_metadata_is_refused_in_every_spelling(host: str) -> None:
    url = f"http://{host}/latest/meta-data/"
    assert url_host_refusal(url) is not None  # refused when the tool is saved
    with pytest.raises(ToolBlocked):
        HostPolicy().check_host(urlsplit(url).hostname or "")  # and before each request


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1).flatmap(lambda v: st.tuples(st.just(v), _v4_spellings(v))))
def test_ipv4_spellings_read_as_libc_reads_them(case: tuple[int, str]) -> None:
    value, spelled = case
    assert parse_ipv4_loose(spelled) == ipaddress.IPv4Address(value)
    assert socket.inet_aton(spelled) == value.to_bytes(4, "big")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
    .flatmap(
        lambda net: st.integers(
            int(ipaddress.IPv4Network(net).network_address), int(ipaddress.IPv4Network(net).broadcast_address)
        )
    )
    .flatmap(_v4_spellings)
)
def test_internal_addresses_are_allowed_and_noted(host: str) -> None:
    HostPolicy().check_host(host)
    assert url_host_refusal(f"http://{host}:8080/orders") is None
    assert internal_url_host(f"http://{host}:8080/orders") == host.lower()
