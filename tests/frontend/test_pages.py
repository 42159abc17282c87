"""The HTML pages: upload page wiring, the format page, headers that keep content inert."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from api.pages import EXAMPLE_RECORD
from tests.helpers.repo import nslkdd_dir
from utils.schema import FEATURE_NAMES

STATIC_JS = Path(__file__).resolve().parents[2] / "api" / "static" / "js"


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    return collector


def test_upload_page_has_a_labelled_input_and_a_keyboard_drop_zone(client):
    page = parse(client.get("/").get_data(as_text=True))
    tags = {attrs.get("id"): (tag, attrs) for tag, attrs in page.tags if attrs.get("id")}
    labels = [attrs for tag, attrs in page.tags if tag == "label"]
    assert any(label.get("for") == "file-input" for label in labels)
    assert tags["file-input"][1]["type"] == "file"
    drop_zone = tags["drop-zone"][1]
    assert drop_zone["tabindex"] == "0"
    assert drop_zone["role"] == "button"
    assert "Analyze Network Traffic" in "".join(page.text)


def test_upload_page_tells_the_script_the_size_limit(app, client):
    app.config["MAX_UPLOAD_MB"] = 200.0
    html = client.get("/").get_data(as_text=True)
    assert 'data-max-upload-mb="200"' in html
    assert 'href="/format"' in html


def test_every_setting_the_page_hands_its_scripts_is_read_by_them(client):
    """A data-* attribute on <body> that no script reads is a setting that silently does
    nothing (as an unread table limit once did)."""
    page = parse(client.get("/").get_data(as_text=True))
    body = next(attrs for tag, attrs in page.tags if tag == "body")
    scripts = "".join(path.read_text() for path in STATIC_JS.glob("*.js"))
    names = [name.removeprefix("data-") for name in body if name.startswith("data-")]
    assert names
    for name in names:
        camel = re.sub(r"-([a-z])", lambda match: match.group(1).upper(), name)
        assert f"dataset.{camel}" in scripts, f"data-{name} is never read"


def test_upload_page_has_no_inline_script_or_style(client):
    page = parse(client.get("/").get_data(as_text=True))
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts and all(attrs.get("src", "").startswith("/static/") for attrs in scripts)
    assert not any("style" in attrs for _, attrs in page.tags)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_pages_send_a_strict_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy
    assert client.get("/").headers["X-Content-Type-Options"] == "nosniff"


def test_scripts_never_write_html_strings_into_the_page():
    html_sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write")
    sources = {path.name: path.read_text() for path in STATIC_JS.glob("*.js")}
    assert sources
    for name, source in sources.items():
        assert not html_sinks.search(source), name


def test_format_page_lists_the_41_columns_in_order(client):
    html = client.get("/format").get_data(as_text=True)
    positions = [html.index(f"<code>{name}</code></td>") for name in FEATURE_NAMES]
    assert positions == sorted(positions)
    assert len(FEATURE_NAMES) == 41


def test_format_page_example_line_has_41_values_and_the_optional_columns(client):
    html = client.get("/format").get_data(as_text=True)
    line = re.search(r'id="example-line"><code>([^<]+)</code>', html).group(1)
    labelled = re.search(r'id="example-labelled-line"><code>([^<]+)</code>', html).group(1)
    assert len(line.split(",")) == 41
    assert labelled.startswith(line + ",")
    assert len(labelled.split(",")) == 43
    assert "conn.log" in html
    assert "label" in html and "difficulty" in html


def test_example_record_types_match_the_schema():
    for name, value in zip(FEATURE_NAMES, EXAMPLE_RECORD, strict=True):
        if name in ("protocol_type", "service", "flag"):
            assert not value.replace(".", "").isdigit(), name
        else:
            float(value)


def test_example_line_is_not_taken_from_the_data_set():
    files = list(nslkdd_dir().glob("KDD*.txt"))
    if not files:
        pytest.skip("NSL-KDD files not present")
    example = ",".join(EXAMPLE_RECORD) + ","
    for path in files:
        with path.open() as handle:
            assert not any(line.startswith(example) for line in handle), path.name


def test_unknown_page_is_a_friendly_html_404(client):
    response = client.get("/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "Back to the upload page" in response.get_data(as_text=True)


def test_frontend_health_does_not_need_the_api(client, mocked_api):
    assert client.get("/health").get_json()["status"] == "ok"
    assert len(mocked_api.calls) == 0
