"""A verification walk on a phone: the town's rows on the map as diamonds "to check", still there
offline; each verdict (as described, different, moved, not found) saved offline and sent once
with its row, its position and its tags; and a new defibrillator recorded next to a row the
walker has not checked asks whether it is that row."""

import math

import pytest
from conftest import TOWN_DAE, load_reference
from playwright.sync_api import expect

from cartoparty.extensions import db
from cartoparty.models import Event

from .conftest import db_rows
from .test_walker import ALL_SENT, a_photo, eventually, join, service_worker_keeps_the_page

# The town's three defibrillators and a fourth, by the pool, that walkers will not find.
TOWN = TOWN_DAE + "D4,Piscine,45.5655,5.9230,Extérieur,oui,,Entrée du bassin,7j/7,24h/24,\n"
WHERE_ROWS_ARE = {"D1": (45.565, 5.92), "D2": (45.566, 5.921), "D3": (45.564, 5.919),
                  "D4": (45.5655, 5.923)}
WHERE = "Où se trouve-t-il exactement ?"
WHO = "Qui peut s'en servir ?"
VERDICTS = """
    SELECT r.source_id, s.verdict, s.tags, s.note, s.accuracy, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
           (SELECT count(*) FROM photo p WHERE p.submission_id = s.id) AS photos
    FROM submission s LEFT JOIN reference_row r ON r.id = s.reference_row_id
    WHERE s.event_id = :id ORDER BY s.id
"""


def town_rows(app, event, data):
    """Import `data` as the committed event's dataset; {source_id: row id}."""
    with app.app_context():
        rows = load_reference(db.session.get(Event, event.id), data=data)
        return {source_id: row.id for source_id, row in rows.items()}


@pytest.fixture
def four_rows(app, committed_event):
    return town_rows(app, committed_event, TOWN)


@pytest.fixture
def three_rows(app, committed_event):
    return town_rows(app, committed_event, TOWN_DAE)


