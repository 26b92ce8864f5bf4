"""Forwarded headers (X-Forwarded-For/-Proto/-Host) count only behind as many proxies as
FORWARDED_PROXIES says; without it anyone could claim any address, scheme or host."""

import pytest
from flask import jsonify, request

from cartoparty import create_app

FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "carto.example.org", "X-Forwarded-Port": "8443",
             "X-Forwarded-Prefix": "/elsewhere"}


def seen_by(app, headers):
    """What a view sees of the client's address, the scheme, the host and the URL root."""

    @app.get("/_seen")
    def seen():
        return jsonify(addr=request.remote_addr, scheme=request.scheme, host=request.host,
                       root=request.url_root)

    return app.test_client().get("/_seen", headers=headers,
                                 environ_base={"REMOTE_ADDR": "172.18.0.5"}).json


def an_app(database_url, **config):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, **config})


def test_forwarded_headers_are_ignored_by_default(database_url):
    assert seen_by(an_app(database_url), FORWARDED) == {
        "addr": "172.18.0.5", "scheme": "http", "host": "localhost", "root": "http://localhost/"}


def test_one_trusted_proxy_gives_address_scheme_and_host_but_not_port_or_prefix(database_url):
    assert seen_by(an_app(database_url, FORWARDED_PROXIES=1), FORWARDED) == {
        "addr": "203.0.113.7", "scheme": "https", "host": "carto.example.org",
        "root": "https://carto.example.org/"}


@pytest.mark.parametrize("proxies, addr", [(1, "198.51.100.2"), (2, "203.0.113.7")])
def test_only_the_trusted_proxies_hops_are_believed(database_url, proxies, addr):
    # A client may put any address first: only the last `proxies` entries were added by ours.
    headers = {"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}
    assert seen_by(an_app(database_url, FORWARDED_PROXIES=proxies), headers)["addr"] == addr


def test_forwarded_proxies_is_read_from_the_environment(database_url, monkeypatch):
    monkeypatch.setenv("FORWARDED_PROXIES", "1")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    assert seen_by(app, FORWARDED)["scheme"] == "https"
