"""The scorer's API documentation pages, /docs (Swagger UI) and /redoc (ReDoc), offline.

FastAPI's own pages load their JavaScript and CSS from a CDN, so without internet they
are blank. These pages load the files that the ``fastapi-standalone-docs`` package ships
(Swagger UI 5, ReDoc 2, their licences; ReDoc's logo made local) from the replica itself,
under ``/docs/static/``. Every URL starts with the request's root path, so the pages also
work when Serve mounts the app under a route prefix (``/scorer/docs`` loads
``/scorer/openapi.json`` and ``/scorer/docs/static/...``).
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
STATIC_URL = "/docs/static"
# Files of the package's static folder the pages load (their paths under STATIC_URL).
ASSETS = {
    "swagger_js": "swagger/swagger-ui-bundle.js",
    "swagger_css": "swagger/swagger-ui.css",
    "redoc_js": "redoc/redoc.standalone.js",
    "redoc_logo": "redoc/logo-mini.svg",
    "favicon": "fastapi/favicon.png",
}
# No online validator badge (it would send the schema's URL to validator.swagger.io).
SWAGGER_PARAMETERS = {"validatorUrl": None, "displayRequestDuration": True}


def assets_folder() -> Path:
    """The folder holding Swagger UI's and ReDoc's files (all of ``ASSETS``).

    Raises:
        RuntimeError: The package is missing or lacks one of the files.
    """
    try:
        folder = Path(str(files("fastapi_standalone_docs") / "static"))
    except ModuleNotFoundError as error:
        raise RuntimeError(
            "the scorer's /docs needs the fastapi-standalone-docs package: "
            "pip install 'fastapi-standalone-docs>=0.3,<0.4'"
        ) from error
    missing = [name for name in ASSETS.values() if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(
            f"fastapi-standalone-docs lacks {', '.join(missing)} in {folder}: "
            "reinstall it (pip install --force-reinstall 'fastapi-standalone-docs>=0.3,<0.4')"
        )
    return folder


def add_docs_pages(api: FastAPI) -> None:
    """/docs, /redoc and their files on ``api`` (made with ``docs_url=None, redoc_url=None``).

    Without the files the pages answer 503 saying what to install, and the scorer scores
    as usual: documentation never stops a replica.
    """
    try:
        folder = assets_folder()
    except RuntimeError as error:
        logger.warning("No /docs nor /redoc: %s", error)
        _add_unavailable_pages(api, str(error))
        return
    api.mount(STATIC_URL, StaticFiles(directory=folder), name="docs-static")

    def urls(request: Request) -> dict[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return {"openapi": root + (api.openapi_url or "/openapi.json")} | {
            name: f"{root}{STATIC_URL}/{path}" for name, path in ASSETS.items()
        }

    async def swagger(request: Request) -> HTMLResponse:
        url = urls(request)
        return get_swagger_ui_html(
            openapi_url=url["openapi"],
            title=f"{api.title} - Swagger UI",
            swagger_js_url=url["swagger_js"],
            swagger_css_url=url["swagger_css"],
            swagger_favicon_url=url["favicon"],
            oauth2_redirect_url=None,
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    async def redoc(request: Request) -> HTMLResponse:
        url = urls(request)
        return get_redoc_html(
            openapi_url=url["openapi"],
            title=f"{api.title} - ReDoc",
            redoc_js_url=url["redoc_js"],
            redoc_favicon_url=url["favicon"],
            with_google_fonts=False,
        )

    async def redoc_logo(request: Request) -> Any:
        # The package's ReDoc loads its logo from the page's own path + /logo-mini.svg.
        return FileResponse(folder / ASSETS["redoc_logo"], media_type="image/svg+xml")

    api.add_route(DOCS_URL, swagger, include_in_schema=False)
    api.add_route(REDOC_URL, redoc, include_in_schema=False)
    api.add_route(f"{REDOC_URL}/logo-mini.svg", redoc_logo, include_in_schema=False)


def _add_unavailable_pages(api: FastAPI, reason: str) -> None:
    async def unavailable(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"the API documentation is unavailable: {reason}", 503)

    for url in (DOCS_URL, REDOC_URL):
        api.add_route(url, unavailable, include_in_schema=False)
