"""ctx.http through the broker: allow-list, address rules (SSRF), redirects, secrets, budgets.

Most tests go through the real pool to the real CRM app on 127.0.0.1, because SSRF lives in the
real socket path; DNS answers are faked with the broker's resolver seam, and a few unit tests use
httpx.MockTransport to look at the exact request the broker sends."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from crm_app import BILLING_TOKEN, CRM_TOKEN
from sandbox import AllowListError, Broker, BrokerConfig, Limits, parse_allowlist
from sandbox.broker import BrokerSession

CATCH = """
def run(event, ticket, ctx):
    try:
        r = ctx.http.get({url!r})
    except Exception as exc:
        return {{"custom": {{"refused": str(exc)}}}}
    return {{"custom": {{"status": r.status_code}}}}
"""


def fetch(sandbox, url: str, **kw):
    return sandbox.run(CATCH.format(url=url), **kw)


# -- allow-list entries ---------------------------------------------------------------------------

def test_allowlist_entries_parse_to_one_canonical_form() -> None:
    allow = parse_allowlist(["CRM.example.com", "billing.example.com:8443", "http://127.0.0.1:9000",
                             "https://api.example.com", "http://[::1]:8080", "crm.example.com."])
    assert {str(e) for e in allow.entries} == {
        "https://crm.example.com:443", "https://billing.example.com:8443", "http://127.0.0.1:9000",
        "https://api.example.com:443", "http://[::1]:8080"}


@pytest.mark.parametrize("entry", [
    "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "http://0x7f000001:80", "10.1",
    "user@crm.example.com", "http://u:p@crm.example.com", "crm.example.com/path", "crm.example.com?x",
    "ftp://crm.example.com", "file:///etc/passwd", "*.example.com", "", " ", "crm.example.com:99999",
    "crm.example.com:0x50", "crm.example.com:0", "[::1", "http://[fe80::1%eth0]:80", "crm_example.com", "-crm.example.com",
    "bücher.example", "crm.example.com\\@evil", "crm.example.com#frag",
])
def test_bad_allowlist_entries_are_refused_with_a_reason(entry: str) -> None:
    with pytest.raises(AllowListError) as info:
        parse_allowlist([entry])
    assert info.value.entry == entry and info.value.reason


def test_allowlist_must_be_a_list_of_strings() -> None:
    for bad in ("crm.example.com", [1], [None]):
        with pytest.raises(AllowListError):
            parse_allowlist(bad)  # type: ignore[arg-type]


# -- request URLs: every spelling of an inward address is refused --------------------------------

REFUSED_URLS = [
    "http://2130706433:{p}/echo", "http://0x7f.1:{p}/echo", "http://0177.0.0.1:{p}/echo",
    "http://127.1:{p}/echo", "http://0x7f000001:{p}/echo", "http://017700000001:{p}/echo",
    "http://127.0.0.01:{p}/echo", "http://[::ffff:127.0.0.1]:{p}/echo", "http://[::ffff:7f00:1]:{p}/echo",
    "http://[::1]:{p}/echo", "http://[0:0:0:0:0:0:0:1]:{p}/echo", "http://[::127.0.0.1]:{p}/echo",
    "http://[64:ff9b::7f00:1]:{p}/echo", "http://[2002:7f00:1::]:{p}/echo",
    "http://[fe80::1%25lo]:{p}/echo", "http://0.0.0.0:{p}/echo", "http://localhost:{p}/echo",
    "http://localhost.:{p}/echo", "http://LOCALHOST:{p}/echo",
    "http://user@127.0.0.1:{p}/echo", "http://127.0.0.1:{p}@evil.example/echo",
    "http://evil.example#@127.0.0.1:{p}/echo", "http://127.0.0.1:{p}\\@evil.example/echo",
    "http://evil.example\\@127.0.0.1:{p}/echo", " http://127.0.0.1:{p}/echo",
    "http://127.0.0.1:{p}/echo\r\nX: y", "https://127.0.0.1:{p}/echo", "http://127.0.0.1/echo",
    "http://127.0.0.1:1/echo", "http://127.0.0.1:0/echo", "file:///etc/passwd", "gopher://127.0.0.1:{p}/_x", "ftp://127.0.0.1/",
    "data:text/plain,hi", "dict://127.0.0.1:{p}/", "http:///echo", "//127.0.0.1:{p}/echo",
    "http://ⓛocalhost:{p}/echo", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/", "http://metadata.google.internal/",
]


@pytest.mark.parametrize("template", REFUSED_URLS)
def test_inward_and_odd_urls_are_refused_and_catchable(sandbox, crm, template: str) -> None:
    url = template.format(p=crm.port)
    allow = [f"http://localhost:{crm.port}"] if "localhost" in template.lower() else [crm.url]
    result = fetch(sandbox, url, allow=allow)
    assert result.error is None, result.error                 # the script caught the refusal
    assert "refused" in result.updates["custom"], result.updates
    assert result.http_calls and "refused" in result.http_calls[-1], result.http_calls
    assert all("status" not in call for call in result.http_calls)


def test_the_literal_allowlisted_address_is_reachable(sandbox, crm) -> None:
    result = fetch(sandbox, crm.url + "/echo")
    assert result.updates == {"custom": {"status": 200}}
    assert result.http_calls[0]["status"] == 200 and "refused" not in result.http_calls[0]


def test_the_trailing_dot_and_upper_case_spellings_are_the_same_host(sandbox, crm) -> None:
    assert fetch(sandbox, f"HTTP://127.0.0.1.:{crm.port}/echo").updates == {"custom": {"status": 200}}


# -- DNS answers pointing inward (resolver seam) -------------------------------------------------

INWARD = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
          "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::",
          "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "2001::1",
          "fd00:ec2::254", "fe80::1", "fc00::1", "ff02::1"]


def resolver_to(*answers: str):
    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)
    return resolve


@pytest.mark.parametrize("answer", INWARD)
def test_dns_answers_pointing_inward_are_refused(sandbox, crm, answer: str) -> None:
    broker = Broker(sandbox.broker.client, resolver=resolver_to(answer))
    result = fetch(sandbox, f"http://crm.test:{crm.port}/echo", allow=[f"http://crm.test:{crm.port}"],
                   broker=broker)
    assert "refused" in result.updates["custom"], result
    assert "crm.test ->" in result.http_calls[0]["refused"]


def test_one_inward_answer_among_public_ones_is_enough_to_refuse(sandbox, crm) -> None:
    broker = Broker(sandbox.broker.client, resolver=resolver_to("93.184.216.34", "10.0.0.1"))
    result = fetch(sandbox, f"http://crm.test:{crm.port}/echo", allow=[f"http://crm.test:{crm.port}"],
                   broker=broker)
    assert "10.0.0.1 is a private address" in result.updates["custom"]["refused"]


def test_a_name_resolving_to_a_literally_listed_address_connects_to_that_address(sandbox, crm) -> None:
    broker = Broker(sandbox.broker.client, resolver=resolver_to("127.0.0.1"))
    source = (f"def run(event, ticket, ctx):\n"
              f"    r = ctx.http.get('http://crm.test:{crm.port}/echo')\n"
              f"    return {{'custom': {{'host': r.json()['headers']['Host']}}}}\n")
    result = sandbox.run(source, allow=[f"http://crm.test:{crm.port}", crm.url], broker=broker)
    assert result.updates == {"custom": {"host": f"crm.test:{crm.port}"}}, result


def test_the_checked_address_is_pinned_against_rebinding() -> None:
    seen: list[httpx.Request] = []
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])     # a rebinding resolver

    async def resolve(host: str, port: int) -> list[str]:
        return next(answers)

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async def go() -> dict:
        async with httpx.AsyncClient(transport=httpx.MockTransport(app), trust_env=False) as client:
            session = BrokerSession(Broker(client, resolver=resolve),
                                    BrokerConfig(parse_allowlist(["crm.example.com"]), {"T": "tok-123456"}),
                                    Limits(), asyncio.get_running_loop().time() + 5)
            return await session.request({"method": "GET", "url": "https://crm.example.com/a?b=1",
                                          "auth_secret": "T", "params": {"c": ["2"]}})

    reply = asyncio.run(go())
    assert reply["ok"] and reply["status_code"] == 200
    (request,) = seen
    assert request.url.host == "93.184.216.34" and request.url.port in (None, 443)
    assert request.url.path == "/a" and request.url.params.multi_items() == [("b", "1"), ("c", "2")]
    assert request.headers["host"] == "crm.example.com"
    assert request.headers["authorization"] == "Bearer tok-123456"
    assert request.extensions["sni_hostname"] == "crm.example.com"    # TLS checks the name, not the IP


def test_the_broker_refuses_a_client_that_reads_proxies_from_the_environment() -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            Broker(client)
    with pytest.raises(ValueError, match="trust_env=False"):
        asyncio.run(go())


# -- redirects -----------------------------------------------------------------------------------

def test_redirects_off_the_allowlist_are_refused(sandbox, crm, crm2) -> None:
    for target in ("http://169.254.169.254/latest/meta-data/", f"{crm2.url}/echo", "file:///etc/passwd",
                   f"http://localhost:{crm.port}/echo", f"http://2130706433:{crm.port}/echo"):
        result = fetch(sandbox, f"{crm.url}/redirect?to={target}")
        assert "redirect refused" in result.updates["custom"]["refused"], (target, result)
        assert result.http_calls[0]["status"] == 302


def test_redirects_are_followed_and_the_secret_stays_with_its_origin(sandbox, crm, crm2) -> None:
    source = """
