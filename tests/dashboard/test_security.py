"""Web safety: the Host/Origin policy as pure functions, then real servers on loopback sent forged headers
with httpx — a small Blocks app behind the same middleware (with and without --auth), and the real
dashboard (`app_url`)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from dashboard.security import build_policy, host_name, normalise_origin, origin_allowed, refusal
from tests.conftest import free_port, run_app

# --- the policy alone ------------------------------------------------------------------------------


def test_host_name_strips_port_and_brackets():
    assert host_name("127.0.0.1:7860") == "127.0.0.1"
    assert host_name("[::1]:7860") == "::1"
    assert host_name("LocalHost") == "localhost"
    assert host_name("::1") == "::1"


def test_default_policy_allows_loopback_names_and_the_bound_host_only():
    policy = build_policy("192.168.1.5", allow_hosts=["box.lan"])
    for host in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "192.168.1.5:7860", "box.lan"):
        assert refusal(policy, host, None) is None, host
    reason = refusal(policy, "evil.example", None)
    assert reason and "--allow-host evil.example" in reason
    assert refusal(policy, None, None)  # no Host at all


def test_origin_must_be_the_same_origin_or_allowed():
    policy = build_policy("127.0.0.1", allow_origins=["https://Tools.Example:443/"])
    host = "127.0.0.1:7860"
    assert origin_allowed(policy, None, host)
    assert origin_allowed(policy, "http://127.0.0.1:7860", host)
    assert not origin_allowed(policy, "http://127.0.0.1:9999", host)  # another port of the same host
    assert not origin_allowed(policy, "http://evil.example", host)
    assert not origin_allowed(policy, "null", host)
    assert not origin_allowed(policy, "not an origin", host)  # no scheme://host: never this server's own
    assert origin_allowed(policy, "https://tools.example", host)
    assert normalise_origin("HTTP://A.b:80/") == "http://a.b"


def test_refusals_without_a_name_to_trust_say_what_to_do_instead():
    policy = build_policy("127.0.0.1")
    for host in (None, "", "  ", ":7860"):
        reason = refusal(policy, host, None)
        assert reason and "the client sent none" in reason and "--allow-host" not in reason, host
    null = refusal(policy, "127.0.0.1:7860", "null")
    assert null and "sandboxed page or a file:// page" in null and "--allow-origin" not in null
    garbage = refusal(policy, "127.0.0.1:7860", "not an origin")
    assert garbage and "not a scheme://host[:port] origin" in garbage and "--allow-origin" not in garbage
    foreign = refusal(policy, "127.0.0.1:7860", "https://Evil.Example:443")
    assert foreign and foreign.endswith("add --allow-origin https://evil.example to trust it")


# --- a small app behind the middleware, served for real --------------------------------------------


def _serve(demo, policy, auth=None) -> str:
    import uvicorn

    from dashboard.server import bind_socket, secured_app

    port = free_port()
    sock = bind_socket("127.0.0.1", port)
    app = secured_app(demo, policy, auth, "127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/config", timeout=2).status_code < 500:
                return url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _small_demo():
    import gradio as gr

    from core.errors import BadParameter
    from dashboard.api_guard import guard_handlers

    def echo(text):
        if text == "boom":
            raise AttributeError("'NoneType' object has no attribute 'strip'")
        if text == "bad":
            raise BadParameter("max tokens must be at least 1")
        return f"[{text.strip()}]"

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(echo, box, out, api_name="echo")
    guard_handlers(demo)
    demo.queue()
    return demo


@pytest.fixture(scope="module")
def small_url():
    return _serve(_small_demo(), build_policy("127.0.0.1", allow_origins=["http://tools.example"]))


@pytest.fixture(scope="module")
def auth_url():
    return _serve(_small_demo(), build_policy("127.0.0.1"), auth=("u", "pw"))


def call(url: str, value) -> tuple[str, object]:
    """(event, data) of one /gradio_api/call/echo round trip."""
    event_id = httpx.post(f"{url}/gradio_api/call/echo", json={"data": [value]}).json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/echo/{event_id}", timeout=30).text
    event = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("event: ")][-1]
    data = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("data: ")][-1]
    return event, json.loads(data)


def test_forged_host_is_refused_and_every_answer_denies_framing(small_url):
    port = small_url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
        for method, path in (("GET", "/"), ("GET", "/config"), ("POST", "/gradio_api/call/echo")):
            resp = httpx.request(method, small_url + path, headers={"Host": host}, json={"data": ["x"]})
            assert resp.status_code == 403, (host, path)
            assert resp.headers["x-frame-options"] == "DENY"
    for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        resp = httpx.get(small_url + "/", headers={"Host": host})
        assert resp.status_code == 200, host
        assert resp.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


def test_foreign_origin_is_never_echoed(small_url):
    for origin in ("http://evil.example", "null", small_url.rsplit(":", 1)[0] + ":1"):
        resp = httpx.get(small_url + "/gradio_api/info", headers={"Origin": origin})
        assert resp.status_code == 403 and "access-control-allow-origin" not in resp.headers, origin
        pre = httpx.options(
            small_url + "/gradio_api/info", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
        assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    same = httpx.get(small_url + "/gradio_api/info", headers={"Origin": small_url})
    assert same.headers["access-control-allow-origin"] == small_url
    allowed = httpx.get(small_url + "/gradio_api/info", headers={"Origin": "http://tools.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://tools.example"


def test_auth_mode_refuses_a_foreign_origin_even_with_the_cookie(auth_url):
    client = httpx.Client(base_url=auth_url)
    assert client.post("/login", data={"username": "u", "password": "pw"}).status_code == 200
    assert client.get("/config").status_code == 200  # the cookie works
    for origin in ("http://127.0.0.1:1", "http://evil.example"):
        resp = client.get("/config", headers={"Origin": origin})
        assert resp.status_code == 403 and "access-control-allow-origin" not in resp.headers
    assert httpx.get(auth_url + "/config", headers={"Host": "evil.example"}).status_code == 403


def test_api_callers_get_one_line_messages(small_url):
    assert call(small_url, None) == ("complete", ["[]"])  # None reads as empty text, as the UI sends it
    event, data = call(small_url, "bad")
    assert event == "error" and data["error"] == "max tokens must be at least 1"
    event, data = call(small_url, "boom")
    message = data["error"]
    assert event == "error" and message.startswith("unexpected error: AttributeError:") and "\n" not in message
    body = {"data": [], "fn_index": 9999, "session_hash": "s"}
    for path in ("/gradio_api/queue/join", "/gradio_api/run/predict"):
        resp = httpx.post(small_url + path, json=body)
        assert resp.status_code == 404 and "no API function with fn_index 9999" in resp.json()["error"]


def test_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_app("serve", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: port {port} is already in use — pick another with --port"]
    assert "serving at" not in proc.stdout


# --- the real dashboard ----------------------------------------------------------------------------


def test_real_dashboard_refuses_forged_host_and_answers_plan_errors_in_one_line(app_url):
    assert httpx.get(app_url + "/", headers={"Host": "evil.example"}).status_code == 403
    home = httpx.get(app_url + "/")
    assert home.status_code == 200 and home.headers["x-frame-options"] == "DENY"
    event_id = httpx.post(
        f"{app_url}/gradio_api/call/edit_plan", json={"data": [{"headers": ["a"], "data": [[1]]}]}
    ).json()["event_id"]
    text = httpx.get(f"{app_url}/gradio_api/call/edit_plan/{event_id}", timeout=60).text
    assert "lacks the column(s) component, share of RAM (%)" in text, text
