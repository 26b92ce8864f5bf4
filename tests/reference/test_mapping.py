"""A row's fields as the tags that pre-fill the walker's form, and the tags a walker left back
into the row's own columns: schema-dae (1.0.7 and 1.0.8), schema-arbre (0.2 and 0.3) and
the towns' own names for the same fields."""

import pytest

from cartoparty.reference.mapping import corrected_fields, row_tags, title


def test_schema_dae_fields_say_indoor_access_level_location_and_hours():
    fields = {"nom": "Mairie", "acc": "int\ufffdrieur", "acc_lib": "oui", "acc_etg": "-1",
              "acc_complt": "Hall", "disp_j": "7j/7", "disp_h": "24h/24"}
    assert row_tags("defibrillator", fields) == {
        "emergency": "defibrillator", "indoor": "yes", "access": "yes", "level": "-1",
        "defibrillator:location": "Hall", "opening_hours": "24/7"}
    # 1.0.8's dispo_horaires is already in opening_hours syntax; Géo'DAE exports prefix c_
    assert row_tags("defibrillator", {"c_acc": "Extérieur", "dispo_horaires": "Mo-Fr 08:00-18:00"}) == {
        "emergency": "defibrillator", "indoor": "no", "opening_hours": "Mo-Fr 08:00-18:00"}
    # a level the preset's question refuses, and hours the two lists cannot say, are left out
    assert row_tags("defibrillator", {"acc_etg": "99", "disp_j": "lundi", "disp_h": "heures ouvrables"}) == {
        "emergency": "defibrillator"}


@pytest.mark.parametrize(("fields", "tags"), [
    ({"genre": "Acer", "espece": "campestre", "hauteur": "1200", "circonference": "157"},
     {"genus": "Acer", "species": "Acer campestre", "height": "12", "circumference": "1.57"}),
    ({"genre_arbre": "tilia", "espece_arbre": "Tilia cordata", "diametre": "50"},
     {"genus": "Tilia", "species": "Tilia cordata", "circumference": "1.57"}),
    ({"GENRE_BOTA": "Alnus", "ESPECE": "cordata", "hauteur": "0"},
     {"genus": "Alnus", "species": "Alnus cordata"}),
])
def test_schema_arbre_fields_say_genus_species_height_and_circumference(fields, tags):
    assert row_tags("tree", fields) == {"natural": "tree", **tags}


def test_a_preset_with_no_mapping_gets_its_own_tags_only():
    assert row_tags("bench", {"acc": "Intérieur", "genre": "Acer"}) == {"amenity": "bench"}
    assert row_tags("no_such_preset", {"genre": "Acer"}) == {}


def test_the_corrections_go_back_into_the_rows_own_columns():
    fields = {"nom": "Mairie", "acc": "Intérieur", "acc_lib": "oui", "acc_etg": "0",
              "disp_j": "7j/7", "disp_h": "24h/24", "disp_compl": ""}
    before = row_tags("defibrillator", fields)
    after = {**before, "access": "customers", "opening_hours": "Mo-Fr 08:00-18:00"}
    assert corrected_fields(fields, before, after) == {
        "acc_lib": "non", "disp_j": "lundi|mardi|mercredi|jeudi|vendredi", "disp_h": "heures ouvrables",
        "disp_compl": "Mo-Fr 08:00-18:00"}
    assert corrected_fields({"dispo_horaires": "24/7"}, {"opening_hours": "24/7"},
                            {"opening_hours": "Mo-Su 08:00-20:00"}) == {"dispo_horaires": "Mo-Su 08:00-20:00"}
    # nothing the walker left unchanged is rewritten, however the file spelt it
    assert corrected_fields({"acc": "int\ufffdrieur"}, {"indoor": "yes"}, {"indoor": "yes"}) == {}


def test_tree_corrections_keep_the_files_units_and_its_epithet():
    fields = {"genre": "Acer", "espece": "campestre", "hauteur": "1200", "diametre": "50"}
    before = row_tags("tree", fields)
    after = {**before, "species": "Acer platanoides", "height": "9.5", "circumference": "2"}
    assert corrected_fields(fields, before, after) == {"espece": "platanoides", "hauteur": "950",
                                                       "diametre": "64"}


def test_a_rows_title_is_its_name_else_its_species_else_its_identifier():
    assert title({"nom_site": "Salle Jean Mermoz"}, "6") == "Salle Jean Mermoz"
    assert title({"genre": "Acer", "espece": "campestre"}, "A1") == "Acer campestre"
    assert title({"nom": " - ", "x": "1"}, "A2") == "A2"
