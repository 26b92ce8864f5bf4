"""Defibrillators in the national exchange schema (schema-dae 1.0.7, the Géo'DAE format).

A survey knows where a defibrillator is, how to reach it and when; only its operator knows
the manufacturer, the serial number or the maintenance dates, so those columns stay empty.
Each value written here is one the schema accepts: a tag that does not fit is left out.
"""

import re

# The schema's 46 columns, in its order.
FIELDS = (
    "nom", "lat_coor1", "long_coor1", "adr_num", "adr_voie", "com_cp", "com_insee", "com_nom",
    "acc", "acc_lib", "acc_pcsec", "acc_acc", "dae_mobile", "acc_etg", "acc_complt", "photo1",
    "photo2", "disp_j", "disp_h", "disp_complt", "tel1", "tel2", "site_email", "date_instal",
    "etat", "etat_fonct", "fab_siren", "fab_rais", "mnt_siren", "mnt_rais", "modele", "num_serie",
    "id_euro", "lc_ped", "dtpr_lcped", "dtpr_lcad", "dtpr_bat", "freq_mnt", "dispsurv", "dermnt",
    "expt_siren", "expt_siret", "expt_rais", "expt_tel1", "expt_tel2", "expt_email",
)
# Required by the schema, but only the operator can tell (the survey leaves them empty).
OPERATOR_ONLY = ("etat_fonct", "fab_rais", "modele", "num_serie", "dermnt", "expt_siren",
                 "expt_tel1", "expt_email")

# The schema's rules for the columns a survey fills.
PHONE = re.compile(r"^(\+33|\+590|\+594|\+262|\+596|\+269|\+687|\+689|\+590|\+508|\+681)(\d){6,9}$")
POSTCODE = re.compile(r"^\d{5}$")
INSEE = re.compile(r"^\d[AB\d]\d{3}$")
UNKNOWN = "non renseigné"

# OSM access values: may anyone use it without asking?
FREE_ACCESS = {"yes": "oui", "permissive": "oui", "customers": "non", "private": "non", "no": "non"}
INDOOR = {"yes": "Intérieur", "no": "Extérieur"}

# French overseas numbers keep their own country code once the leading 0 is dropped.
OVERSEAS = {"0262": "+262", "0263": "+262", "0269": "+262", "0639": "+262", "0692": "+262",
            "0693": "+262", "0590": "+590", "0690": "+590", "0691": "+590", "0594": "+594",
            "0694": "+594", "0596": "+596", "0696": "+596", "0697": "+596"}

DAYS = {"Mo": "lundi", "Tu": "mardi", "We": "mercredi", "Th": "jeudi", "Fr": "vendredi",
        "Sa": "samedi", "Su": "dimanche"}
WEEK = list(DAYS)
SELECTOR = re.compile(r"(Mo|Tu|We|Th|Fr|Sa|Su)(?:-(Mo|Tu|We|Th|Fr|Sa|Su))?|PH")
SPAN = re.compile(r"([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")
# Night as French labour law counts it (21:00 to 06:00), in minutes since midnight.
DAY_STARTS, NIGHT_STARTS = 6 * 60, 21 * 60


def phone(value):
    """An OSM phone number in the schema's E.164 form (+33479000000), or '' if it is not one."""
    number = re.sub(r"[\s.\-()/]", "", (value or "").replace("(0)", ""))
    if number.startswith("00"):
        number = "+" + number[2:]
    elif re.fullmatch(r"0[1-9]\d{8}", number):
        number = OVERSEAS.get(number[:4], "+33") + number[1:]
    return number if PHONE.fullmatch(number) else ""


def _days(selector):
    """The weekdays (and 'PH') of a selector such as 'Mo-Fr,Su,PH', or None if not one."""
    days = []
    for item in (part.strip() for part in selector.split(",")):
        match = SELECTOR.fullmatch(item)
        if match is None:
            return None
        if item == "PH":
            days.append("PH")
            continue
        first = WEEK.index(match[1])
        last = WEEK.index(match[2] or match[1])
        days += [WEEK[(first + step) % 7] for step in range((last - first) % 7 + 1)]
    return days