def run(event, ticket, ctx):
    same = ctx.http.get(URL + '/redirect?to=/echo', auth_secret='CRM_TOKEN').json()
    other = ctx.http.get(URL + '/redirect?to=' + OTHER + '/echo', auth_secret='CRM_TOKEN').json()
    return {'custom': {'same': same['headers'].get('Authorization'), 'other': other['headers'].get('Authorization')}}
""".replace("URL", repr(crm.url)).replace("OTHER", repr(crm2.url))
    result = sandbox.run(source, allow=[crm.url, crm2.url])
    assert result.error is None, result.error
    assert result.updates == {"custom": {"same": "Bearer [secret]", "other": None}}
    assert [c["status"] for c in result.http_calls] == [302, 200, 302, 200]


def test_a_redirect_loop_stops(sandbox, crm) -> None:
    result = fetch(sandbox, crm.url + "/loop", limits=Limits(http_calls=50))
    assert "more than 5 redirects" in result.updates["custom"]["refused"]
    assert [c.get("status") for c in result.http_calls] == [302] * 6 + [None]
    assert result.http_calls[-1]["error"] == "more than 5 redirects"


def test_303_after_post_becomes_get(sandbox, crm) -> None:
    source = (f"def run(event, ticket, ctx):\n"
              f"    r = ctx.http.post({crm.url + '/redirect?code=303&to=/echo'!r}, json={{'a': 1}})\n"
              f"    return {{'custom': {{'method': r.json()['method'], 'body': r.json()['body']}}}}\n")
    assert sandbox.run(source).updates == {"custom": {"method": "GET", "body": ""}}


# -- secrets -------------------------------------------------------------------------------------

def test_secrets_are_sent_but_never_seen(sandbox, crm) -> None:
    source = f"""
