"""Flask application factory: admin, public pages and the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Flask

from cop_mail.settings import Settings


def create_app(settings: Settings | None = None, **flask_config: Any) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_path), instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_is_https,
        SESSION_COOKIE_NAME="cop_mail_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        # Coordinators keep a composer open for a long time; the token is bound to the session instead.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=60 * 1024 * 1024,
        COP_MAIL=settings,
    )
    app.config.update(flask_config)
    from cop_mail.web import extensions

    extensions.register(app, settings)
    register_blueprints(app)
    from cop_mail.web import errors

    errors.register(app)
    return app


def register_blueprints(app: Flask) -> None:
    from cop_mail.web import (
        admin,
        api,
        archive,
        auth,
        inbound_webhook,
        intro_public,
        members_public,
        public,
        story_public,
        tracking,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(inbound_webhook.bp)
    app.register_blueprint(members_public.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(story_public.bp)
    app.register_blueprint(intro_public.bp)
    app.register_blueprint(tracking.bp)
