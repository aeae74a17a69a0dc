"""A WSGI adapter around Chalice's LocalGateway, so schemathesis can call app.py in-process."""
from __future__ import annotations

import base64
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterable

from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC_PATH = "/__spec/openapi.yaml"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def wsgi_app(chalice_app: Any) -> Callable:
    """Serve docs/openapi.yaml at SPEC_PATH and every other request through LocalGateway."""
    gateway = LocalGateway(chalice_app, Config.create())

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if raw_path.split("?")[0] == SPEC_PATH:
            start_response("200 OK", [("Content-Type", "application/yaml")])
            return [SPEC.read_bytes()]
        if "?" not in raw_path and environ.get("QUERY_STRING"):
            raw_path += "?" + environ["QUERY_STRING"]
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            res = gateway.handle_request(environ["REQUEST_METHOD"], raw_path, headers, body)
            status, out_headers, payload = res["statusCode"], res.get("headers") or {}, res.get("body") or b""
            if res.get("isBase64Encoded"):
                payload = base64.b64decode(payload)
        except LocalGatewayException as exc:  # what API Gateway answers for unknown routes
            status, out_headers, payload = exc.CODE, exc.headers, exc.body or b""
        data = payload.encode() if isinstance(payload, str) else payload
        start_response(f"{status} {_reason(status)}", [(k, str(v)) for k, v in out_headers.items()])
        return [data]

    return application
