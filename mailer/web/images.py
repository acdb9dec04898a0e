"""Published pictures (/m/{file}): content-addressed, so each answer may be cached for a year.

Only names of the form `{sha256 prefix}.{jpg,png,gif}` that are stored answer; anything else
under /m/ is the plain 404. The file never changes under its name (it is named by its
content), hence `immutable` and an ETag that is the name itself.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mailer.newsletter.images import CONTENT_TYPES
from mailer.sending import archive
from mailer.web.pages import PageRoute
from mailer.web.site import Site

# Mail programs and web mail load these from other origins: say so (CORP) and allow nothing
# to run if a picture were ever opened as a document.
IMAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
YEAR = "public, max-age=31536000, immutable"


def routes(site: Site) -> list[BaseRoute]:
    """The /m/ route."""

    def load(name: str) -> bytes | None:
        with site.stores.get() as store:
            return archive.image_data(store.conn, name)

    async def picture(request: Request) -> Response:
        name = request.path_params["file"]
        etag = f'"{name}"'
        data = await run_in_threadpool(load, name)
        if data is None:
            response = site.pages.not_found()
            response.headers["Cache-Control"] = "no-store"
            return response
        headers = {"Cache-Control": YEAR, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media_type = CONTENT_TYPES[name.rsplit(".", 1)[1]]
        return Response(data, media_type=media_type, headers=headers)

    return [PageRoute("/m/{file}", {"GET": picture}, headers=IMAGE_HEADERS)]
