"""The demo event: a real neighbourhood of Chambéry (Savoie), every preset, a demo organiser
and a few points from two walkers, so that a fresh `make run` has something to show."""

import os
import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from .auth import hash_password
from .extensions import db
from .models import Event, Organiser, Participant, Status, Submission, Team, hash_token
from .presets import all_presets, check_tags
from .zones import read_zone

SLUG = "demo"
ORGANISER_EMAIL = "organiser@demo.cartoparty.test"
# East of Chambéry's old town, between the Leysse and the railway (WGS84, lon/lat).
ZONE = {"type": "Polygon", "coordinates": [[
    [5.9245, 45.5625], [5.9395, 45.5625], [5.9395, 45.5705], [5.9245, 45.5705], [5.9245, 45.5625],
]]}
# Two teams as in a data expedition: one question and one area each.
TEAMS = [
    ("Arbres (ouest)", ["tree"], {"type": "Polygon", "coordinates": [[
        [5.9245, 45.5625], [5.9320, 45.5625], [5.9320, 45.5705], [5.9245, 45.5705], [5.9245, 45.5625]]]}),
    ("Mobilier urbain (est)", ["bench", "waste_basket", "drinking_water", "bicycle_parking",
                               "post_box", "defibrillator"], {"type": "Polygon", "coordinates": [[
        [5.9320, 45.5625], [5.9395, 45.5625], [5.9395, 45.5705], [5.9320, 45.5705], [5.9320, 45.5625]]]}),
]
# Four points stand a metre or two from features mapped in OpenStreetMap in this
# neighbourhood (positions of OSM nodes as of 2020), so that checking the demo against OSM finds
# something there already, the same (the pharmacy) or with tags to add or change; the others
# fall at random in the zone and come out new.
SAMPLE_POINTS = [
    ("tree", {"species": "Platanus × hispanica", "leaf_type": "broadleaved"}, Status.approved,
     (5.9315916, 45.5663386)),  # OSM tree 3002202144, no species yet
    ("tree", {"genus": "Tilia", "leaf_cycle": "deciduous"}, Status.pending, None),
    ("tree", {"species": "Acer platanoides"}, Status.pending, None),
    ("bench", {"backrest": "yes", "material": "wood"}, Status.approved,
     (5.9327131, 45.5666418)),  # OSM bench 3415730562, no backrest or material yet
    ("bench", {"backrest": "no"}, Status.rejected, None),
    # What a walker can read on the spot; the phone number is one reserved for fiction.
    ("defibrillator", {"indoor": "yes", "defibrillator:location": "Dans le hall, à gauche",
                       "level": "0", "access": "yes", "opening_hours": "Mo-Fr 08:00-18:00",
                       "phone": "+33 1 99 00 12 34", "operator": "Ville de Chambéry"},
     Status.approved, None),
    ("pharmacy", {"name": "Pharmacie du Faubourg", "dispensing": "yes"}, Status.approved,
     (5.9313298, 45.5661877)),  # OSM pharmacy 1191146770, the same tags
    ("recycling", {"operator": "Grand Chambéry"}, Status.pending,
     (5.9316788, 45.5655810)),  # OSM container 6602445880, another operator
    ("drinking_water", {"bottle": "yes"}, Status.pending, None),
    ("bicycle_parking", {"bicycle_parking": "stands", "capacity": "8"}, Status.pending, None),
    ("post_box", {"operator": "La Poste"}, Status.approved, None),
]


def demo_password():
    """The demo organiser's password (DEMO_PASSWORD, or a fixed one for local use)."""
    return os.environ.get("DEMO_PASSWORD", "cartoparty-demo")


def _organiser():
    organiser = db.session.scalar(db.select(Organiser).filter_by(email=ORGANISER_EMAIL))
    if organiser is None:
        organiser = Organiser(email=ORGANISER_EMAIL, password_hash="")
        db.session.add(organiser)
    organiser.password_hash = hash_password(demo_password())
    return organiser


def _sample_submissions(event, walkers):
    presets = all_presets()
    randomness = random.Random(42)  # the same demo every time
    start = datetime.now(UTC) - timedelta(hours=2)
    for number, (preset_id, tags, status, position) in enumerate(SAMPLE_POINTS):
        lon, lat = position or (randomness.uniform(5.9260, 5.9380), randomness.uniform(45.5635, 45.5695))
        db.session.add(Submission(
            event_id=event.id, participant_id=walkers[number % len(walkers)].id,
            client_id=uuid.UUID(int=randomness.getrandbits(128), version=4), preset=preset_id,
            geom=f"SRID=4326;POINT({lon:.7f} {lat:.7f})", accuracy=randomness.choice([4, 8, 15]),
            tags=check_tags(presets[preset_id], tags), note="", status=status,
            observed_at=start + timedelta(minutes=7 * number), body_sha256="demo"))


def load_demo(keep=False):
    """Create or refresh the demo event (with `keep`, only create it when missing).

    Returns the organiser's email and password, and whether the event was (re)loaded."""
    event = db.session.scalar(db.select(Event).filter_by(slug=SLUG))
    if event is not None and keep:
        _organiser()
        db.session.commit()
        return ORGANISER_EMAIL, demo_password(), False
    if event is not None:
        db.session.delete(event)
        db.session.flush()
    # Listed on purpose: the demo is there to be found (a new event is not, until its
    # organiser says so).
    event = Event(slug=SLUG, name="Cartopartie de démonstration — Chambéry", listed=True,
                  description="Une balade pour recenser arbres, bancs, défibrillateurs et "
                              "fontaines du quartier. Demo mapping party in Chambéry.",
                  zone=read_zone(ZONE), presets=list(all_presets()),
                  starts_at=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
                  ends_at=datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                  + timedelta(hours=3))
    event.organisers.append(_organiser())
    db.session.add(event)
    db.session.flush()
    teams = [Team(event_id=event.id, name=name, presets=presets, sector=read_zone(sector))
             for name, presets, sector in TEAMS]
    db.session.add_all(teams)
    db.session.flush()
    walkers = [Participant(event_id=event.id, pseudonym=name, consented_at=datetime.now(UTC),
                           token_hash=hash_token(secrets.token_urlsafe(32)), team_id=team.id)
               for name, team in zip(("Camille", "Noor"), teams, strict=True)]
    db.session.add_all(walkers)
    db.session.flush()
    _sample_submissions(event, walkers)
    db.session.commit()
    return ORGANISER_EMAIL, demo_password(), True
