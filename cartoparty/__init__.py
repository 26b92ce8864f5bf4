"""cartoparty: mapping parties whose points end up in OpenStreetMap and open data."""

from flask import Flask, request, session

__version__ = "0.1.0"


def create_app(config=None):
    """Build the app: settings from the environment (then `config`), presets checked,
    extensions and blueprints attached."""
    from . import (
        accounts,
        api,
        errors,
        events,
        exports,
        feedback,
        i18n,
        inputs,
        organise,
        photos,
        presets,
        public,
        restitution,
        review,
        reviewmap,
        submissions,
        walker,
    )
    from . import config as settings
    from .extensions import csrf, db
    from .osm import account as osm_account
    from .osm import changes_page as osm_changes
    from .osm import check as osm_check
    from .osm import matches

    app = Flask(__name__, instance_relative_config=True, static_folder=str(settings.STATIC_DIR))
    app.config.from_mapping(settings.from_environment(app.instance_path))
    app.config.from_mapping(config or {})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        "connect_args": {"options": "-c timezone=UTC"},
    }
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    app.extensions["cartoparty.presets"] = presets.load(app.config.get("PRESET_DIR",
                                                                       presets.PRESET_DIR))
    i18n.register(app)
    app.config["ASSET_VERSION"] = walker.asset_version(app.static_folder)
    db.init_app(app)
    csrf.init_app(app)
    errors.register(app)
    for module in (api, events, submissions, photos, walker, accounts, organise, review,
                   reviewmap, matches, osm_check, osm_changes, osm_account, feedback, restitution,
                   public, exports):
        app.register_blueprint(module.bp)
    walkers_api = {module.bp.name for module in (events, submissions, photos, feedback)}

    app.before_request(inputs.check_request)

    @app.after_request
    def security_headers(response):
        # No other site may frame a page (clickjacking the walker's or the organiser's buttons),
        # nor a browser guess a type other than the one sent. Cross-site requests (the map's
        # tiles) carry only the origin: tile servers ask for it, a join code must not leak.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        return response

    @app.before_request
    def refuse_cross_site_requests():
        # Only what a browser sends by itself (its cookie) can be forged from another site: the
        # walkers' API uses a bearer token, scripts an Authorization header that no other
        # site can make a browser send.
        if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint in walkers_api:
            return
        # With a cookie session the token is asked whatever else the request carries: an
        # Authorization header that does not authenticate must not let a forged form through.
        # Without one, there is nothing to forge: HTTP Basic is checked by the route, and an
        # API call with no one signed in gets its 401 there (pages keep the check, the sign-in
        # form included).
        if "organiser_id" not in session and (request.authorization is not None
                                              or request.path.startswith("/api/")):
            return
        csrf.protect()

    return app
