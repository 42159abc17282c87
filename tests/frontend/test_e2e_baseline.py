"""The admin's baseline section in headless Chromium: the real frontend under gunicorn (with
analyst and admin sign-in) in front of the real ML API.

Most tests answer the frontend's baseline routes from the test itself (Playwright routes), so
each job state the API can report is drawn exactly as docs/API.md shapes it; the last one
trains a baseline through the page on the real API, end to end. Every state is checked with
axe-core. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from urllib.parse import urlparse

import pytest
import requests
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.local_server import free_port, gunicorn_command

from . import test_e2e_browser as e2e
from .test_e2e_browser import (
    ANALYST_PASSWORD,
    ARTIFACTS,
    RESULT_TIMEOUT_MS,
    ROOT,
    analyse,
    assert_accessible,
    frontend_args,
    server,
    unavailable,
)

# The browser, its pages and the temporary folder, as the other browser tests have them.
chromium, page, work_dir = e2e.chromium, e2e.page, e2e.work_dir

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "e2e-admin-password-0123"
API_ADMIN_TOKEN = "e2e-api-admin-token-0123"
TRAIN_TIMEOUT_S = 300.0
JOBS_PATH = "/admin/baseline/jobs"
VERSION = "20261130T060000Z-0a1b2c3d"

HEALTH = {
    "period": {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-27T00:00:00+00:00",
               "seconds": 604800.0},
    "rows": 4210, "hosts": {"sources": 12, "destinations": 340},
    "rejected_share": 0.0380, "rejected_states": {"S0": 120, "REJ": 40},
    "top_talkers": [
        {"host": "10.0.0.9", "destinations": 300, "ports": 2, "connections": 900},
        {"host": "10.0.0.4", "destinations": 3, "ports": 2, "connections": 700}],
    "services": [{"service": "dns", "connections": 2000}, {"service": "http",
                                                            "connections": 1500}],
    "labels": {"normal": 4000, "malicious": 10, "unlabeled": 200},
    "warnings": [{"code": "scanner", "message": "10.0.0.9 contacted 300 distinct destinations",
                  "hosts": ["10.0.0.9"]}]}
FIGURES = {"false_alarm_rate": 0.0125, "auroc": 0.9312, "fit_rows": 2800,
           "threshold": 1.734}
QUEUED = {"id": 7, "status": "queued", "stage": "queued",
          "created_at": "2026-11-30T06:00:00+00:00", "finished_at": None,
          "files": [{"sha256": "ab" * 32, "name": "mon.conn.log", "rows": 2100},
                    {"sha256": "cd" * 32, "name": "tue.conn.log", "rows": 2110}],
          "options": {"exclude_hosts": ["10.1.0.0/16"], "exclude_ranges": [],
                      "report_only": False},
          "health": None, "figures": None, "version": None, "reason": None}


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_url(chromium, work_dir):
    """The real ML API, with an admin token, on a snapshot of models/."""
    if not any((ROOT / "models").glob("*.joblib")):
        unavailable("no model in models/: train one first")
    data_dir = work_dir / "api-data"
    data_dir.mkdir()
    model_dir = work_dir / "models"
    shutil.copytree(ROOT / "models", model_dir)
    port = free_port()
    env = {**os.environ, "ANOMALYZE_DATA_DIR": str(data_dir),
           "ANOMALYZE_MODEL_DIR": str(model_dir), "ANOMALYZE_ADMIN_TOKEN": API_ADMIN_TOKEN}
    with server("ml-api-admin", gunicorn_command("api_server:app", port), env, work_dir):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def frontend_url(api_url, work_dir):
    port = free_port()
    env = {**os.environ, "ANOMALYZE_API_URL": api_url,
           "ANOMALYZE_ANALYST_PASSWORD": ANALYST_PASSWORD,
           "ANOMALYZE_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "ANOMALYZE_API_ADMIN_TOKEN": API_ADMIN_TOKEN}
    with server("frontend-admin", frontend_args(port), env, work_dir):
        yield f"http://127.0.0.1:{port}"


def sign_in(page, frontend_url: str, password: str) -> None:
    page.goto(frontend_url)
    page.get_by_role("link", name="Analyst or admin sign-in").click()
    page.get_by_label("Analyst or admin password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for()


def open_section(page, frontend_url: str) -> None:
    sign_in(page, frontend_url, ADMIN_PASSWORD)
    page.get_by_role("link", name="Baselines").click()
    page.get_by_role("heading", name="Train a baseline for your network").wait_for()


class FakeJobs:
    """The frontend's baseline routes as the API's jobs would make them answer: a job goes
    queued -> running -> held as the page polls it, and held -> promoted when promoted."""

    def __init__(self, states: list[dict] | None = None) -> None:
        running = {**QUEUED, "status": "running", "stage": "training"}
        held = {**QUEUED, "status": "held", "stage": "done", "health": HEALTH,
                "figures": FIGURES, "version": VERSION,
                "finished_at": "2026-11-30T06:02:00+00:00",
                "reason": "the health report warns: 1 host looks like a scanner"}
        self.states = states or [QUEUED, running, held]
        self.reads = 0
        self.created: list = []
        self.promotions: list = []
        self.current: dict | None = None

    def install(self, page) -> None:
        page.route(re.compile(r".*/admin/baseline/jobs(/.*)?$"), self.handle)
        page.route("**/service-status*", lambda route: route.fulfill(
            json={"success": True, "awake": True}))

    def handle(self, route, request) -> None:
        path = urlparse(request.url).path
        if request.method == "POST" and path == JOBS_PATH:
            self.created.append(request)
            self.reads = 0
            self.current = {**copy.deepcopy(self.states[0]), "id": 6 + len(self.created)}
            route.fulfill(status=202, json={"success": True, "job": self.current})
        elif request.method == "POST" and path.endswith("/promote"):
            self.promotions.append(request)
            self.current = {**self.current, "status": "promoted", "reason": None}
            route.fulfill(json={"success": True, "model_version": VERSION,
                                "input_kind": "zeek"})
        elif path == JOBS_PATH:
            jobs = [self.current] if self.current else []
            route.fulfill(json={"success": True, "jobs": jobs})
        else:
            if self.current and self.current["status"] in ("queued", "running"):
                self.reads += 1
                state = self.states[min(self.reads, len(self.states) - 1)]
                self.current = {**copy.deepcopy(state), "id": self.current["id"]}
            route.fulfill(json={"success": True, "job": self.current})


def fulfil_with(body: dict):
    """A route handler answering `body` (Playwright passes a handler's every parameter, so
    the body cannot be a default argument)."""
    return lambda route: route.fulfill(json=body)


def multipart(request):
    environ = EnvironBuilder(method="POST", data=request.post_data_buffer,
                             content_type=request.headers["content-type"]).get_environ()
    _, form, files = parse_form_data(environ)
    return form, files


def job_status(page) -> str:
    return page.locator("#job-state").get_attribute("data-status") or ""


# -- the section, its job states and the pages that link to it ----------------------------------


def test_only_a_signed_in_admin_gets_the_section(page, frontend_url):
    page.goto(f"{frontend_url}/admin/baseline")
    assert page.get_by_role("link", name="Sign in as an admin").is_visible()
    assert page.locator("#baseline-form").count() == 0
    assert_accessible(page, "baseline section, signed out")
    sign_in(page, frontend_url, ANALYST_PASSWORD)
    assert page.get_by_role("link", name="Baselines").count() == 0
    page.goto(f"{frontend_url}/admin/baseline")
    assert "signed in as an analyst" in page.locator("#baseline-locked").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="Analyst or admin sign-in").wait_for()

    FakeJobs().install(page)
    open_section(page, frontend_url)
    page.get_by_text("No baseline jobs yet.").wait_for()
    assert page.get_by_role("button", name="Upload and train").is_disabled()
    assert API_ADMIN_TOKEN not in page.content()
    assert_accessible(page, "baseline section, no jobs")
    page.screenshot(path=ARTIFACTS / "e2e-20-baseline-empty.png", full_page=True)


def test_a_baseline_job_goes_from_upload_to_its_report_and_promotion(page, frontend_url):
    jobs = FakeJobs()
    jobs.install(page)
    open_section(page, frontend_url)
    page.set_input_files("#baseline-files", files=[
        {"name": "mon.conn.log", "mimeType": "text/plain", "buffer": b"#fields\tts\n1\n"},
        {"name": "tue.conn.log", "mimeType": "text/plain", "buffer": b"#fields\tts\n2\n"}])
    assert "mon.conn.log, tue.conn.log (2 files" in page.locator(
        "#baseline-files-chosen").inner_text()
    page.get_by_label("Exclude hosts or networks (optional)").fill("10.1.0.0/16")
    page.get_by_label("Exclude time ranges (optional)").fill("1700000000/1700003600")
    page.get_by_role("button", name="Upload and train").click()

    # The upload: both files and the options, with the session's CSRF token.
    page.get_by_role("heading", name="Baseline job 7").wait_for()
    [created] = jobs.created
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert created.headers["x-csrftoken"] == csrf
    form, files = multipart(created)
    assert [f.filename for f in files.getlist("files")] == ["mon.conn.log", "tue.conn.log"]
    assert form.to_dict() == {"exclude_hosts": "10.1.0.0/16",
                              "exclude_ranges": "1700000000/1700003600",
                              "report_only": "false"}

    # Followed by polling until the API holds it: then the report, warnings first.
    page.wait_for_function("() => document.getElementById('job-state').dataset.status === 'held'",
                           timeout=30_000)
    assert jobs.reads >= 2
    assert "Held: the model was trained but not promoted" in page.locator(
        "#job-state").inner_text()
    warning = page.locator("#health-warnings .warning")
    assert warning.count() == 1 and warning.get_attribute("data-code") == "scanner"
    assert "10.0.0.9 contacted 300 distinct destinations" in warning.inner_text()
    facts = page.locator("#health-facts").inner_text()
    for text in ("2026-11-20T00:00:00+00:00 to 2026-11-27T00:00:00+00:00 (7.0 days)", "4,210",
                 "12 sources, 340 destinations", "3.80 %",
                 "4,000 normal, 10 malicious, 200 unlabeled"):
        assert text in facts, facts
    talkers = page.locator("#talkers-table tbody tr")
    assert talkers.count() == 2 and "(warned)" in talkers.first.inner_text()
    assert "(warned)" not in talkers.nth(1).inner_text()
    assert page.locator("#states-table tbody tr").first.inner_text().split("\t")[:2] == [
        "S0", "120"]
    assert page.locator("#services-table tbody tr").count() == 2
    figures = page.locator("#figures-content").inner_text()
    assert "False alarm rate" in figures and "1.25 %" in figures and "0.9312" in figures
    assert "2,800" in figures
    assert "null" not in page.locator("#job-view").inner_text()  # absent parts leave no trace
    assert_accessible(page, "baseline job held, with its health report")
    page.screenshot(path=ARTIFACTS / "e2e-21-baseline-held.png", full_page=True)

    # A warned host goes to the exclusions with one click.
    warning.get_by_role("button", name="Exclude this host").click()
    assert page.get_by_label("Exclude hosts or networks (optional)").input_value() == (
        "10.1.0.0/16\n10.0.0.9\n")

    # The admin promotes the held model.
    page.get_by_role("button", name=f"Promote version {VERSION} despite the warnings").click()
    page.get_by_text(f"Version {VERSION} now scores zeek uploads.").wait_for()
    assert len(jobs.promotions) == 1
    assert jobs.promotions[0].headers["x-csrftoken"] == csrf
    assert job_status(page) == "promoted"
    assert page.locator("#job-actions").is_hidden()
    page.locator('#jobs-table td[data-status="promoted"]').wait_for()
    assert_accessible(page, "baseline job promoted")

    # The same kept files again, with the warned host excluded, without uploading them.
    page.get_by_role("button", name="Train these files again with the options above").click()
    page.get_by_role("heading", name="Baseline job 8").wait_for()
    again = jobs.created[-1]
    assert again.headers["x-csrftoken"] == csrf
    assert again.post_data_json == {
        "uploads": ["ab" * 32, "cd" * 32], "exclude_hosts": "10.1.0.0/16\n10.0.0.9\n",
        "exclude_ranges": "1700000000/1700003600", "report_only": False}


def test_check_only_and_a_refused_file_say_what_happened(page, frontend_url):
    def jobs(route, request):
        if request.method == "POST":
            route.fulfill(status=400, json={"success": False, "error_type": "input_kind",
                                            "error": "KDDTest+.txt is not a Zeek conn.log",
                                            "problems": []})
        else:
            route.fulfill(json={"success": True, "jobs": []})

    page.route(re.compile(r".*/admin/baseline/jobs$"), jobs)
    page.route("**/service-status*", lambda route: route.fulfill(
        json={"success": True, "awake": True}))
    open_section(page, frontend_url)
    page.get_by_label("Check only: report on the baseline without training a model").check()
    page.set_input_files("#baseline-files", files=[
        {"name": "KDDTest+.txt", "mimeType": "text/plain", "buffer": b"0,tcp,http,SF\n"}])
    page.get_by_role("button", name="Upload and check").click()
    page.locator("#baseline-error:not([hidden])").wait_for()
    assert page.locator("#baseline-error-text").inner_text() == (
        "KDDTest+.txt is not a Zeek conn.log")
    assert page.locator("#job-view").is_hidden()
    assert_accessible(page, "baseline upload refused")


def test_the_model_panel_lists_both_kinds_and_links_to_the_section(page, frontend_url):
    kdd = {"model_version": "kdd-v1", "created_at": "2026-11-25T12:00:00Z",
           "k_values": [8, 16, 32, 64, 128], "threshold": 1.0, "input_kind": "kdd"}
    zeek = {"model_version": VERSION, "created_at": "2026-11-30T06:02:00Z",
            "k_values": [4, 6, 8, 12, 16], "threshold": 1.734, "input_kind": "zeek",
            "baseline": {"period": HEALTH["period"]}}
    answers = [{**kdd, "models": {"kdd": kdd, "zeek": None}},
               {**kdd, "models": {"kdd": kdd, "zeek": zeek}}]
    page.route("**/service-status*", lambda route: route.fulfill(
        json={"success": True, "awake": True}))
    for model in answers:
        body = {"success": True, "model": model, "retrain": None, "retrain_available": False}
        page.route("**/model-panel", fulfil_with(body))
        page.goto(frontend_url)
        panel = page.locator("#model-content")
        panel.get_by_role("heading", name="KDD model", exact=True).wait_for()
        assert "kdd-v1" in panel.inner_text() and "8, 16, 32, 64, 128" in panel.inner_text()
        if model["models"]["zeek"] is None:
            assert "No Zeek model yet" in panel.inner_text()
            link = panel.get_by_role("link", name="Train a baseline for your network")
            assert link.get_attribute("href") == "/admin/baseline"
            assert_accessible(page, "model panel without a Zeek model")
        else:
            text = panel.locator('[data-kind="zeek"]').inner_text()
            assert VERSION in text and "4, 6, 8, 12, 16" in text and "1.734" in text
            assert "2026-11-20T00:00:00+00:00 to 2026-11-27T00:00:00+00:00" in text
        page.unroute("**/model-panel")
    page.screenshot(path=ARTIFACTS / "e2e-22-model-panel-kinds.png", full_page=True)


def test_a_zeek_files_kind_warning_links_to_the_baseline_section(page, frontend_url):
    message = ("No model of this kind (zeek) exists yet: these results come from the KDD "
               "model, which cannot judge Zeek traffic.")
    result = {"success": True, "has_labels": False, "metrics": None, "anomalies": [],
              "score_histogram": {"bin_edges": [0, 1, 2], "counts": [3, 0], "threshold": 1.0},
              "summary": {"total_samples": 3, "anomalies_detected": 0, "anomalies_returned": 0,
                          "severity_counts": {"Normal": 3}, "processing_time": 0.01,
                          "model_version": "kdd-v1", "threshold": 1.0, "input_kind": "zeek",
                          "model": {"version": "kdd-v1", "input_kind": "kdd"},
                          "duplicate": False, "stored": True,
                          "warnings": [{"code": "input_kind_mismatch", "message": message,
                                        "command": "python train_model.py --train conn.log"}]}}
    page.route("**/service-status*", lambda route: route.fulfill(
        json={"success": True, "awake": True}))
    page.route("**/analyze", lambda route: route.fulfill(json=result))
    analyse(page, frontend_url, name="conn.log", data=b"#fields\tts\n")
    warning = page.locator('#warnings .warning[data-code="input_kind_mismatch"]')
    assert message in warning.inner_text()
    link = warning.get_by_role("link", name=re.compile("Train a baseline for your network"))
    assert link.get_attribute("href") == "/admin/baseline"
    assert_accessible(page, "results with the input-kind warning")
    page.screenshot(path=ARTIFACTS / "e2e-23-kind-warning.png", full_page=True)


# -- end to end: a baseline trained through the page on the real API ----------------------------


def test_an_admin_trains_a_zeek_baseline_through_the_page(page, frontend_url, api_url,
                                                          work_dir):
    """Upload a generated conn.log, follow the real job to its end (promoting it if held),
    then a later Zeek file is scored by the new Zeek model, without the kind warning."""
    admin = {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}
    probe = requests.get(f"{api_url}/api/models/baseline", headers=admin, timeout=30)
    if probe.status_code == 404:
        pytest.skip("this API does not offer baseline jobs (/api/models/baseline)")
    baseline = work_dir / "baseline.conn.log"
    baseline.write_bytes(tsv_log(conn_rows(3000, seed=3)))
    later = tsv_log(conn_rows(400, seed=4))

    open_section(page, frontend_url)
    page.set_input_files("#baseline-files", str(baseline))
    page.get_by_role("button", name="Upload and train").click()
    heading = page.get_by_role("heading", name=re.compile(r"Baseline job \d+"))
    heading.wait_for(timeout=RESULT_TIMEOUT_MS)
    job_id = int(heading.inner_text().rsplit(" ", 1)[1])
    page.wait_for_function("() => !['queued', 'running'].includes("
                           "document.getElementById('job-state').dataset.status)",
                           timeout=TRAIN_TIMEOUT_S * 1000)
    job = requests.get(f"{api_url}/api/models/baseline/{job_id}", headers=admin,
                       timeout=30).json()
    job = job.get("job", job)
    assert job_status(page) == job["status"], job
    assert job["status"] in ("promoted", "held"), job
    facts = page.locator("#health-facts").inner_text()
    assert f"{job['health']['rows']:,}" in facts
    assert_accessible(page, f"real baseline job {job['status']}")
    page.screenshot(path=ARTIFACTS / "e2e-24-baseline-real.png", full_page=True)
    if job["status"] == "held":
        page.get_by_role("button", name=re.compile(r"^Promote version")).click()
        page.get_by_text(re.compile(r"^Version \S+ now scores \w+ uploads")).wait_for()
    info = requests.get(f"{api_url}/api/model-info", timeout=30).json()
    assert info["models"]["zeek"]["model_version"] == job["version"]

    page.goto(frontend_url)
    page.locator('#model-content [data-kind="zeek"] dl').wait_for()
    assert job["version"] in page.locator('#model-content [data-kind="zeek"]').inner_text()
    analyse(page, frontend_url, name="later.conn.log", data=later)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    assert page.locator('#warnings .warning[data-code="input_kind_mismatch"]').count() == 0
    assert page.locator('[data-metric="model_version"] .card-value').inner_text() == (
        job["version"])