def run(event, ticket, ctx):
    a = ctx.http.get({crm.url + '/echo'!r}, auth_secret='CRM_TOKEN')
    b = ctx.http.get({crm.url + '/echo'!r}, headers={{'X-Api-Key': 'key {{{{secret:BILLING_TOKEN}}}}'}})
    c = ctx.http.get({crm.url + '/contacts'!r}, params={{'email': 'ann@example.com'}}, auth_secret='CRM_TOKEN')
    ctx.log(a.text, b.text, a.headers)
    return {{'custom': {{'a': a.json()['headers']['Authorization'], 'b': b.json()['headers']['X-Api-Key'],
                        'c': c.json()['customerType']}}}}
"""
    result = sandbox.run(source)
    assert result.error is None, result.error
    assert result.updates == {"custom": {"a": "Bearer [secret]", "b": "key [secret]", "c": "VIP"}}
    everything = json.dumps(result.as_dict())
    assert CRM_TOKEN not in everything and BILLING_TOKEN not in everything


def test_an_unknown_secret_is_a_catchable_refusal(sandbox, crm) -> None:
    source = (f"def run(event, ticket, ctx):\n    try:\n"
              f"        ctx.http.get({crm.url + '/echo'!r}, auth_secret='NOPE')\n"
              f"    except Exception as exc:\n        return {{'custom': {{'e': str(exc)}}}}\n")
    assert sandbox.run(source).updates == {"custom": {"e": "no secret named 'NOPE' in this workspace"}}


# -- budgets and argument checks -----------------------------------------------------------------

def test_the_call_cap_fails_the_run_even_when_caught(sandbox, crm) -> None:
    source = (f"def run(event, ticket, ctx):\n    for i in range(15):\n        try:\n"
              f"            ctx.http.get({crm.url + '/echo'!r})\n        except Exception:\n            pass\n"
              f"    return {{'add_tags': ['x']}}\n")
    result = sandbox.run(source)
    assert result.error["code"] == "http_calls_limit" and result.updates is None
    assert sum(1 for c in result.http_calls if "status" in c) == 10


@pytest.mark.parametrize("path", ["/big?n=5000", "/big?n=3000000&chunked=1"])
def test_a_response_over_the_size_limit_fails_the_run(sandbox, crm, path: str) -> None:
    result = fetch(sandbox, crm.url + path, limits=Limits(response_bytes=4096))
    assert result.error["code"] == "response_size_limit", result
    assert result.updates is None
    assert "4096-byte limit" in result.http_calls[0]["error"]


def test_a_slow_server_times_out_the_call_not_the_service(sandbox, crm) -> None:
    source = (f"def run(event, ticket, ctx):\n    try:\n"
              f"        ctx.http.get({crm.url + '/slow?s=2'!r}, timeout=0.3)\n"
              f"    except Exception as exc:\n        return {{'custom': {{'e': str(exc)}}}}\n")
    result = sandbox.run(source)
    assert "timed out" in result.updates["custom"]["e"]
    assert "timed out" in result.http_calls[0]["error"] and "status" not in result.http_calls[0]
    wall = fetch(sandbox, crm.url + "/slow?s=3", limits=Limits(wall_s=1))
    assert wall.error["code"] == "timeout"
    sandbox.still_serving()


@pytest.mark.parametrize("call, message", [
    ("ctx.http.get(URL, verify=False)", "unexpected keyword argument 'verify'"),
    ("ctx.http.get(URL, None)", "positional argument"),
    ("ctx.http.get(URL, headers={'Host': 'evil'})", "header 'Host' may not be set"),
    ("ctx.http.get(URL, headers={'X': 'a\\r\\nB: c'})", "line break"),
    ("ctx.http.get(URL, headers={'X': 1})", "headers must be a dict of strings"),
    ("ctx.http.get(1)", "url must be a string"),
    ("ctx.http.post(URL, json=ctx)", "is not a JSON value"),
    ("ctx.http.post(URL, json={'a': 1}, data='x')", "not both"),
    ("ctx.http.request('GET', URL)", "has no attribute 'request'"),
])
def test_bad_arguments_are_script_errors_or_refusals(sandbox, crm, call: str, message: str) -> None:
    source = f"def run(event, ticket, ctx):\n    {call.replace('URL', repr(crm.url + '/echo'))}\n"
    result = sandbox.run(source)
    assert result.error is not None and result.error["code"] == "script_error", result
    assert message in result.error["message"], result.error


def test_post_put_patch_delete_carry_json_and_form_bodies(sandbox, crm) -> None:
    source = f"""
