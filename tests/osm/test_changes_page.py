"""The OSM changes page: an organiser prepares the plan, reads the diffs, settles a conflict,
edits the changeset tags and downloads the files; JOSM fetches its file through a signed link."""

import re
import uuid
from html import unescape
from urllib.parse import parse_qs, unquote, urlsplit

import defusedxml.ElementTree as ElementTree
import pytest
from conftest import make_event, make_organiser
from osm.test_changes import mapped, surveyed
from test_organise import csrf

from cartoparty.extensions import db
from cartoparty.models import Participant
from cartoparty.osm import changes


@pytest.fixture
def party(event):
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    return event, walker


@pytest.fixture
def page_url(event):
    return f"/organise/{event.slug}/osm-changes"


def post(client, page_url, action, **form):
    return client.post(f"{page_url}/{action}", data={"csrf_token": csrf(client, page_url), **form})


def prepared(client, party, osm_api, page_url):
    """A new tree, a tree whose species OSM changed meanwhile (a conflict), then the plan."""
    from cartoparty.osm.conflate import match

    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"}, east_m=60)
    new = surveyed(party, {"species": "Acer <b>campestre</b>", "name": 'Le "vieux" & grand'})
    conflicted = surveyed(party, {"species": "Tilia cordata"}, east_m=60)
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia platyphyllos"})
    match(party[0])
    db.session.commit()
    assert post(client, page_url, "build").status_code == 302
    return new, conflicted


def test_only_the_events_organisers_see_the_page(client, event, page_url):
    assert client.get(page_url).status_code == 302                  # to sign in
    stranger = make_organiser("mallory@example.org", events=[make_event("elsewhere")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    assert client.get(page_url).status_code == 403
    assert client.get(f"{page_url}/1.osc").status_code == 403


def test_a_form_without_its_csrf_token_is_refused(client, organiser, page_url):
    assert client.post(f"{page_url}/build").status_code == 400
    assert changes.plan_of(organiser.events[0]).built_at is None


def test_the_page_shows_creates_modifies_and_the_conflict_escaped(client, organiser, party, osm_api,
                                                                   page_url):
    prepared(client, party, osm_api, page_url)
    html = client.get(page_url).get_data(as_text=True)
    assert "Acer &lt;b&gt;campestre&lt;/b&gt;" in html and "<b>campestre" not in html
    assert "Le &#34;vieux&#34; &amp; grand" in html or "Le &quot;vieux&quot; &amp; grand" in html
    assert "node/101" in html and "Tilia platyphyllos" in html and "Tilia cordata" in html
    assert 'id="counts"' in html and "1 conflit à trancher" in html
    assert "1 objet à créer" in html


def test_settling_the_conflict_puts_the_modify_in_the_file(client, organiser, party, osm_api, page_url):
    _, conflicted = prepared(client, party, osm_api, page_url)
    modify = next(c for c in changes.items(organiser.events[0]) if c.action == "modify")
    response = post(client, page_url, f"{modify.id}/settle", key="species", choice="walker")
    assert response.status_code == 302
    osc = client.get(f"{page_url}/1.osc")
    assert osc.status_code == 200 and osc.mimetype == "application/xml"
    root = ElementTree.fromstring(osc.data)
    (node,) = root.find("modify")
    assert (node.get("id"), node.get("version")) == ("101", "4")
    assert {t.get("k"): t.get("v") for t in node.iter("tag")} == {
        "natural": "tree", "species": "Tilia cordata"}
    assert [n.get("id") for n in root.find("create")] == ["-1"]


def test_a_bad_choice_is_refused_on_the_page_in_the_users_language(client, organiser, party, osm_api,
                                                                    page_url):
    prepared(client, party, osm_api, page_url)
    modify = next(c for c in changes.items(organiser.events[0]) if c.action == "modify")
    response = post(client, page_url, f"{modify.id}/settle", key="species", choice="both")
    assert response.status_code == 422
    assert "Choix impossible" in unescape(response.get_data(as_text=True))
    assert post(client, page_url, "999999/hold", held="1").status_code == 404


def test_changeset_settings_are_kept_and_shown_as_tags(client, organiser, party, osm_api, page_url):
    prepared(client, party, osm_api, page_url)
    response = post(client, page_url, "settings", comment="Arbres <du> quartier",
                    hashtags="#cartoparty #bissy", wiki_page="Bissy_2026", max_changes="1000",
                    max_size="0.05")
    assert response.status_code == 302
    html = client.get(page_url).get_data(as_text=True)
    assert "Arbres &lt;du&gt; quartier #cartoparty #bissy" in html
    josm = client.get(f"{page_url}/1.osm")
    tags = {t.get("k"): t.get("v") for t in ElementTree.fromstring(josm.data).find("changeset")}
    assert tags["comment"] == "Arbres <du> quartier #cartoparty #bissy"
    assert tags["hashtags"] == "#cartoparty;#bissy"
    refused = post(client, page_url, "settings", hashtags="not a hashtag")
    assert refused.status_code == 422
    assert changes.plan_of(organiser.events[0]).hashtags == "#cartoparty #bissy"


def test_josm_fetches_its_file_through_a_signed_link_without_a_session(client, app, organiser, party,
                                                                       osm_api, page_url):
    prepared(client, party, osm_api, page_url)
    html = unescape(client.get(page_url).get_data(as_text=True))
    remote = re.search(r'href="(http://127\.0\.0\.1:8111/import\?[^"]+)"', html).group(1)
    query = parse_qs(urlsplit(remote).query)
    assert query["new_layer"] == ["true"] and remote.index("url=") > remote.index("layer_name=")
    file_url = urlsplit(unquote(remote.split("url=", 1)[1]))
    anonymous = app.test_client()
    answer = anonymous.get(file_url.path)
    assert answer.status_code == 200
    assert ElementTree.fromstring(answer.data).find("changeset") is not None
    tampered = file_url.path[:-3] + ("AAA" if not file_url.path.endswith("AAA") else "BBB")
    assert anonymous.get(tampered).status_code == 404
    # Prepared again: the link was for the plan the organiser saw, and no longer holds.
    post(client, page_url, "build")
    assert anonymous.get(file_url.path).status_code == 404


def test_downloads_before_any_plan_say_so(client, organiser, page_url):
    response = client.get(f"{page_url}/1.osc")
    assert response.status_code == 409
    assert "pas encore été préparés" in unescape(response.get_data(as_text=True))


def test_a_changeset_that_does_not_exist_is_not_found(client, organiser, party, osm_api, page_url):
    prepared(client, party, osm_api, page_url)
    assert client.get(f"{page_url}/2.osc").status_code == 404
    assert client.get(f"{page_url}/0.osm").status_code == 404
