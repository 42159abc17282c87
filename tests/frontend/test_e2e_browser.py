"""End to end in headless Chromium: the real ML API and the real frontend under gunicorn on
127.0.0.1, driven by Playwright. Screenshots go to tests/artifacts/ for a human to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from utils.local_server import ServerProcess, ServerStartError, free_port, gunicorn_command

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
TABLE_LIMIT = 5000
START_TIMEOUT = 180.0  # the API loads its model before it answers
RESULT_TIMEOUT_MS = 180_000
XSS_SERVICE = "<script>alert(1)</script>"
XSS_FILENAME = "<img src=x onerror=alert(2)>.txt"
ANALYST_PASSWORD = "e2e-analyst-password-0123"
API_ANALYST_TOKEN = "e2e-api-analyst-token-0123"
AXE = Axe()  # axe-core 4.x, shipped inside the axe-playwright-python package


def assert_accessible(page, state: str) -> None:
    """axe-core, run in the page as it stands, finds no violation of any impact, with its
    experimental rules on too (label-content-name-mismatch, which caught the drop zone once,
    is one of them)."""
    page.evaluate(AXE.axe_script)
    experimental = page.evaluate("axe.getRules(['experimental']).map((rule) => rule.ruleId)")
    options = {"resultTypes": ["violations"],
               "rules": {rule: {"enabled": True} for rule in experimental}}
    results = AXE.run(page, options=options)
    assert results.violations_count == 0, f"{state}: {results.generate_report()}"


def unavailable(reason: str) -> None:
    """In CI a missing prerequisite is a failure; on a workstation the tests are skipped."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def server(name: str, args: list[str], env: dict[str, str], log_dir: Path
           ) -> Iterator[ServerProcess]:
    """A gunicorn child that answers /health; its log is shown if it fails to start."""
    process = ServerProcess(args, log_path=log_dir / f"{name}.log", env=env,
                            start_timeout=START_TIMEOUT)
    try:
        process.start()
    except ServerStartError as exc:
        pytest.fail(f"{name}: {exc}")
    try:
        yield process
    finally:
        process.stop()


def frontend_args(port: int) -> list[str]:
    return gunicorn_command("api.index:app", port, config=None,
                            extra=("--workers", "1", "--threads", "4", "--timeout", "300"))


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    """Our own temporary folder: pytest's shared basetemp is pruned by concurrent sessions."""
    with tempfile.TemporaryDirectory(prefix="anomalyze-e2e-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def api_url(chromium, work_dir) -> Iterator[str]:
    if not (ROOT / "api_server.py").exists():
        unavailable("api_server.py (the ML API) does not exist yet")
    if not any((ROOT / "models").glob("*.joblib")):
        unavailable("no model in models/: train one first")
    data_dir = work_dir / "api-data"
    data_dir.mkdir()
    model_dir = work_dir / "models"  # a snapshot, so a retrain elsewhere cannot change answers
    shutil.copytree(ROOT / "models", model_dir)
    port = free_port()
    env = {**os.environ, "ANOMALYZE_DATA_DIR": str(data_dir),
           "ANOMALYZE_MODEL_DIR": str(model_dir), "ANOMALYZE_ANALYST_TOKEN": API_ANALYST_TOKEN}
    url = f"http://127.0.0.1:{port}"
    with server("ml-api", gunicorn_command("api_server:app", port), env, work_dir):
        yield url


@pytest.fixture(scope="module")
def frontend_url(api_url, work_dir) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "ANOMALYZE_API_URL": api_url,
           "ANOMALYZE_TABLE_LIMIT": str(TABLE_LIMIT),
           "ANOMALYZE_ANALYST_PASSWORD": ANALYST_PASSWORD,
           "ANOMALYZE_API_ANALYST_TOKEN": API_ANALYST_TOKEN}
    url = f"http://127.0.0.1:{port}"
    with server("frontend", frontend_args(port), env, work_dir):
        yield url


@pytest.fixture(scope="module")
def offline_frontend_url(chromium, work_dir) -> Iterator[str]:
    """A frontend whose API never answers, with a short wake budget and a 1 MB limit."""
    port = free_port()
    env = {**os.environ, "ANOMALYZE_API_URL": f"http://127.0.0.1:{free_port()}",
           "ANOMALYZE_API_WAKE_TIMEOUT": "8", "ANOMALYZE_API_BACKOFF_INITIAL": "0.5",
           "ANOMALYZE_MAX_UPLOAD_MB": "1"}
    url = f"http://127.0.0.1:{port}"
    with server("offline-frontend", frontend_args(port), env, work_dir):
        yield url