def run(event, ticket, ctx):
    out = {{}}
    for name, fn in [('post', ctx.http.post), ('put', ctx.http.put), ('patch', ctx.http.patch), ('delete', ctx.http.delete)]:
        out[name] = fn({crm.url + '/echo'!r}, json={{'n': name}}).json()['body']
    out['form'] = ctx.http.post({crm.url + '/echo'!r}, data={{'a': 'b c'}}).json()['body']
    out['raw'] = ctx.http.post({crm.url + '/echo'!r}, data='plain').json()['body']
    return {{'custom': out}}
"""
    result = sandbox.run(source)
    assert result.error is None, result.error
    assert result.updates["custom"] == {"post": '{"n":"post"}', "put": '{"n":"put"}', "patch": '{"n":"patch"}',
                                        "delete": '{"n":"delete"}', "form": "a=b+c", "raw": "plain"}


def test_without_a_broker_config_http_is_refused(sandbox) -> None:
    result = sandbox.call(sandbox.pool.run("x", 1, CATCH.format(url="https://crm.example.com/"), {}, {}))
    assert result.updates == {"custom": {"refused": "HTTP is not configured for this run"}}


def test_an_unknown_charset_is_read_as_utf8(sandbox, crm) -> None:
    source = f"def run(event, ticket, ctx):\n    return {{'custom': {{'t': ctx.http.get({crm.url + '/charset'!r}).text}}}}\n"
    assert sandbox.run(source).updates == {"custom": {"t": "café"}}


def test_waiting_for_a_worker_does_not_count_against_the_wall_clock(sandbox, crm) -> None:
    import concurrent.futures

    slow = f"def run(event, ticket, ctx):\n    ctx.http.get({crm.url + '/slow?s=1.5'!r})\n    return None\n"
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        busy = [ex.submit(sandbox.run, slow, limits=Limits(wall_s=10)) for _ in range(2)]
        import time
        time.sleep(0.3)
        queued = ex.submit(sandbox.run, "def run(event, ticket, ctx):\n    return None\n",
                           limits=Limits(wall_s=1))
        assert all(f.result(30).error is None for f in busy)
        assert queued.result(30).error is None


def test_broker_call_serves_the_http_request_action_with_the_same_rules(sandbox, crm) -> None:
    config = BrokerConfig(parse_allowlist([crm.url]), {"CRM_TOKEN": CRM_TOKEN})
    reply, calls = sandbox.call(sandbox.broker.call(config, {
        "method": "GET", "url": crm.url + "/contacts", "params": {"email": "ann@example.com"},
        "auth_secret": "CRM_TOKEN"}))
    assert reply["ok"] and json.loads(reply["text"])["customerType"] == "VIP"
    assert calls == [{"method": "GET", "url": f"{crm.url}/contacts?email=ann%40example.com",
                      "status": 200, "ms": calls[0]["ms"]}]
    refused, calls = sandbox.call(sandbox.broker.call(config, {"method": "GET", "url": "http://169.254.169.254/"}))
    assert refused["ok"] is False and refused["kind"] == "refused" and "refused" in calls[0]


# -- HTTPS: the pinned IP is dialled, the certificate is checked against the name ------------------

@pytest.fixture(scope="module")
def tls_crm(tmp_path_factory):
    import shutil

    from crm_app import CrmServer, make_test_certificates

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    ca, cert, key = make_test_certificates(str(tmp_path_factory.mktemp("tls")), "crm.test")
    with CrmServer(tls=(cert, key)) as server:
        yield server, ca


def test_https_to_a_pinned_address_verifies_the_certificate_against_the_name(sandbox, tls_crm) -> None:
    import ssl

    server, ca = tls_crm

    async def make() -> httpx.AsyncClient:
        return httpx.AsyncClient(trust_env=False, verify=ssl.create_default_context(cafile=ca))

    client = sandbox.call(make())
    try:
        broker = Broker(client, resolver=resolver_to("127.0.0.1"))
        allow = [f"crm.test:{server.port}", f"other.test:{server.port}", f"127.0.0.1:{server.port}"]
        source = """
