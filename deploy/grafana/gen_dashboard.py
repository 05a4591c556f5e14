#!/usr/bin/env python3
"""Writes apksift-dashboard.json (Grafana 9+ dashboard for the metrics of
`apksift serve` and the Pushgateway batch jobs). Edit here, then run:
    python3 deploy/grafana/gen_dashboard.py > deploy/grafana/apksift-dashboard.json
"""
import json

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = 'job=~"$job", instance=~"$instance"'
# Endpoint classes of the latency alerts (deploy/prometheus/alerts.yml).
LOOKUP = r'endpoint=~"/v1/search|/v1/scan/fingerprint|/v1/samples/\\{key\\}", method=~"GET|POST"'
UPLOAD = 'endpoint=~"/v1/scan|/v1/samples/apk", method="POST"'


def ts(title, targets, unit="short", w=12, h=8, desc=""):
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                    for i, (e, l) in enumerate(targets)],
    }


def stat(title, expr, unit="short", w=4, h=4, legend=""):
    return {
        "type": "stat",
        "title": title,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "targets": [{"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A"}],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


panels = [
    row("Service"),
    stat("Up", f'sum(up{{{SEL}}})', legend="targets up"),
    stat("Requests/s", f'sum(rate(apksift_http_requests_total{{{SEL}}}[1m]))', "reqps"),
    stat("5xx ratio", f'sum(rate(apksift_http_requests_total{{{SEL}, status="5xx"}}[5m])) / sum(rate(apksift_http_requests_total{{{SEL}}}[5m]))', "percentunit"),
    stat("p99 /v1/search", f'histogram_quantile(0.99, sum by (le) (rate(apksift_http_request_duration_seconds_bucket{{{SEL}, endpoint="/v1/search"}}[5m])))', "s"),
    stat("p99 /v1/scan", f'histogram_quantile(0.99, sum by (le) (rate(apksift_http_request_duration_seconds_bucket{{{SEL}, endpoint="/v1/scan"}}[5m])))', "s"),
    stat("Uptime", f'min(apksift_uptime_seconds{{{SEL}}})', "s"),
    ts("Requests/s by endpoint and status", [
        (f'sum by (endpoint, status) (rate(apksift_http_requests_total{{{SEL}}}[1m]))', "{{endpoint}} {{status}}")], "reqps"),
    ts("Latency p50 / p99 by endpoint (alert lines: lookups 95 ms, APK uploads 500 ms)", [
        (f'histogram_quantile(0.5, sum by (le, endpoint) (rate(apksift_http_request_duration_seconds_bucket{{{SEL}}}[5m])))', "p50 {{endpoint}}"),
        (f'histogram_quantile(0.99, sum by (le, endpoint) (rate(apksift_http_request_duration_seconds_bucket{{{SEL}}}[5m])))', "p99 {{endpoint}}"),
        ("vector(0.095)", "95 ms (lookups)"),
        ("vector(0.5)", "500 ms (scan, APK upload)")], "s",
        desc="Alert thresholds per endpoint class (deploy/prometheus/alerts.yml): ApksiftHighLatencyP99 at 95 ms for "
             "lookups (/v1/search, /v1/scan/fingerprint, GET /v1/samples/{key}), ApksiftScanHighLatencyP99 at 500 ms "
             "for APK uploads (/v1/scan, /v1/samples/apk), whose time is mostly reading and fingerprinting the APK."),
    ts("Share of requests within their alert threshold (lookups 95 ms, scans 500 ms)", [
        (f'sum(rate(apksift_http_request_duration_seconds_bucket{{{SEL}, {LOOKUP}, le="0.095"}}[5m])) / sum(rate(apksift_http_request_duration_seconds_count{{{SEL}, {LOOKUP}}}[5m]))', "lookups < 95 ms"),
        (f'sum(rate(apksift_http_request_duration_seconds_bucket{{{SEL}, {UPLOAD}, le="0.5"}}[5m])) / sum(rate(apksift_http_request_duration_seconds_count{{{SEL}, {UPLOAD}}}[5m]))', "scans < 500 ms")],
        "percentunit"),
    ts("Errors and refused requests", [
        (f'sum by (status) (rate(apksift_http_requests_total{{{SEL}, status=~"4xx|5xx"}}[5m]))', "{{status}}"),
        (f'sum by (reason) (rate(apksift_rejected_requests_total{{{SEL}}}[5m]))', "refused: {{reason}}")], "reqps"),
    ts("In flight, free scan slots", [
        (f'sum by (instance) (apksift_http_requests_in_flight{{{SEL}}})', "in flight {{instance}}"),
        (f'sum by (instance) (apksift_scan_slots_free{{{SEL}}})', "free scan slots {{instance}}")]),
    row("Scans and searches"),
    ts("Scan stage p99 and p50 (read_body, fingerprint, search: wall clock, one after the other)", [
        (f'histogram_quantile(0.99, sum by (le, stage) (rate(apksift_scan_stage_duration_seconds_bucket{{{SEL}, stage=~"read_body|fingerprint|search"}}[5m])))', "p99 {{stage}}"),
        (f'histogram_quantile(0.5, sum by (le, stage) (rate(apksift_scan_stage_duration_seconds_bucket{{{SEL}, stage=~"read_body|fingerprint|search"}}[5m])))', "p50 {{stage}}")], "s"),
    ts("Fingerprint work per scan, mean (unzip, hash: busy time summed over threads)", [
        (f'sum by (stage) (rate(apksift_scan_stage_duration_seconds_sum{{{SEL}, stage=~"unzip|hash|fingerprint"}}[5m])) / sum by (stage) (rate(apksift_scan_stage_duration_seconds_count{{{SEL}, stage=~"unzip|hash|fingerprint"}}[5m]))', "{{stage}}")], "s",
        desc="unzip = ZIP structures and inflating, hash = SHA-256 and TLSH of the whole file and the components. "
             "Large APKs are fingerprinted on several threads, so unzip + hash above fingerprint (wall clock) "
             "means the work ran in parallel; their sum is the CPU a scan costs."),
    ts("Verdicts/s", [(f'sum by (verdict) (rate(apksift_scans_total{{{SEL}}}[5m]))', "{{verdict}}")], "ops"),
    ts("Queries searched/s and rows written/s", [
        (f'sum by (api) (rate(apksift_search_queries_total{{{SEL}}}[5m]))', "searched ({{api}})"),
        (f'sum by (api) (rate(apksift_inserted_rows_total{{{SEL}}}[5m]))', "inserted ({{api}})"),
        (f'sum by (api) (rate(apksift_deleted_rows_total{{{SEL}}}[5m]))', "deleted ({{api}})")], "ops"),
    row("Store"),
    ts("Rows", [
        (f'max by (instance) (apksift_store_rows{{{SEL}}})', "live rows {{instance}}"),
        (f'max by (instance) (apksift_store_memtable_rows{{{SEL}}})', "memtable rows {{instance}}")]),
    ts("Segments and bytes", [
        (f'max by (instance) (apksift_store_segments{{{SEL}}})', "segments {{instance}}"),
        (f'max by (instance) (apksift_store_segment_bytes{{{SEL}}})', "segment bytes {{instance}}"),
        (f'max by (instance) (apksift_store_disk_usage_bytes{{{SEL}}})', "directory bytes {{instance}}")]),
    ts("WAL fsync latency", [
        (f'histogram_quantile(0.99, sum by (le, instance) (rate(apksift_wal_fsync_duration_seconds_bucket{{{SEL}}}[5m])))', "p99 {{instance}}"),
        (f'rate(apksift_wal_fsync_duration_seconds_sum{{{SEL}}}[5m]) / rate(apksift_wal_fsync_duration_seconds_count{{{SEL}}}[5m])', "mean {{instance}}")], "s"),
    ts("Replica lag (alert at 30 s)", [(f'apksift_replica_lag_seconds{{{SEL}}}', "{{instance}}")], "s"),
    ts("Flushes and merges/min", [
        (f'60 * rate(apksift_store_flushes_total{{{SEL}}}[5m])', "flushes {{instance}}"),
        (f'60 * rate(apksift_store_merges_total{{{SEL}}}[5m])', "merges {{instance}}"),
        (f'apksift_store_background_error{{{SEL}}}', "background error {{instance}}")]),
    ts("Disk free (alert under 10 %)", [
        (f'apksift_store_filesystem_avail_bytes{{{SEL}}} / apksift_store_filesystem_size_bytes{{{SEL}}}', "{{instance}}")], "percentunit"),
    row("Process"),
    ts("CPU (cores)", [(f'rate(process_cpu_seconds_total{{{SEL}}}[1m])', "{{instance}}")]),
    ts("Memory", [(f'process_resident_memory_bytes{{{SEL}}}', "RSS {{instance}}")], "bytes"),
    ts("Threads and file descriptors", [
        (f'process_threads{{{SEL}}}', "threads {{instance}}"),
        (f'process_open_fds{{{SEL}}}', "open fds {{instance}}")]),
    {"type": "table", "title": "Build", "datasource": DS, "gridPos": {"w": 12, "h": 6},
     "targets": [{"datasource": DS, "expr": f'apksift_build_info{{{SEL}}}', "format": "table", "instant": True, "refId": "A"}]},
    row("Batch jobs (Pushgateway)"),
    ts("Hours since the last successful run (alert: ingest over 48 h)", [
        ('(time() - apksift_job_last_success_timestamp_seconds) / 3600', "{{job}}")], "h"),
    ts("Last run: duration and success", [
        ("apksift_job_duration_seconds", "duration {{job}}"),
        ("apksift_job_success", "success {{job}}")]),
    ts("Last run: items", [
        ("apksift_ingest_samples_total", "ingest samples"),
        ("apksift_ingest_errors_total", "ingest errors"),
        ("apksift_import_stored_total", "import stored"),
        ("apksift_import_skipped_total", "import skipped")]),
]

# lay panels out left to right, rows full width
x = y = 0
rowh = 0
for i, p in enumerate(panels):
    p["id"] = i + 1
    w, h = p["gridPos"]["w"], p["gridPos"]["h"]
    if p["type"] == "row" or x + w > 24:
        y += rowh
        x, rowh = 0, 0
    p["gridPos"].update({"x": x, "y": y})
    if p["type"] == "row":
        y += 1
        continue
    x += w
    rowh = max(rowh, h)

dash = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "apksift",
    "uid": "apksift-service",
    "description": "apksift serve (scrape job apksift) and its batch jobs (Pushgateway). Metric names: docs/API.md#metrics.",
    "tags": ["apksift", "prometheus"],
    "timezone": "utc",
    "schemaVersion": 38,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "DS_PROMETHEUS", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "job", "type": "query", "datasource": DS, "query": "label_values(apksift_build_info, job)",
         "refresh": 2, "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}},
        {"name": "instance", "type": "query", "datasource": DS,
         "query": 'label_values(apksift_build_info{job=~"$job"}, instance)',
         "refresh": 2, "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