@pytest.fixture(scope="module")
def kdd_test(kdd_test_path) -> Path:
    """KDDTest+.txt via the shared fixture (ANOMALYZE_NSLKDD_DIR, default data/)."""
    return kdd_test_path


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1366, "height": 900},
                                   accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def analyse(page, frontend_url: str, path: Path | None = None, *, name: str | None = None,
            data: bytes | None = None) -> None:
    page.goto(frontend_url)
    if data is None:
        page.set_input_files("#file-input", str(path))
    else:
        page.set_input_files("#file-input", files=[{"name": name, "mimeType": "text/plain",
                                                    "buffer": data}])
    page.get_by_role("button", name="Analyze Network Traffic").click()
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])",
                           timeout=RESULT_TIMEOUT_MS)


@pytest.fixture(scope="module")
def analysed(chromium, frontend_url, kdd_test):
    """One page holding the KDDTest+ results, shared by the dashboard tests."""
    context = chromium.new_context(viewport={"width": 1366, "height": 900},
                                   accept_downloads=True)
    page = context.new_page()
    analyse(page, frontend_url, kdd_test)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    page.screenshot(path=ARTIFACTS / "e2e-02-results.png", full_page=True)
    yield page
    context.close()


@pytest.fixture(scope="module")
def api_json(analysed, api_url, kdd_test) -> dict:
    """The API's own answer for the same file (asked after the page, so the page was first)."""
    with kdd_test.open("rb") as handle:
        response = requests.post(f"{api_url}/api/predict", params={"limit": TABLE_LIMIT},
                                 files={"file": (kdd_test.name, handle)}, timeout=300)
    response.raise_for_status()
    return response.json()


def card_value(page, metric: str) -> str:
    return page.locator(f'[data-metric="{metric}"] .card-value').get_attribute("data-value")


def card_text(page, metric: str) -> str:
    return page.locator(f'[data-metric="{metric}"] .card-value').inner_text()


def column_texts(page, header: str) -> list[str]:
    return page.evaluate(
        """(header) => {
            const heads = [...document.querySelectorAll('#anomaly-table thead th')];
            const i = heads.findIndex((th) => th.textContent.trim().startsWith(header));
            return [...document.querySelectorAll('#anomaly-table tbody tr')]
                .map((tr) => tr.cells[i].textContent.trim());
        }""", header)


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


def reset_table(page) -> None:
    page.select_option("#severity-filter", "all")
    page.select_option("#page-size", "50")
    score = page.locator("#anomaly-table thead th", has_text="Score")
    for _ in range(2):
        if score.get_attribute("aria-sort") == "descending":
            break
        score.get_by_role("button").click()
    first = page.get_by_role("button", name="First")
    if first.is_enabled():
        first.click()


# -- the KDDTest+ dashboard ---------------------------------------------------------------------


def test_summary_cards_equal_the_apis_own_numbers(analysed, api_json):
    summary = api_json["summary"]
    total, anomalies = summary["total_samples"], summary["anomalies_detected"]
    assert total == 22544
    assert card_value(analysed, "total_samples") == str(total)
    assert card_text(analysed, "total_samples") == f"{total:,}"
    assert card_value(analysed, "anomalies_detected") == str(anomalies)
    assert card_text(analysed, "anomalies_detected") == f"{anomalies:,}"
    assert card_value(analysed, "detection_rate") == f"{anomalies / total * 100:.2f}"
    assert card_text(analysed, "model_version") == summary["model_version"]
    values = analysed.locator("#severity-chart text.chart-value").all_text_contents()
    counts = [summary["severity_counts"][s] for s in ("Normal", "Low", "Medium", "High",
                                                      "Critical")]
    assert [as_int(v.split(" (")[0]) for v in values] == counts


def test_label_metrics_equal_the_apis_own_numbers(analysed, api_json):
    metrics = api_json["metrics"]
    assert analysed.locator("#metrics").is_visible()
    for key in ("accuracy", "precision", "recall", "f1_score"):
        assert float(card_value(analysed, key)) == pytest.approx(metrics[key])
    for cell, value in metrics["confusion_matrix"].items():
        assert analysed.locator(f'#confusion-matrix [data-cell="{cell}"]').inner_text() == (
            f"{value:,}")
    categories = analysed.locator("#category-chart text.chart-label").all_text_contents()
    assert set(categories) == set(metrics["detection_rate_by_category"])