def run(event, ticket, ctx):
    good = ctx.http.get('https://crm.test:PORT/echo').json()['headers']['Host']
    try:
        ctx.http.get('https://other.test:PORT/echo')
        bad = 'connected'
    except Exception as exc:
        bad = str(exc)
    return {'custom': {'good': good, 'bad': bad}}
""".replace("PORT", str(server.port))
        result = sandbox.run(source, allow=allow, broker=broker)
        assert result.error is None, result.error
        assert result.updates["custom"]["good"] == f"crm.test:{server.port}"
        assert "CERTIFICATE_VERIFY_FAILED" in result.updates["custom"]["bad"] or \
            "certificate" in result.updates["custom"]["bad"].lower(), result.updates
    finally:
        sandbox.call(client.aclose())


def test_many_concurrent_runs_with_http_all_complete(sandbox, crm) -> None:
    import concurrent.futures

    source = (f"def run(event, ticket, ctx):\n"
              f"    r = ctx.http.get({crm.url + '/contacts'!r}, params={{'email': ticket['contact']['email']}},"
              f" auth_secret='CRM_TOKEN')\n"
              f"    return {{'custom': {{'type': r.json()['customerType'], 'id': ticket['id']}}}}\n")
    emails = ["ann@example.com", "bob@example.com"] * 20
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: sandbox.run(source, version=30_001, ticket={
            "id": f"T-{i}", "tags": [], "custom": {}, "contact": {"email": emails[i]}}), range(len(emails))))
    for i, result in enumerate(results):
        assert result.error is None, result.error
        assert result.updates == {"custom": {"type": "VIP" if emails[i].startswith("ann") else "standard",
                                             "id": f"T-{i}"}}


# -- an allow-list entry opens exactly its scheme, host and port (issue 13 B12) --------------------

def _status(sandbox, broker: Broker, allow: list[str], url: str) -> object:
    reply, _ = sandbox.call(broker.call(BrokerConfig(parse_allowlist(allow)), {"method": "GET", "url": url}))
    return reply.get("status_code") if reply["ok"] else reply["kind"]


def test_a_literal_ip_entry_opens_only_its_own_port(sandbox, crm, crm2) -> None:
    broker = Broker(sandbox.broker.client, resolver=resolver_to("127.0.0.1"))
    p1, p2 = crm.port, crm2.port
    allow = [f"http://127.0.0.1:{p1}", f"http://localhost:{p2}"]
    cases = {
        f"http://127.0.0.1:{p1}/echo": 200,          # the literal entry itself
        f"http://127.0.0.1:{p2}/echo": "refused",    # not listed
        f"http://localhost:{p2}/echo": "refused",    # listed name, but 127.0.0.1 is open on p1 only
        f"http://localhost:{p1}/echo": "refused",    # the name is listed for p2 only
        f"https://127.0.0.1:{p1}/echo": "refused",   # another scheme
    }
    assert {url: _status(sandbox, broker, allow, url) for url in cases} == cases
    # listing the address for that port too makes the name usable there, and nowhere else
    allow.append(f"http://127.0.0.1:{p2}")
    assert _status(sandbox, broker, allow, f"http://localhost:{p2}/echo") == 200
    assert _status(sandbox, broker, allow, f"http://localhost:{p1}/echo") == "refused"
    reply, calls = sandbox.call(broker.call(BrokerConfig(parse_allowlist(allow[:2])),
                                            {"method": "GET", "url": f"http://localhost:{p2}/echo"}))
    assert "127.0.0.1 is a loopback address" in calls[0]["refused"]
