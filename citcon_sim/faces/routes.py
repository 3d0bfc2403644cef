"""Route tables: one list of routes both registers the aiohttp handlers and describes them
in the OpenAPI document (``web.openapi``), so no route is written down twice.

A schema is a JSON Schema dict, or a type (a msgspec Struct, a union of them, an
``Annotated`` value): types become ``components.schemas`` through
``msgspec.json.schema_components`` (:class:`Schemas`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

Schema = dict[str, Any]
SchemaLike = Any  # a JSON Schema dict, or a type msgspec can describe
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Security = tuple[Mapping[str, list[str]], ...]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TEXT = "text/plain"
HTML = "text/html"
REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")
_WORDS = re.compile(r"^\w+(\|\w+)*$")


class OneOf(msgspec.Struct, frozen=True):
    """One of several models: for Structs msgspec cannot put in a union untagged."""

    choices: tuple[SchemaLike, ...]


class Reply(msgspec.Struct, frozen=True):
    """One documented answer: a description, and a schema per media type."""

    description: str
    content: Mapping[str, SchemaLike] = msgspec.field(default_factory=dict)
    headers: Mapping[str, Schema] = msgspec.field(default_factory=dict)


class Route(msgspec.Struct, frozen=True):
    """One method on one path: what aiohttp registers and what the document says.

    ``path`` is the aiohttp path relative to the table's (sub-)application, patterns and
    all (``/{id}/{action:pay|fail}``); a path parameter whose pattern lists words is
    documented with those words as its enum. ``responses`` maps a status to a
    :class:`Reply` or to the name of a shared ``components.responses`` entry; ``errors``
    adds shared error answers by status (the table's when None). ``query`` is a form model
    (or an object schema) whose fields are sent as query parameters; ``body`` the request
    body's schema, sent as each of ``body_types`` (``body_variants``: more media types,
    each with its own schema).
    """

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    responses: Mapping[int, Reply | str]
    description: str = ""
    errors: tuple[int, ...] | None = None  # None: the table's
    query: SchemaLike | None = None
    parameters: tuple[Schema, ...] = ()  # more parameters (query or header), as written
    path_docs: Mapping[str, str] = msgspec.field(default_factory=dict)  # path parameter -> text
    body: SchemaLike | None = None
    body_types: tuple[str, ...] = (FORM,)
    body_variants: Mapping[str, SchemaLike] = msgspec.field(default_factory=dict)  # other schemas
    body_required: bool = True
    body_example: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = ()
    security: Security | None = None


class Schemas:
    """The JSON Schemas of every type the tables name, as ``components.schemas``."""

    def __init__(self, types: Iterable[Any]) -> None:
        self._types: list[Any] = []
        for tp in types:
            if not any(tp is known or tp == known for known in self._types):
                self._types.append(tp)
        refs, self.components = msgspec.json.schema_components(self._types, ref_template=REF)
        self._refs = list(refs)
        for tp in self._types:  # object-level rules a Struct's fields cannot state
            extra = getattr(tp, "schema_extra", None)
            if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and extra:
                self.components[tp.__name__].update(extra)

    def of(self, schema: SchemaLike) -> Schema:
        if isinstance(schema, dict):
            return schema
        if isinstance(schema, OneOf):
            return {"oneOf": [self.of(choice) for choice in schema.choices]}
        for tp, ref in zip(self._types, self._refs, strict=True):
            if tp is schema or tp == schema:
                return ref
        raise KeyError(f"{schema!r} is not in any route table")

    def resolved(self, schema: SchemaLike) -> Schema:
        """The schema itself, not a ``$ref`` to it (a query model's fields)."""
        found = self.of(schema)
        while "$ref" in found:
            found = self.components[found["$ref"].rsplit("/", 1)[1]]
        return found


def read_files(folder: Path) -> dict[str, bytes]:
    """Every file directly in ``folder``, by name. The package's assets are read when the
    server starts, never per request: a `pip install` over a running server removes them."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _static_file(name: str, content: bytes) -> Handler:
    """A handler answering one asset from memory, with an ETag for revalidation."""
    # Python's own table, not the machine's /etc/mime.types: the same type everywhere.
    ctype, encoding = mimetypes.MimeTypes().guess_type(name)
    etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'

    async def asset(request: web.Request) -> web.Response:
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        resp = web.Response(body=content, content_type=ctype or "application/octet-stream",
                            headers={"ETag": etag})
        if encoding is not None:
            resp.headers["Content-Encoding"] = encoding
        return resp
    return asset


class RouteTable:
    """The routes of one area, registered on one (sub-)application mounted at ``prefix``.

    ``tags``, ``errors`` and ``security`` apply to every route that sets none of its own;
    ``replies`` (status -> answer, such as the 401 of a missing credential) go with the
    table's security, to every route that has no security of its own. ``static`` maps a
    URL prefix to files (name -> content) served from memory (not documented: the pages'
    assets, read when the server starts: see :func:`read_files`).
    ``head``: every GET route answers HEAD too (aiohttp's ``add_get``).
    """

    def __init__(self, routes: Iterable[Route], *, prefix: str = "",
                 tags: tuple[str, ...] = (), errors: tuple[int, ...] = (),
                 security: Security | None = None,
                 replies: Mapping[int, Reply | str | Schema] | None = None,
                 static: Mapping[str, Mapping[str, bytes]] | None = None,
                 head: bool = True) -> None:
        self.routes = tuple(routes)
        self.head = head
        self.prefix = prefix.rstrip("/")
        self.tags, self.errors, self.security = tags, errors, security
        self.replies = dict(replies or {})
        self.static = dict(static or {})

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def register(self, app: web.Application) -> None:
        """Add every route (and the static directories) to ``app``'s router."""
        for route in self.routes:
            if route.method == "GET" and self.head:
                app.router.add_get(route.path, route.handler)
            else:
                app.router.add_route(route.method, route.path, route.handler)
        for url, files in self.static.items():
            for name, content in files.items():
                app.router.add_get(url + name, _static_file(name, content))

    def document_path(self, route: Route) -> str:
        """The route's path as the document names it: ``{action}``, no pattern."""
        return self.prefix + _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)

    def types(self) -> Iterator[Any]:
        """Every schema type the table names (for :class:`Schemas`)."""
        for route in self.routes:
            candidates = [route.query, route.body, *route.body_variants.values()]
            for reply in (*route.responses.values(), *self.replies.values()):
                if isinstance(reply, Reply):
                    candidates += reply.content.values()
            for candidate in candidates:
                if isinstance(candidate, OneOf):
                    yield from candidate.choices
                elif candidate is not None and not isinstance(candidate, dict):
                    yield candidate

    def openapi_paths(self, schemas: Schemas) -> dict[str, dict[str, Schema]]:
        paths: dict[str, dict[str, Schema]] = {}
        for route in self.routes:
            paths.setdefault(self.document_path(route), {})[route.method.lower()] = \
                self._operation(route, schemas)
        return paths

    def _operation(self, route: Route, schemas: Schemas) -> Schema:
        op: Schema = {"tags": list(route.tags or self.tags), "operationId": route.operation_id,
                      "summary": route.summary}
        if route.description:
            op["description"] = route.description
        security = route.security if route.security is not None else self.security
        if security is not None:
            op["security"] = [dict(s) for s in security]
        parameters = [*_path_parameters(route), *self._query(route, schemas),
                      *route.parameters]
        if parameters:
            op["parameters"] = parameters
        if route.body is not None:
            body = schemas.of(route.body)
            content: Schema = {}
            for media in route.body_types:
                content[media] = {"schema": body}
                if route.body_example is not None and media == FORM:
                    content[media]["example"] = dict(route.body_example)
            for media, variant in route.body_variants.items():
                content[media] = {"schema": schemas.of(variant)}
            op["requestBody"] = {"required": route.body_required, "content": content}
        responses: Schema = {}
        for status, reply in route.responses.items():
            responses[str(status)] = _reply(reply, schemas)
        for status in route.errors if route.errors is not None else self.errors:
            responses.setdefault(str(status), _reply(ERROR_NAMES[status], schemas))
        if route.security is None:  # the table's security: its answers too (a 401)
            for status, answer in self.replies.items():
                responses.setdefault(str(status), _reply(answer, schemas))
        op["responses"] = responses
        return op

    @staticmethod
    def _query(route: Route, schemas: Schemas) -> list[Schema]:
        if route.query is None:
            return []
        model = schemas.resolved(route.query)
        required = set(model.get("required", ()))
        out = []
        for name, prop in model.get("properties", {}).items():
            param: Schema = {"name": name, "in": "query", "required": name in required,
                             "schema": prop}
            if prop.get("description"):
                param["description"] = prop["description"]
            out.append(param)
        return out


# Shared error answers (``components.responses``) by status.
ERROR_NAMES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge",
               500: "ServerError"}


def _reply(reply: Reply | str | Schema, schemas: Schemas) -> Schema:
    if isinstance(reply, str):
        return {"$ref": f"#/components/responses/{reply}"}
    if isinstance(reply, dict):  # a response object, as written
        return reply
    out: Schema = {"description": reply.description}
    if reply.headers:
        out["headers"] = dict(reply.headers)
    if reply.content:
        out["content"] = {media: {"schema": schemas.of(schema)}
                          for media, schema in reply.content.items()}
    return out


def _path_parameters(route: Route) -> list[Schema]:
    out = []
    for match in _PATH_PARAM.finditer(route.path):
        name, pattern = match.groups()
        schema: Schema = {"type": "string", "minLength": 1}
        if pattern is not None and _WORDS.match(pattern):
            schema = {"type": "string", "enum": pattern.split("|")}
        param: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in route.path_docs:
            param["description"] = route.path_docs[name]
        out.append(param)
    return out