def metres(lat1, lon1, lat2, lon2):
    """Roughly, between two close positions (WGS84 degrees)."""
    dy = (lat2 - lat1) * 111_320
    dx = (lon2 - lon1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def verdicts(app, event):
    return {row.source_id: row for row in db_rows(app, VERDICTS, id=event.id)}


def choose(phone, title, choice):
    """Open the row's diamond (from the keyboard: the map pans to it), then take one of the
    popup's four choices."""
    expect(phone.locator(".leaflet-popup")).to_have_count(0)  # the last one closed
    phone.get_by_role("button", name=f"À vérifier : {title}").press("Enter")
    expect(phone.locator(".reference-popup h3")).to_have_text(title)
    phone.locator(".reference-popup").get_by_role("button", name=choice).click()


def waiting_bodies(phone):
    """The bodies waiting in the phone's outbox, by reference row id."""
    bodies = phone.evaluate("""() => new Promise((resolve) => {
        indexedDB.open("cartoparty").onsuccess = (opened) => {
            const read = opened.target.result.transaction("outbox").objectStore("outbox").getAll();
            read.onsuccess = () => resolve(read.result.map((record) => record.body));
        };
    })""")
    return {body.get("reference"): body for body in bodies}


def save(phone):
    phone.get_by_role("button", name="Enregistrer").click()
    expect(phone.locator("#sheet")).to_be_hidden()


def test_a_walker_checks_the_towns_rows_offline_and_each_verdict_arrives_once(
        app, phone, committed_event, four_rows):
    join(phone)
    for title in ("Mairie", "Ecole", "Gymnase", "Piscine"):
        expect(phone.get_by_role("button", name=f"À vérifier : {title}")).to_be_visible()
    expect(phone.locator(".reference-to-check")).to_have_count(4)
    service_worker_keeps_the_page(phone)
    phone.context.set_offline(True)
    phone.reload()  # offline: the rows come from the phone's last copy
    expect(phone.locator(".reference-to-check")).to_have_count(4)

    choose(phone, "Mairie", "Ici, comme décrit")  # saved at once, no sheet
    expect(phone.locator("#toast")).to_have_text("« Mairie » confirmé, enregistré sur le téléphone")
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.get_by_role("button", name="Vérifié : Mairie")).to_have_count(1)

    choose(phone, "Ecole", "Ici, mais différent")  # the row's answers, to correct
    expect(phone.locator("#sheet-title")).to_have_text("« Ecole » : ce qui a changé")
    expect(phone.get_by_label(WHERE, exact=True)).to_have_value("Sous le préau")
    expect(phone.locator("#presets")).to_be_hidden()
    phone.get_by_label(WHO, exact=True).select_option("customers")
    save(phone)

    choose(phone, "Gymnase", "Déplacé")  # placed by the walker: a tap on the map
    expect(phone.locator("#sheet-title")).to_have_text("« Gymnase » a été déplacé")
    phone.locator("#map").click(position={"x": 260, "y": 150})
    save(phone)

    choose(phone, "Piscine", "Introuvable")  # only a note and a photo of the empty spot
    expect(phone.locator("#sheet-title")).to_have_text("« Piscine » est introuvable")
    expect(phone.get_by_label(WHERE, exact=True)).to_be_hidden()
    phone.get_by_label("Remarque").fill("Plus de boîtier, seulement les trous des vis")
    phone.locator("#photo").set_input_files({"name": "vide.png", "mimeType": "image/png",
                                             "buffer": a_photo()})
    expect(phone.locator("#photo-preview img")).to_have_count(1)
    save(phone)

    expect(phone.locator("#sync")).to_have_text("4 en attente d'envoi")
    expect(phone.locator(".reference-checked")).to_have_count(4)
    expect(phone.locator(".reference-to-check")).to_have_count(0)
    # A pending verdict is corrected like any point, and stays a verdict on its row.
    school = waiting_bodies(phone)[four_rows["D2"]]["client_id"]
    phone.locator(f'.point[data-client-id="{school}"]').press("Enter")
    expect(phone.locator(".popup .verdict")).to_have_text("Vérification : différent")
    phone.get_by_role("button", name="Corriger").click()
    expect(phone.get_by_label(WHO, exact=True)).to_have_value("customers")
    phone.get_by_label("Remarque").fill("Un panneau « réservé aux élèves »")
    save(phone)
    assert db_rows(app, "SELECT 1 FROM submission WHERE event_id = :id", id=committed_event.id) == []

    phone.context.set_offline(False)
    phone.evaluate("window.dispatchEvent(new Event('online'))")
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    eventually(phone, lambda: verdicts(app, committed_event).get("D4") is not None
               and verdicts(app, committed_event)["D4"].photos == 1)
    found = verdicts(app, committed_event)
    assert len(db_rows(app, "SELECT 1 FROM submission WHERE event_id = :id", id=committed_event.id)) == 4
    assert {source: row.verdict for source, row in found.items()} == {
        "D1": "confirmed", "D2": "different", "D3": "moved", "D4": "missing"}
    mairie, school, gym, pool = (found[source] for source in ("D1", "D2", "D3", "D4"))
    assert mairie.tags == {"emergency": "defibrillator", "indoor": "yes", "access": "yes", "level": "0",
                           "defibrillator:location": "Hall d'accueil", "opening_hours": "24/7"}
    assert school.tags == {"emergency": "defibrillator", "indoor": "no", "access": "customers",
                           "defibrillator:location": "Sous le préau"}
    assert school.note == "Un panneau « réservé aux élèves »"
    for source in ("D1", "D2", "D4"):  # at the row's position, not the phone's
        assert metres(*WHERE_ROWS_ARE[source], found[source].lat, found[source].lon) < 0.01
        assert found[source].accuracy is None
    assert metres(*WHERE_ROWS_ARE["D3"], gym.lat, gym.lon) > 10
    assert metres(45.565, 5.92, gym.lat, gym.lon) > 10  # where the walker tapped, not the GPS fix
    assert gym.accuracy is None
    assert (pool.tags, pool.note, pool.photos) == (
        {"emergency": "defibrillator"}, "Plus de boîtier, seulement les trous des vis", 1)
    expect(phone.locator(".reference-checked")).to_have_count(4)  # from the server's points now


