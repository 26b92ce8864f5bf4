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
        headers,
        i18n,
        inputs,
        organise,
        photos,
        presets,
        privacy,
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
    if app.config["FORWARDED_PROXIES"]:
        # The client's address, the scheme and the host as the proxy saw them (secure cookies,
        # absolute URLs); never the prefix or port headers, which our proxy does not set.
        from werkzeug.middleware.proxy_fix import ProxyFix

        proxies = app.config["FORWARDED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=0, x_prefix=0)

    app.extensions["cartoparty.presets"] = presets.load(app.config.get("PRESET_DIR",
                                                                       presets.PRESET_DIR))
    i18n.register(app)
    app.config["ASSET_VERSION"] = walker.asset_version(app.static_folder)
    db.init_app(app)
    csrf.init_app(app)
    errors.register(app)
    from .reference import checks as reference_checks
    from .reference import export as reference_export
    from .reference import page as reference_page

    for module in (api, events, submissions, photos, walker, accounts, organise, review,
                   reviewmap, matches, osm_check, osm_changes, osm_account, feedback, restitution,
                   public, exports, privacy, reference_page, reference_export, reference_checks):
        app.register_blueprint(module.bp)
    walkers_api = {module.bp.name for module in (events, submissions, photos, feedback, privacy,
                                                 reference_checks)}

    app.before_request(inputs.check_request)

    @app.after_request
    def security_headers(response):
        # CSP, nosniff, no framing, Referrer-Policy, HSTS and Cache-Control (cartoparty/headers.py).
        return headers.add(response)

    @app.before_request
    def refuse_cross_site_requests():
        # Only what a browser sends by itself (its cookie) can be forged from another site. The
        # walkers' API takes a bearer token and no cookie (the route checks it), so it has
        # nothing to forge.
        from .auth import current_organiser
        from .errors import Unauthorised

        if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint in walkers_api:
            return
        if request.routing_exception is not None:  # no such route or method: its 404 or 405
            return
        # Without a cookie session, the organisers' API is for scripts: skipped only when their
        # HTTP Basic credentials do sign an organiser in (no page asks a browser for them, so
        # none keeps them to send by itself); any other Authorization header is a 401 here,
        # before the route does anything.
        if "organiser_id" not in session and request.path.startswith("/api/"):
            if current_organiser() is None:
                raise Unauthorised("organiser_sign_in", field="Authorization")
            return
        # A cookie session always needs its token, whatever Authorization header comes along;
        # pages too, the sign-in form included.
        csrf.protect()

    return app