def _spans(times):
    """(start, end) minutes of '08:00-12:00,14:00-18:00', or None if not that simple."""
    spans = []
    for item in times.split(","):
        match = SPAN.fullmatch(item.strip())
        if match is None:
            return None
        start, end = int(match[1]) * 60 + int(match[2]), int(match[3]) * 60 + int(match[4])
        if start >= 24 * 60 or end > 24 * 60:
            return None
        spans.append((start, end))
    return spans


def _rules(opening_hours):
    """The open days and time spans of simple opening_hours rules, or None when the value
    uses more of the syntax (months, weeks, sunrise, fallbacks…) than a summary can carry."""
    open_days, spans = [], []
    for rule in filter(None, (part.strip() for part in opening_hours.split(";"))):
        selector, _, times = rule.partition(" ")
        if SPAN.match(selector):  # times alone apply to every day
            selector, times = "Mo-Su", rule
        days = _days(selector)
        if days is None:
            return None
        if times.strip() in ("off", "closed"):
            open_days = [day for day in open_days if day not in days]
            continue
        rule_spans = _spans(times.strip())
        if rule_spans is None:
            return None
        open_days += [day for day in days if day not in open_days]
        spans += rule_spans
    return (open_days, spans) if open_days and spans else None


def _hours(spans):
    """disp_h: '24h/24' for whole days, else business hours and/or night hours."""
    kinds = set()
    for start, end in spans:
        if (start, end) == (0, 24 * 60):
            kinds.add("24h/24")
            continue
        # 22:00-02:00 runs past midnight: two pieces, each within one day.
        for piece_start, piece_end in [(start, end)] if end > start else [(start, 24 * 60), (0, end)]:
            if piece_start < NIGHT_STARTS and piece_end > DAY_STARTS:
                kinds.add("heures ouvrables")
            if piece_start < DAY_STARTS or piece_end > NIGHT_STARTS:
                kinds.add("heures de nuit")
    order = ("heures ouvrables", "heures de nuit", "24h/24")
    return "|".join(item for item in order if item in kinds)


def availability(opening_hours):
    """(disp_j, disp_h, disp_complt) from an OSM opening_hours value; the exact rule is kept in
    disp_complt whenever the two lists only summarise it."""
    value = (opening_hours or "").strip()
    if not value:
        return UNKNOWN, UNKNOWN, ""
    if value == "24/7":
        return "7j/7", "24h/24", ""
    rules = _rules(value)
    if rules is None:
        return UNKNOWN, UNKNOWN, value
    days, spans = rules
    weekdays = [day for day in WEEK if day in days]
    listed = ["7j/7"] if len(weekdays) == 7 else [DAYS[day] for day in weekdays]
    if "PH" in days:
        listed.append("jours fériés")
    return "|".join(listed), _hours(spans), value


def _coordinate(value):
    return format(round(value, 7), ".7f").rstrip("0").rstrip(".")


def row(point, event_name):
    """One defibrillator point (dict with id, lat, lon, tags) as a schema-dae row (dict of
    str by column, '' where nothing is known)."""
    tags = point["tags"]
    values = dict.fromkeys(FIELDS, "")
    disp_j, disp_h, disp_complt = availability(tags.get("opening_hours"))
    phones = [phone(item) for item in (tags.get("phone") or tags.get("contact:phone") or "").split(";")]
    phones = [number for number in phones if number]
    values.update({
        "nom": (tags.get("name") or f"DAE {event_name} n°{point['id']}")[:255],
        "lat_coor1": _coordinate(point["lat"]), "long_coor1": _coordinate(point["lon"]),
        "adr_num": tags.get("addr:housenumber", ""), "adr_voie": tags.get("addr:street", ""),
        "com_nom": tags.get("addr:city", ""),
        "com_cp": tags.get("addr:postcode", "") if POSTCODE.fullmatch(tags.get("addr:postcode", "")) else "",
        "com_insee": tags.get("ref:INSEE", "") if INSEE.fullmatch(tags.get("ref:INSEE", "")) else "",
        "acc": INDOOR.get(tags.get("indoor"), ""), "acc_lib": FREE_ACCESS.get(tags.get("access"), ""),
        "acc_etg": tags.get("level", ""), "acc_complt": tags.get("defibrillator:location", ""),
        "disp_j": disp_j, "disp_h": disp_h, "disp_complt": disp_complt,
        "tel1": phones[0] if phones else "", "tel2": phones[1] if len(phones) > 1 else "",
        "expt_rais": tags.get("operator", ""),
    })
    return values
