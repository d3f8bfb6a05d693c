"""The Host and Origin rules of the web demo's guard, case by case (the guard itself is
tested over sockets in test_report_web_limits.py)."""

from __future__ import annotations

import pytest

from affectgpt.report.web_guard import GuardPolicy, host_allowed, host_name, same_site


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:7860", "127.0.0.1"), ("[::1]:7860", "::1"), ("[::1]", "::1"),
    ("LocalHost", "localhost"), ("demo.lan:80", "demo.lan"), ("::1", "::1"), ("[::1", ""),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("header, allowed, ok", [
    ("127.0.0.1:7860", (), True), ("[::1]:7860", (), True), ("192.168.1.20:7860", (), True),
    ("localhost:7860", (), True), ("rebound.example:7860", (), False),
    ("localhost.rebound.example", (), False), ("127.0.0.1.nip.io:7860", (), False),
    ("demo.lan:7860", ("Demo.LAN",), True), ("other.lan", ("demo.lan",), False),
    ("anything.example", ("*",), True), ("", (), False), (None, (), False),
])
def test_host_allowed(header, allowed, ok):
    assert host_allowed(header, allowed) is ok


@pytest.mark.parametrize("method, origin, fetch_site, ok", [
    ("GET", "http://evil.example", "cross-site", True),  # reading the page changes nothing
    ("POST", None, None, True),  # curl, scripts
    ("POST", "http://127.0.0.1:7860", "same-origin", True),
    ("POST", "http://127.0.0.1:7860", None, True),
    ("POST", None, "none", True),  # typed into the address bar
    ("POST", "http://127.0.0.1:7861", None, False),  # another port is another site
    ("POST", "http://evil.example", None, False), ("POST", "null", None, False),
    ("POST", None, "cross-site", False), ("POST", None, "same-site", False),
    ("PUT", "file://", None, False),
])
def test_same_site(method, origin, fetch_site, ok):
    assert same_site(method, "127.0.0.1:7860", origin, fetch_site) is ok


def test_policy_limits_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        GuardPolicy(max_body_bytes=0, body_seconds=1, max_active=1)
    with pytest.raises(ValueError, match="positive"):
        GuardPolicy(max_body_bytes=1, body_seconds=1, max_active=0)