def test_charts_are_inline_svg_with_the_threshold_marked(analysed, api_json):
    histogram = api_json["score_histogram"]
    assert analysed.locator("#severity-chart svg rect.bar").count() == 5
    assert analysed.locator("#score-chart svg rect.bar").count() == len(histogram["counts"])
    assert analysed.locator("#score-chart svg line.threshold-line").count() == 1
    label = analysed.locator("#score-chart svg text.threshold-label").text_content()
    assert label == f"threshold = {histogram['threshold']:.3f}"
    analysed.locator(".charts").screenshot(path=ARTIFACTS / "e2e-03-charts.png")


def test_table_shows_the_first_page_in_score_order(analysed, api_json):
    reset_table(analysed)
    anomalies = api_json["anomalies"]
    indices = [as_int(t) for t in column_texts(analysed, "Index")]
    assert indices == [a["index"] for a in anomalies[:50]]
    assert analysed.locator("#anomaly-table tbody .badge").first.inner_text() in {
        "Low", "Medium", "High", "Critical"}
    assert f"of {len(anomalies):,}" in analysed.locator("#page-info").inner_text()


def test_header_buttons_sort_and_set_aria_sort(analysed, api_json):
    reset_table(analysed)
    header = analysed.locator("#anomaly-table thead th", has_text="Src bytes")
    header.get_by_role("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = [as_int(t) for t in column_texts(analysed, "Src bytes")]
    assert ascending == sorted(ascending)
    assert ascending[0] == min(a["src_bytes"] for a in api_json["anomalies"])
    header.get_by_role("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    descending = [as_int(t) for t in column_texts(analysed, "Src bytes")]
    assert descending[0] == max(a["src_bytes"] for a in api_json["anomalies"])
    assert descending == sorted(descending, reverse=True)
    analysed.locator("#anomalies").screenshot(path=ARTIFACTS / "e2e-04-table-sorted.png")


def test_severity_filter_keeps_only_that_severity(analysed, api_json):
    reset_table(analysed)
    severity, count = Counter(a["severity"] for a in api_json["anomalies"]).most_common()[-1]
    analysed.select_option("#severity-filter", severity)
    badges = analysed.locator("#anomaly-table tbody .badge").all_text_contents()
    assert badges and set(badges) == {severity}
    assert analysed.locator("#page-info").inner_text().endswith(f"of {count:,}")
    reset_table(analysed)


def test_pager_moves_between_pages_and_renders_only_one_page(analysed, api_json):
    reset_table(analysed)
    anomalies = api_json["anomalies"]
    pages = -(-len(anomalies) // 50)
    assert analysed.locator("#anomaly-table tbody tr").count() == min(50, len(anomalies))
    assert analysed.get_by_role("button", name="Previous").is_disabled()
    analysed.get_by_role("button", name="Next").click()
    assert analysed.locator("#page-info").inner_text().startswith(f"Page 2 of {pages}")
    assert as_int(column_texts(analysed, "Index")[0]) == anomalies[50]["index"]
    analysed.get_by_role("button", name="Last").click()
    assert analysed.locator("#page-info").inner_text().startswith(f"Page {pages} of {pages}")
    assert analysed.get_by_role("button", name="Next").is_disabled()
    last_rows = len(anomalies) - 50 * (pages - 1)
    assert analysed.locator("#anomaly-table tbody tr").count() == last_rows
    reset_table(analysed)


def test_csv_download_has_a_row_for_every_record(analysed, work_dir):
    with analysed.expect_download(timeout=RESULT_TIMEOUT_MS) as info:
        analysed.get_by_role("button", name="Download results (CSV)").click()
    target = work_dir / info.value.suggested_filename
    info.value.save_as(target)
    lines = target.read_text().splitlines()
    assert lines[0].startswith("index,is_anomaly,severity,anomaly_score,confidence")
    assert len(lines) == 22544 + 1
    assert info.value.suggested_filename.endswith(".csv")


def test_model_panel_shows_the_served_model(analysed, api_json):
    panel = analysed.locator("#model-content")
    panel.locator("dl").first.wait_for()
    assert api_json["summary"]["model_version"] in panel.inner_text()


# -- errors and hostile input -------------------------------------------------------------------


def test_broken_file_shows_the_line_and_column(page, frontend_url, kdd_test):
    with kdd_test.open() as handle:
        lines = [next(handle) for _ in range(3)]
    fields = lines[1].split(",")
    fields[4] = "abc"  # src_bytes
    lines[1] = ",".join(fields)
    analyse(page, frontend_url, name="broken.txt", data="".join(lines).encode())
    error = page.locator("#error")
    assert error.is_visible()
    text = error.inner_text()
    assert re.search(r"line 2\b", text, re.IGNORECASE), text
    assert "src_bytes" in text
    assert "{" not in text  # a sentence, not raw JSON
    assert page.locator("#results").is_hidden()
    page.screenshot(path=ARTIFACTS / "e2e-05-broken-file.png", full_page=True)


def test_markup_in_the_file_is_shown_as_text_and_never_runs(page, frontend_url, kdd_test):
    with kdd_test.open() as handle:
        attacks = [line for line in (next(handle) for _ in range(200)) if ",neptune," in line]
    rows = []
    for line in attacks[:20]:
        fields = line.rstrip("\n").split(",")
        fields[2] = XSS_SERVICE
        rows.append(",".join(fields))
    analyse(page, frontend_url, name=XSS_FILENAME, data=("\n".join(rows) + "\n").encode())
    page.wait_for_timeout(500)  # give any injected handler a chance to fire (it must not)
    assert page.dialogs == []
    assert page.locator("script").count() == 1  # only our own module
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#results-file").inner_text() == f"for {XSS_FILENAME}"
    assert XSS_SERVICE in column_texts(page, "Service")
    page.screenshot(path=ARTIFACTS / "e2e-06-markup-inert.png", full_page=True)


@pytest.mark.parametrize("key", ["Enter", " "])
def test_drop_zone_opens_the_file_chooser_from_the_keyboard(page, frontend_url, key):
    """The chooser opens through a click on the file input; the test counts those clicks
    (and cancels them) instead of racing Playwright's asynchronous chooser interception."""
    page.goto(frontend_url)
    page.evaluate("""() => {
        window.chooserOpened = 0;
        document.getElementById('file-input').addEventListener('click', (event) => {
            window.chooserOpened += 1;
            event.preventDefault();
        });
    }""")
    for _ in range(10):  # the drop zone is reachable with Tab alone
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "drop-zone":
            break
    assert page.evaluate("document.activeElement.id") == "drop-zone"
    page.keyboard.press(key)
    assert page.evaluate("window.chooserOpened") == 1
    page.screenshot(path=ARTIFACTS / "e2e-01-upload-page.png", full_page=True)


def test_format_page_lists_the_columns(page, frontend_url):
    page.goto(f"{frontend_url}/format")
    assert page.locator("#format-columns tbody tr").count() == 41
    page.screenshot(path=ARTIFACTS / "e2e-08-format.png", full_page=True)


def test_unreachable_api_shows_waking_then_a_clear_message(page, offline_frontend_url):
    page.goto(offline_frontend_url)
    page.set_input_files("#file-input", files=[{"name": "small.txt", "mimeType": "text/plain",
                                                "buffer": b"0,tcp,http,SF\n"}])
    page.get_by_role("button", name="Analyze Network Traffic").click()
    page.get_by_text("Waking up the analysis service", exact=False).first.wait_for()
    page.screenshot(path=ARTIFACTS / "e2e-07-waking.png", full_page=True)
    page.locator("#error:not([hidden])").wait_for(timeout=RESULT_TIMEOUT_MS)
    text = page.locator("#error-text").inner_text()
    assert "did not respond within 8 seconds" in text
    page.screenshot(path=ARTIFACTS / "e2e-07-unreachable.png", full_page=True)


def test_oversized_file_is_refused_before_uploading(page, offline_frontend_url):
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(offline_frontend_url)
    page.set_input_files("#file-input", files=[{"name": "big.txt", "mimeType": "text/plain",
                                                "buffer": b"x" * (1024 * 1024 + 1)}])
    assert "the upload limit is 1 MB" in page.locator("#error-text").inner_text()
    assert page.get_by_role("button", name="Analyze Network Traffic").is_disabled()
    assert posts == []


def test_zeek_results_show_uid_and_hosts_and_the_duplicate_notice(page, offline_frontend_url):
    """Rendering only: the frontend's own routes are answered by the browser test itself."""
    anomaly = {"index": 4, "severity": "Critical", "anomaly_score": 3.2, "confidence": 0.99,
               "protocol_type": "tcp", "service": "http", "flag": "S0", "src_bytes": 0,
               "dst_bytes": 0, "uid": "<b>CHhAvVGS1DHFjwGM9</b>", "ts": 1.0,
               "id.orig_h": "10.0.0.5", "id.orig_p": 51234, "id.resp_h": "10.0.0.9",
               "id.resp_p": 80, "top_features": []}
    result = {"success": True, "has_labels": False, "metrics": None, "anomalies": [anomaly],
              "score_histogram": {"bin_edges": [0, 1, 2, 3, 4], "counts": [5, 0, 0, 1],
                                  "threshold": 1.0},
              "summary": {"total_samples": 6, "anomalies_detected": 1, "anomalies_returned": 1,
                          "severity_counts": {"Normal": 5, "Critical": 1},
                          "processing_time": 0.01, "model_version": "v-test", "threshold": 1.0,
                          "input_kind": "zeek", "duplicate": True, "stored": False}}
    page.route("**/service-status*", lambda route: route.fulfill(
        json={"success": True, "awake": True}))
    page.route("**/model-panel", lambda route: route.fulfill(
        json={"success": True, "model": {"model_version": "v-test"}, "retrain": None}))
    page.route("**/analyze", lambda route: route.fulfill(json=result))
    analyse(page, offline_frontend_url, name="conn.log", data=b"#fields\tts\n")
    assert page.locator("#duplicate-notice").is_visible()
    assert "uploaded before" in page.locator("#duplicate-notice").inner_text()
    assert column_texts(page, "Zeek uid") == ["<b>CHhAvVGS1DHFjwGM9</b>"]
    assert column_texts(page, "Hosts") == ["10.0.0.5:51234 → 10.0.0.9:80"]
    assert page.locator("#metrics").is_hidden()
    assert "Retraining status is not available" in page.locator("#model-content").inner_text()
    page.screenshot(path=ARTIFACTS / "e2e-09-zeek-duplicate.png", full_page=True)


ZEEK_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "zeek"


@pytest.mark.parametrize("name", ["scenario-malicious.conn.log.labeled",
                                  "ctu-botnet-4.conn.log.labeled"])
def test_real_zeek_conn_logs_analyse_end_to_end_with_their_identity(page, frontend_url, name):
    """The upload page analyses both real labelled Zeek samples, keeping each connection's
    uid and hosts."""
    path = ZEEK_SAMPLES / name
    if not path.is_file():
        unavailable(f"{path} is missing (../shared/data/zeek beside the repository)")
    analyse(page, frontend_url, path)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    uids = column_texts(page, "Zeek uid")
    assert uids and all(uid.startswith("C") for uid in uids)
    assert all("→" in hosts for hosts in column_texts(page, "Hosts"))
    assert page.locator("#metrics").is_visible()  # both samples carry labels
    page.screenshot(path=ARTIFACTS / f"e2e-10-zeek-{name.split('.')[0]}.png", full_page=True)


# -- the page's own behaviour (the frontend's routes answered by the test itself) --------------

MINIMAL_RESULT = {
    "success": True, "has_labels": False, "metrics": None, "anomalies": [],
    "score_histogram": {"bin_edges": [0, 1, 2], "counts": [3, 0], "threshold": 1.0},
    "summary": {"total_samples": 3, "anomalies_detected": 0, "anomalies_returned": 0,
                "severity_counts": {"Normal": 3}, "processing_time": 0.01,
                "model_version": "v-test", "threshold": 1.0, "input_kind": "kdd",
                "duplicate": False, "stored": True}}


# Every text a live region (aria-live, role=status or role=alert) takes, in order.
RECORD_ANNOUNCEMENTS = """
window.announced = [];
window.statusTexts = 0;
new MutationObserver((records) => {
  for (const record of records) {
    const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
    if (node && node.closest('#status-text')) window.statusTexts += 1;
    const region = node && node.closest('[aria-live], [role="status"], [role="alert"]');
    const text = region ? region.textContent.replace(/\\s+/g, ' ').trim() : '';
    if (text && window.announced[window.announced.length - 1] !== text) {
      window.announced.push(text);
    }
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""

# An XMLHttpRequest that reports 100 upload-progress events, one per task, then answers.
FAKE_UPLOAD = """
window.XMLHttpRequest = class extends EventTarget {
  constructor() { super(); this.upload = new EventTarget(); this.status = 0; }
  open() {}
  setRequestHeader() {}
  async send() {
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    for (let i = 1; i <= 100; i += 1) {
      await tick();
      this.upload.dispatchEvent(new ProgressEvent('progress',
        { lengthComputable: true, loaded: i * 1000, total: 100000 }));
    }
    await tick();
    this.upload.dispatchEvent(new ProgressEvent('load'));
    await tick();
    this.status = 200;
    this.responseText = JSON.stringify(%s);
    this.dispatchEvent(new ProgressEvent('load'));
  }
};
"""


def answer_frontend_routes(page, *, retrain: dict | None = None,
                           result: dict = MINIMAL_RESULT) -> None:
    page.route("**/service-status*", lambda route: route.fulfill(
        json={"success": True, "awake": True}))
    page.route("**/model-panel", lambda route: route.fulfill(
        json={"success": True, "model": {"model_version": "v-test"}, "retrain": retrain,
              "retrain_available": retrain is not None}))
    page.route("**/analyze", lambda route: route.fulfill(json=result))


def test_model_panel_counts_the_uploads_that_trigger_a_retrain(page, offline_frontend_url):
    """After a failed run the uploads stay pending, but the trigger starts again from 0."""
    retrain = {"success": True, "pending_uploads": 10, "threshold": 10,
               "uploads_since_retrain": 0, "queued_requests": 0, "running": False,
               "last_runs": [{"id": 1, "outcome": "failed", "reason": "interrupted",
                              "started_at": "2026-11-25T12:00:00Z",
                              "finished_at": "2026-11-25T12:01:00Z"}]}
    answer_frontend_routes(page, retrain=retrain)
    page.goto(offline_frontend_url)
    page.get_by_role("heading", name="Retraining").wait_for()
    text = page.locator("#model-content").inner_text()
    assert re.search(r"(?<!\d)0 of 10 new uploads", text), text
    assert "10 of 10" not in text


def test_a_failed_csv_download_says_so_and_can_be_retried(page, offline_frontend_url):
    page.add_init_script("URL.createObjectURL = () => { throw new Error('out of memory'); };")
    answer_frontend_routes(page)
    page.route("**/download.csv", lambda route: route.fulfill(
        body="index,is_anomaly\n0,false\n", content_type="text/csv"))
    analyse(page, offline_frontend_url, name="small.txt", data=b"0,tcp,http,SF\n")
    button = page.get_by_role("button", name="Download results (CSV)")
    button.click()
    page.wait_for_function(
        "() => !document.getElementById('download-status').textContent.startsWith('Preparing')",
        timeout=10_000)
    assert button.is_enabled()
    assert "could not" in page.locator("#download-status").inner_text()


def test_upload_progress_is_announced_at_milestones_not_every_tick(page, offline_frontend_url):
    page.add_init_script(RECORD_ANNOUNCEMENTS)
    page.add_init_script(FAKE_UPLOAD % json.dumps(MINIMAL_RESULT))
    answer_frontend_routes(page)
    analyse(page, offline_frontend_url, name="small.txt", data=b"0,tcp,http,SF\n")
    assert page.locator("#error").is_hidden()
    assert page.evaluate("window.statusTexts") >= 100  # the visible text followed every tick
    announced = page.evaluate("window.announced")
    uploading = [text for text in announced if text.startswith("Uploading")]
    assert uploading == ["Uploading… 0 %", "Uploading… 25 %", "Uploading… 50 %",
                         "Uploading… 75 %"], announced
    assert any(text.startswith("Upload complete") for text in announced), announced
    assert len(announced) <= 10, announced


def test_drop_zone_is_named_by_its_visible_text(page, offline_frontend_url):
    page.goto(offline_frontend_url)
    title = page.locator("#drop-zone .drop-title").inner_text()
    chosen = page.locator("#drop-zone .file-name").inner_text()
    zone = page.get_by_role("button", name=f"{title} {chosen}", exact=True)
    assert zone.count() == 1
    assert zone.get_attribute("id") == "drop-zone"
    page.set_input_files("#file-input", files=[{"name": "small.txt", "mimeType": "text/plain",
                                                "buffer": b"0,tcp,http,SF\n"}])
    named = page.get_by_role("button", name=re.compile(r"small\.txt"))
    assert named.get_attribute("id") == "drop-zone"  # the name follows the chosen file


# -- accessibility (axe-core in the page) -------------------------------------------------------


def test_upload_and_format_pages_have_no_accessibility_violations(page, frontend_url):
    page.goto(frontend_url)
    page.locator("#model-content dl").first.wait_for()
    assert_accessible(page, "upload page")
    page.goto(f"{frontend_url}/format")
    assert_accessible(page, "format page")
    page.goto(f"{frontend_url}/sign-in")
    assert_accessible(page, "sign-in page")


def test_results_page_has_no_accessibility_violations(analysed):
    reset_table(analysed)
    assert_accessible(analysed, "KDDTest+ results")


# -- the analyst's Zeek views, on the shared real samples ---------------------------------------


def zeek_sample(name: str) -> Path:
    path = ZEEK_SAMPLES / name
    if not path.is_file():
        unavailable(f"{path} is missing (../shared/data/zeek beside the repository)")
    return path


def api_answer(api_url: str, path: Path) -> dict:
    with path.open("rb") as handle:
        response = requests.post(f"{api_url}/api/predict", params={"limit": TABLE_LIMIT},
                                 files={"file": (path.name, handle)}, timeout=300)
    response.raise_for_status()
    return response.json()


def sign_in(page, frontend_url: str) -> None:
    page.goto(frontend_url)
    page.get_by_role("link", name="Analyst sign-in").click()
    page.get_by_label("Analyst password").fill(ANALYST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as analyst").wait_for()


@pytest.mark.parametrize("name", ["scenario-malicious.conn.log.labeled",
                                  "ctu-botnet-4.conn.log.labeled"])
def test_analyst_signs_in_and_reads_hosts_and_timeline_of_a_real_zeek_log(page, frontend_url,
                                                                          api_url, name):
    path = zeek_sample(name)
    short = name.split(".")[0]
    sign_in(page, frontend_url)
    assert page.evaluate("document.body.dataset.analyst") == "true"
    assert_accessible(page, "signed in, upload page")

    analyse(page, frontend_url, path)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    answer = api_answer(api_url, path)
    assert page.get_by_text("Signed in as analyst").is_visible()

    # The default model learnt KDD records: the page says so above the results.
    warning = page.locator("#warnings .warning")
    assert warning.count() == 1 and warning.is_visible()
    assert "python train_model.py --train conn.log" in warning.inner_text()
    box = page.locator("#warnings").bounding_box()
    assert box["y"] < page.locator("#summary-cards").bounding_box()["y"]

    # Stratosphere's labels by their own names, not one "Unknown" bar.
    bars = page.locator("#category-chart text.chart-label").all_text_contents()
    assert "Unknown" not in bars
    assert set(bars) == set(answer["metrics"]["detection_rate_by_label"])

    # The timeline: one bar stack per bin that has anomalies, over the file's range.
    timeline = answer["timeline"]
    busy_bins = sum(1 for i in range(len(timeline["counts"]["Low"]))
                    if any(timeline["counts"][s][i] for s in timeline["counts"]))
    assert page.locator("#timeline-figure").is_visible()
    caption = page.locator("#timeline-caption").inner_text()
    assert caption.startswith("Anomalies per minute" if timeline["bin_seconds"] == 60
                              else "Anomalies per "), caption
    stacks = page.evaluate("""() => new Set([...document.querySelectorAll(
        '#timeline-chart rect.bar')].map((r) => r.getAttribute('x'))).size""")
    assert stacks == busy_bins

    # The hosts view ranks hosts as the API counted them over the whole file.
    sources = page.locator("#source-hosts .host-button").all_text_contents()
    assert sources == [h["host"] for h in answer["hosts"]["sources"]]
    destinations = page.locator("#destination-hosts .host-button").all_text_contents()
    assert destinations == [h["host"] for h in answer["hosts"]["destinations"]]
    page.screenshot(path=ARTIFACTS / f"e2e-11-zeek-views-{short}.png", full_page=True)

    # Clicking a host filters the table to that host's anomalies.
    host = answer["hosts"]["sources"][0]["host"]
    page.locator("#source-hosts .host-button").first.click()
    assert page.locator("#source-hosts .host-button").first.get_attribute("aria-pressed") == (
        "true")
    assert host in page.locator("#host-filter").inner_text()
    hosts_cells = column_texts(page, "Hosts")
    assert hosts_cells and all(cell.startswith(host) for cell in hosts_cells)
    expected_rows = sum(1 for a in answer["anomalies"] if a["id.orig_h"] == host)
    assert page.locator("#page-info").inner_text().endswith(f"of {expected_rows:,}")
    in_file = answer["hosts"]["sources"][0]["anomalies"]
    if in_file > expected_rows:  # the table holds only the highest-scoring anomalies
        assert f"{expected_rows:,} of its {in_file:,} anomalies" in page.locator(
            "#host-filter").inner_text()
    assert_accessible(page, "signed in, hosts view with a host chosen")
    page.screenshot(path=ARTIFACTS / f"e2e-12-host-filter-{short}.png", full_page=True)
    page.get_by_role("button", name="Show every host").click()
    assert page.locator("#host-filter").is_hidden()
    assert page.locator("#page-info").inner_text().endswith(
        f"of {len(answer['anomalies']):,}")

    # The Hosts column fits: the table scrolls inside its card, never past the page.
    overflow = page.evaluate("""() => {
        const wrap = document.querySelector('#anomalies .table-wrap');
        return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                wrapRight: wrap.getBoundingClientRect().right,
                cardRight: document.getElementById('anomalies').getBoundingClientRect().right};
    }""")
    assert overflow["page"] <= overflow["view"]
    assert overflow["wrapRight"] <= overflow["cardRight"]

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="Analyst sign-in").wait_for()
    assert page.evaluate("document.body.dataset.analyst") == "false"


def test_analyst_marks_a_false_positive_and_allow_lists_a_host(page, frontend_url, api_url):
    """Signed in: a row's "False positive" records the verdict in the API; "Allow-list host"
    adds an entry, the row shows it is allow-listed, and the panel lists and removes it."""
    path = zeek_sample("scenario-malicious.conn.log.labeled")
    sign_in(page, frontend_url)
    assert page.locator("#allowlist-panel").is_visible()
    analyse(page, frontend_url, path)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    api = {"Authorization": f"Bearer {API_ANALYST_TOKEN}"}

    first = page.locator("#anomaly-table tbody tr").first
    index = int(first.locator("td").first.inner_text().replace(",", ""))
    first.get_by_role("button", name="False positive").click()
    page.get_by_text(f"Row {index} marked a false positive.").wait_for()
    assert first.get_by_text("Marked false positive").is_visible()
    feedback = requests.get(f"{api_url}/api/feedback", headers=api, timeout=30).json()
    assert {(f["record"], f["verdict"]) for f in feedback["feedback"]} >= {
        (str(index), "false_positive")}

    host = column_texts(page, "Hosts")[0].split(" → ")[0].rsplit(":", 1)[0]
    first.get_by_role("button", name="Allow-list host").click()
    page.get_by_text(f"Host {host} allow-listed").wait_for()
    entries = requests.get(f"{api_url}/api/allowlist", headers=api, timeout=30).json()
    (entry,) = [e for e in entries["entries"] if e["host"] == host]
    assert first.get_by_text(f"Allow-listed (entry {entry['id']})").is_visible()
    assert first.get_by_role("button", name="Allow-list host").count() == 1
    page.locator("#allowlist-entries li").filter(has_text=f"#{entry['id']}").wait_for()
    assert_accessible(page, "signed in, results with the allow-list panel")
    page.screenshot(path=ARTIFACTS / "e2e-13-allowlist.png", full_page=True)

    # the next analysis of the file: the API reports those rows allow-listed itself
    answer = api_answer(api_url, path)
    assert answer["summary"]["allowlisted"] > 0
    assert answer["summary"]["alerts"] == (answer["summary"]["anomalies_detected"]
                                           - answer["summary"]["allowlisted"])

    page.locator("#allowlist-entries li").filter(has_text=f"#{entry['id']}").get_by_role(
        "button", name="Remove").click()
    page.get_by_text(f"Entry {entry['id']} removed.").wait_for()
    assert requests.get(f"{api_url}/api/allowlist", headers=api,
                        timeout=30).json()["total"] == 0
