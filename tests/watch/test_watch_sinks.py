"""Sinks against real receivers on 127.0.0.1: a webhook that is down for a while (and a
watcher restarted meanwhile) gets every alert once; syslog gets RFC 5424 messages."""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from tests.helpers.waiting import poll
from tests.helpers.watch_processes import (
    batch_alerts,
    read_alerts,
    shared_zeek_log,
    start_watcher,
    start_writer,
    stop,
    wait_until_watching,
)
from tests.watch.receivers import RFC5424, SyslogTcp, SyslogUdp, Webhook, free_port
from utils.watch.sinks import SyslogSink, rfc5424_message

SEVERITY = {"Critical": 2, "High": 3, "Medium": 4, "Low": 5}


def _check_syslog(message: bytes) -> dict:
    match = RFC5424.fullmatch(message)
    assert match, message[:120]
    alert = orjson.loads(match["msg"])
    assert int(match["pri"]) == 16 * 8 + SEVERITY[alert["anomalyze"]["severity"]]
    assert match["app"] == b"anomalyze" and match["msgid"] == b"alert"
    assert match["timestamp"].decode() == alert["event"]["created"]
    return alert


@pytest.mark.e2e
def test_webhook_down_then_back_gets_every_alert_once_and_syslog_every_alert(log_folder,
                                                                            tmp_path):
    source = shared_zeek_log("scenario-malicious.conn.log.labeled")
    state = tmp_path / "state"
    alerts_file = tmp_path / "alerts.ndjson"
    port = free_port()  # nothing listens there yet: the receiver is down
    syslog = SyslogUdp()
    arguments = ("--alerts-file", str(alerts_file), "--webhook", f"http://127.0.0.1:{port}/in",
                 "--syslog", f"udp://127.0.0.1:{syslog.port}", "--no-metrics")
    watcher = start_watcher(log_folder, state, *arguments)
    webhook = None
    try:
        wait_until_watching(state)
        writer = start_writer(source, log_folder, rate=400, rotate_every=400)
        assert writer.wait(timeout=60) == 0
        written = len(batch_alerts(source))
        poll(lambda: len(read_alerts(alerts_file)) >= written, "the alerts file", deadline=60)
        stop(watcher)  # restarted while the receiver is still down
        watcher = start_watcher(log_folder, state, *arguments)
        wait_until_watching(state, runs=2)
        time.sleep(2)
        webhook = Webhook(port)  # back
        poll(lambda: len(webhook.alerts) >= written, "the webhook to catch up", deadline=120)
        stop(watcher)
        watcher = start_watcher(log_folder, state, *arguments)  # nothing may be sent again
        wait_until_watching(state, runs=3)
        time.sleep(2)
    finally:
        stop(watcher)
        if webhook is not None:
            webhook.close()
        syslog.close()
    expected = read_alerts(alerts_file)
    assert len(expected) == written > 0
    ids = [alert["event"]["id"] for alert in expected]
    assert len(set(ids)) == len(ids)
    received = [alert["event"]["id"] for alert in webhook.alerts]
    assert len(received) == len(set(received)), "the webhook got an alert twice"
    assert received == ids  # every one, in order
    assert webhook.requests >= 1
    log = (tmp_path / "watcher-state.log").read_text()
    assert "sink webhook failed" in log
    assert sorted(_check_syslog(m)["event"]["id"] for m in syslog.messages) == sorted(ids)


def test_syslog_over_tcp_frames_each_message_by_its_length():
    receiver = SyslogTcp()
    alerts = [{"event": {"created": "2026-11-30T01:02:03.456Z", "id": f"x-{i}"},
               "anomalyze": {"severity": severity}, "message": "line\nbreak é"}
              for i, severity in enumerate(["Low", "Critical", "High"])]
    sink = SyslogSink(f"tcp://127.0.0.1:{receiver.port}")
    try:
        sink.send([orjson.dumps(alert) + b"\n" for alert in alerts])
        poll(lambda: len(receiver.messages) == 3, "three messages", deadline=10)
    finally:
        sink.close()
        receiver.close()
    assert [_check_syslog(m) for m in receiver.messages] == alerts


def test_syslog_header_fields_are_printable_ascii_or_nil():
    line = orjson.dumps({"event": {"created": "2026-11-30T01:02:03.456Z"},
                         "anomalyze": {"severity": "High"}})
    message = rfc5424_message(line, hostname="bad host\u00e9", procid="")
    match = RFC5424.fullmatch(message)
    assert match and match["hostname"] == b"badhost" and match["procid"] == b"-"
    assert match["pri"] == b"131"


def test_a_syslog_receiver_that_refuses_tcp_raises_so_the_batch_is_retried():
    port = free_port()
    sink = SyslogSink(f"tcp://127.0.0.1:{port}", timeout=2)
    with pytest.raises(OSError):
        sink.send([b'{"anomalyze": {"severity": "Low"}}\n'])
    sink.close()
    with socket.socket():  # the port is still free: nothing was left listening
        pass
