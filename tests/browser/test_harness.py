"""The browser harness itself: live server, phone emulation, network guard, committed data."""

from .conftest import db_rows


def test_phone_loads_the_presets_from_the_live_server(phone, live_server):
    response = phone.goto("/api/presets")
    assert response.url == f"{live_server.url}/api/presets"
    assert response.status == 200
    ids = {preset["id"] for preset in response.json()}
    assert {"tree", "bench", "defibrillator"} <= ids
    assert phone.evaluate("[navigator.language, screen.width, devicePixelRatio, navigator.maxTouchPoints > 0]"
                          ) == ["fr-FR", 360, 2, True]


def test_external_requests_are_blocked_and_recorded(phone, network):
    # A blank page: the app's own pages may fetch nothing but the app (connect-src 'self').
    phone.goto("about:blank")
    error = phone.evaluate("""() => fetch("https://example.org/").then(
        () => "reached", error => error.message)""")
    assert error == "Failed to fetch"
    assert network.take_blocked() == ["https://example.org/"]
    assert network.blocked == []


def test_map_tiles_are_answered_with_a_blank_png(phone, network):
    phone.goto("about:blank")
    tile = phone.evaluate("""async () => {
        const response = await fetch("https://tile.openstreetmap.org/1/0/0.png");
        const image = await createImageBitmap(await response.blob());
        return {status: response.status, type: response.headers.get("content-type"),
                width: image.width, height: image.height};
    }""")
    assert tile == {"status": 200, "type": "image/png", "width": 256, "height": 256}
    assert network.tiles == ["https://tile.openstreetmap.org/1/0/0.png"]


def test_geolocation_is_emulated(phone):
    phone.goto("/api/openapi.json")
    position = phone.evaluate("""() => new Promise((resolve, reject) =>
        navigator.geolocation.getCurrentPosition(
            ({coords}) => resolve([coords.latitude, coords.longitude, coords.accuracy]),
            error => reject(new Error(error.message)), {timeout: 5000}))""")
    assert position == [45.565, 5.92, 8]


def test_the_live_server_sees_and_makes_real_commits(app, phone, committed_event):
    phone.goto("/api/openapi.json")
    status = phone.evaluate("""() => fetch("/api/events/walk/participants", {method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({pseudonym: "Dominique", consent: true})}).then(r => r.status)""")
    assert status == 201
    assert db_rows(app, "SELECT pseudonym FROM participant WHERE event_id = :id",
                   id=committed_event.id) == [("Dominique",)]
