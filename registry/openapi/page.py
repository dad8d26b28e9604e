"""The API reference as one server-rendered HTML page, made from the OpenAPI document.

Nothing on it is fetched from elsewhere: no JavaScript, no fonts, no CDN; its own
Content-Security-Policy forbids loading anything. Every operation shows its method and
path, role, parameters, request body and responses; then every problem type and every
OCI error code (the error body under `/v2`).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

METHOD_ORDER = ("get", "head", "put", "post", "patch", "delete")
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem 1.5rem;color:#1d1d1f}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin:1.6rem 0 .3rem;font-size:1.05rem} h4{margin:.7rem 0 .2rem;font-size:.9rem;color:#555}
code,pre{font-family:ui-monospace,monospace;font-size:.88em;background:#f4f4f6;border-radius:3px}
code{padding:0 .25em} pre{padding:.6rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
td,th{border:1px solid #e0e0e4;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f8f8fa} .m{display:inline-block;min-width:4.2em;font-weight:700}
.get{color:#0a6}.head{color:#07a}.put{color:#b60}.post{color:#a40}.patch{color:#85a}.delete{color:#c22}
.role{font-size:.9em;color:#333} nav ul{columns:2;padding-left:1.1rem} nav li{margin:.1rem 0}
"""


def _inline(text: str) -> str:
    """Escape ``text``, then render `code` and **strong** (the only markup used)."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{_inline(p)}</p>" for p in text.split("\n\n") if p.strip())


def _type(schema: dict[str, Any] | None) -> str:
    """A short name for a schema: its component name, type, or alternatives."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items'))}"
    text = html.escape(" | ".join(kind) if isinstance(kind, list) else str(kind))
    if "enum" in schema:
        text += " (" + ", ".join(html.escape(str(v)) for v in schema["enum"]) + ")"
    if "pattern" in schema:
        text += f" <code>{html.escape(schema['pattern'])}</code>"
    return text


def _content(content: dict[str, Any] | None) -> str:
    if not content:
        return "no body"
    return "<br>".join(
        f"<code>{html.escape(media)}</code>: {_type(item.get('schema'))}"
        for media, item in content.items()
    )


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    anchor = html.escape(op.get("operationId", f"{method}-{path}"))
    parts = [
        f'<h3 id="{anchor}"><span class="m {method}">{method.upper()}</span>'
        f"<code>{html.escape(path)}</code> {_inline(op.get('summary', ''))}</h3>",
        _paragraphs(op.get("description", "")),
    ]
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td><td>{_type(p.get('schema'))}</td>"
            f"<td>{_inline(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th>"
            f"<th>type</th><th>meaning</th></tr>{rows}</table>"
        )
    request_body = op.get("requestBody")
    if request_body:
        parts.append(
            f"<h4>Request body</h4><p>{_inline(request_body.get('description', ''))}</p>"
            f"<p>{_content(request_body.get('content'))}</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(code)}</td><td>{_inline(answer.get('description', ''))}</td>"
        f"<td>{_content(answer.get('content'))}</td></tr>"
        for code, answer in op.get("responses", {}).items()
    )
    parts.append(
        "<h4>Responses</h4><table><tr><th>status</th><th>meaning</th><th>body</th></tr>"
        f"{rows}</table>"
    )
    return "".join(parts)


def render(document: dict[str, Any], openapi_json_url: str) -> str:
    """The HTML reference for ``document``; ``openapi_json_url`` is where it is served."""
    info = document.get("info", {})
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHOD_ORDER:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, item[method]))
    toc = "".join(
        f'<li><a href="#tag-{html.escape(tag)}">{html.escape(tag)}</a>: '
        + ", ".join(
            f'<a href="#{html.escape(op.get("operationId", ""))}">{m.upper()} {html.escape(p)}</a>'
            for m, p, op in ops
        )
        + "</li>"
        for tag, ops in by_tag.items()
    )
    sections = "".join(
        f'<h2 id="tag-{html.escape(tag)}">{html.escape(tag)}</h2>'
        + "".join(_operation(m, p, op) for m, p, op in ops)
        for tag, ops in by_tag.items()
    )
    schemas = document.get("components", {}).get("schemas", {})
    problems = schemas.get("Problem", {}).get("x-reliquary-problem-types", [])
    oci_codes = schemas.get("OciErrors", {}).get("x-reliquary-oci-codes", [])
    oci_rows = "".join(
        f"<tr><td><code>{html.escape(c['code'])}</code></td><td>{c['status']}</td></tr>"
        for c in oci_codes
    )
    problem_rows = "".join(
        f"<tr><td><code>{html.escape(p['type'])}</code></td><td>{p['status']}</td>"
        f"<td>{html.escape(p['title'])}</td></tr>"
        for p in problems
    )
    schema_blocks = "".join(
        f'<details id="schema-{html.escape(name)}"><summary><code>{html.escape(name)}</code>'
        f"</summary><pre>{html.escape(json.dumps(schema, indent=2))}</pre></details>"
        for name, schema in sorted(schemas.items())
    )
    url = html.escape(openapi_json_url)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(info.get('title', 'API'))} API reference</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(info.get('title', 'API'))} API reference</h1>"
        f"<p>Version {html.escape(str(info.get('version', '')))} · OpenAPI "
        f'{html.escape(document.get("openapi", ""))} document: <a href="{url}">{url}</a></p>'
        f"{_paragraphs(info.get('description', ''))}"
        f"<nav><h2>Operations</h2><ul>{toc}"
        '<li><a href="#problems">problem types</a>, <a href="#oci-errors">OCI error codes</a>, '
        '<a href="#schemas">schemas</a></li>'
        f"</ul></nav>{sections}"
        '<h2 id="problems">Problem types</h2><p>Every error answer outside <code>/v2</code> is '
        "<code>application/problem+json</code> with one of these <code>type</code>s.</p>"
        f"<table><tr><th>type</th><th>status</th><th>title</th></tr>{problem_rows}</table>"
        '<h2 id="oci-errors">OCI error codes</h2><p>Every error answer under <code>/v2</code> '
        'is the OCI error body <code>{"errors": [{"code", "message", "detail"}]}</code> '
        "with one of these <code>code</code>s.</p>"
        f"<table><tr><th>code</th><th>status</th></tr>{oci_rows}</table>"
        f'<h2 id="schemas">Schemas</h2>{schema_blocks}</body></html>'
    )
