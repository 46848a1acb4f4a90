"""The HTML pages (SPEC 14): one blueprint, its views by area in `pages_*` modules.

`pages_jobs` (sign-in, jobs list, job page, actions), `pages_live` (the job page's event
stream), `pages_forms` (new export, new import), `pages_imports` (import history and undo),
`pages_ops` (operators).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from web import page_kit

blueprint = Blueprint("pages", __name__, template_folder="templates", static_folder=None)
page_kit.install(blueprint)


def init_app(app: Flask) -> None:
    """Register the pages at the site's root (the API stays under /api/v1)."""
    from web import pages_forms, pages_imports, pages_jobs, pages_live, pages_ops

    del pages_forms, pages_imports, pages_jobs, pages_live, pages_ops  # for their routes
    from web.session import init_app as session_init

    session_init(app)
    app.register_blueprint(blueprint)
