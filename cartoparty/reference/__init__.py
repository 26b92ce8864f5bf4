"""A town's own dataset (defibrillators, trees…) loaded into an event, to be checked in the
field point by point and handed back corrected (issue 16).

- `read`: a file (schema-dae or schema-arbre CSV, any CSV or GeoJSON) to rows with their
  positions in WGS84, each row's problem named; a file that cannot be read whole is refused.
- `store`: the `reference_row` table filled in one set-based step, with the import's report.
- `page`: the organiser's upload page.
"""