def test_a_new_defibrillator_next_to_a_row_is_asked_whether_it_is_that_row(
        app, phone, committed_event, three_rows):
    phone.context.set_geolocation({"latitude": 45.56505, "longitude": 5.92, "accuracy": 8})
    join(phone)
    expect(phone.locator(".reference-to-check")).to_have_count(3)

    def record_defibrillator(where):
        phone.get_by_role("button", name="Ajouter un point").click()
        phone.locator('[data-preset="defibrillator"]').click()
        phone.get_by_label(WHERE, exact=True).fill(where)
        phone.get_by_role("button", name="Enregistrer").click()

    record_defibrillator("Hall d'accueil, à droite de la porte")  # 6 m from the town hall's
    expect(phone.locator("#nearby-question")).to_have_text(
        "Est-ce « Mairie » (6 m), du jeu de données de la ville ?")
    expect(phone.get_by_role("button", name="Enregistrer")).to_be_hidden()
    phone.get_by_role("button", name="Oui, c'est lui").click()
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.get_by_role("button", name="Vérifié : Mairie")).to_have_count(1)

    phone.context.set_geolocation({"latitude": 45.5662, "longitude": 5.921, "accuracy": 8})
    phone.locator("#toast").evaluate("toast => { toast.hidden = true; }")  # it covers "Ajouter"
    # A bench by the school is no defibrillator: nothing to ask.
    phone.get_by_role("button", name="Ajouter un point").click()
    phone.locator('[data-preset="bench"]').click()
    save(phone)
    phone.locator("#toast").evaluate("toast => { toast.hidden = true; }")
    record_defibrillator("Dans le gymnase de l'école")  # 22 m from the school's: another one
    expect(phone.locator("#nearby-question")).to_have_text(
        "Est-ce « Ecole » (22 m), du jeu de données de la ville ?")
    phone.get_by_role("button", name="Non, un autre").click()
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.get_by_role("button", name="À vérifier : Ecole")).to_have_count(1)

    phone.context.set_geolocation({"latitude": 45.56415, "longitude": 5.919, "accuracy": 8})
    phone.locator("#toast").evaluate("toast => { toast.hidden = true; }")
    record_defibrillator("À l'entrée")  # 17 m from the gym's: it has moved
    expect(phone.locator("#nearby-question")).to_have_text(
        "Est-ce « Gymnase » (17 m), du jeu de données de la ville ?")
    phone.get_by_role("button", name="Oui, c'est lui").click()
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)

    rows = db_rows(app, VERDICTS, id=committed_event.id)
    assert [(row.source_id, row.verdict, row.tags.get("defibrillator:location")) for row in rows] == [
        ("D1", "different", "Hall d'accueil, à droite de la porte"), (None, None, None),
        (None, None, "Dans le gymnase de l'école"), ("D3", "moved", "À l'entrée")]
    town_hall, _, other, gym = rows
    assert metres(45.565, 5.92, town_hall.lat, town_hall.lon) < 0.01  # the row's position
    assert town_hall.accuracy is None
    assert metres(45.5662, 5.921, other.lat, other.lon) < 0.01 and other.accuracy == 8
    assert metres(45.56415, 5.919, gym.lat, gym.lon) < 0.01 and gym.accuracy == 8

    # The organisers settled the school's row: the map says so when the walker comes back to it.
    with app.app_context():
        db.session.execute(db.text("UPDATE reference_row SET settled = 'confirmed' WHERE id = :id"),
                           {"id": three_rows["D2"]})
        db.session.commit()
    phone.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(phone.get_by_role("button", name="Vérifié : Ecole")).to_have_count(1)
