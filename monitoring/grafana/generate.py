#!/usr/bin/env python3
"""Writes nsod's Grafana dashboards (dashboards/*.json) from the panel lists below.

Edit this file, then run `python3 monitoring/grafana/generate.py`; `--check` (run by .ci/run) fails when the JSON
files differ from what this script writes. Panels use current Grafana types (timeseries, stat, heatmap, table),
a `datasource` variable, and `job` / `instance` (and `model`) filters. Expensive queries use the recording rules of
monitoring/recording_rules.yml (`nsod:...`).
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'job=~"$job",instance=~"$instance"'
SM = S + ',model=~"$model"'


def var_query(name, label, query, hide=0):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"var-{name}", "qryType": 1},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": hide,
    }


def variables(model_metric=None):
    v = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        var_query("job", "Job", "label_values(up{job=~\"nsod.*\"}, job)"),
        var_query("instance", "Instance", "label_values(up{job=~\"$job\"}, instance)"),
    ]
    if model_metric:
        v.append(var_query("model", "Model", f"label_values({model_metric}{{{S}}}, model)"))
    return v


def target(expr, legend="", ref="A", fmt=None, instant=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto", "range": not instant}
    if instant:
        t["instant"] = True
    if fmt:
        t["format"] = fmt
    return t


def panel(kind, title, targets, unit="short", w=12, h=8, desc="", **extra):
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(*t) if isinstance(t, tuple) else t for t in targets],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "_w": w,
        "_h": h,
    }
    for i, t in enumerate(p["targets"]):
        t["refId"] = chr(ord("A") + i)
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                  "showPoints": "never", "spanNulls": True}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto"}
    elif kind == "heatmap":
        for t in p["targets"]:
            t["format"] = "heatmap"
            t["legendFormat"] = "{{le}}"
        p["options"] = {"calculate": False, "yAxis": {"unit": unit}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange", "steps": 64},
                        "tooltip": {"mode": "single", "yHistogram": True}, "legend": {"show": True}}
    elif kind == "table":
        for t in p["targets"]:
            t["format"] = "table"
            t["instant"] = True
            t["range"] = False
        p["options"] = {"showHeader": True}
    p.update(extra)
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def layout(panels):
    x = y = 0
    line_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24 or p["type"] == "row":
            if x > 0:
                y += line_h
            x, line_h = 0, 0
        p["id"] = i
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_h = max(line_h, h)
        if p["type"] == "row":
            y += h
            x, line_h = 0, 0
        out.append(p)
    return out


def dashboard(uid, title, description, panels, model_metric=None):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["nsod"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables(model_metric)},
        "annotations": {"list": []},
        "links": [{"title": "nsod dashboards", "type": "dashboards", "tags": ["nsod"], "asDropdown": True}],
        "panels": layout(panels),
    }


def inference():
    return dashboard(
        "nsod-inference",
        "nsod / Inference and pipeline",
        "nsod infer: throughput, latency, detections, merging, the symbolic stage and the knowledge graph.",
        [
            row("Throughput and latency"),
            panel("stat", "Images processed", [(f'sum(increase(nsod_images_processed_total{{{S},status="success"}}[$__range]))', "images")], w=6, h=5),
            panel("stat", "Failed images", [(f'sum(increase(nsod_images_processed_total{{{S},status="error"}}[$__range])) or vector(0)', "failed")], w=6, h=5,
                  fieldConfig={"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}}, "overrides": []}),
            panel("stat", "Images in flight", [(f"sum(nsod_images_in_flight{{{S}}})", "in flight")], w=6, h=5),
            panel("stat", "Error ratio (5m)", [(f"max(nsod:image_error_ratio:rate5m{{{S}}})", "error ratio")], unit="percentunit", w=6, h=5),
            panel("timeseries", "Throughput", [(f"sum by (instance, status) (nsod:images_processed:rate5m{{{S}}})", "{{instance}} {{status}}")],
                  unit="suffix: img/s", desc="Images finished per second (recording rule nsod:images_processed:rate5m)."),
            panel("timeseries", "Latency per image (p50 / p95 / p99)", [
                (f"nsod:inference_duration_seconds:p50_5m{{{SM}}}", "p50 {{model}}"),
                (f"nsod:inference_duration_seconds:p95_5m{{{SM}}}", "p95 {{model}}"),
                (f"nsod:inference_duration_seconds:p99_5m{{{SM}}}", "p99 {{model}}"),
            ], unit="s", desc="Whole image: slicing, every model run, merging (nsod_inference_duration_seconds)."),
            panel("heatmap", "Latency distribution", [(f"sum by (le) (increase(nsod_inference_duration_seconds_bucket{{{SM}}}[$__rate_interval]))",)], unit="s", w=12),
            panel("timeseries", "Model run p95 and preprocessing mean", [
                (f"nsod:model_run_duration_seconds:p95_5m{{{SM}}}", "session.run p95 {{model}}"),
                (f"sum(rate(nsod_preprocess_duration_seconds_sum{{{S}}}[$__rate_interval])) / sum(rate(nsod_preprocess_duration_seconds_count{{{S}}}[$__rate_interval]))", "letterbox mean"),
            ], unit="s"),
            panel("timeseries", "Model busy ratio", [
                (f"nsod_model_busy_ratio{{{SM}}}", "since the run began {{model}} {{instance}}"),
                (f"sum by (model, instance) (rate(nsod_model_run_duration_seconds_sum{{{SM}}}[$__rate_interval]))", "session time per second {{model}} {{instance}}"),
            ], unit="percentunit", w=24, h=7,
                  desc="Share of the wall time the model was running (per session). Low on a GPU: the CPU stages (decode, letterbox, merge, rules, writes) do not keep it fed; try --schedule pipelined and a larger --batch."),
            row("Detections"),
            panel("timeseries", "Detections per image (mean)", [(f"nsod:detections_per_image:mean5m{{{SM}}}", "{{model}}")], w=8),
            panel("heatmap", "Confidence distribution", [(f"sum by (le) (increase(nsod_detection_confidence_bucket{{{SM}}}[$__rate_interval]))",)], unit="percentunit", w=8),
            panel("timeseries", "SAHI slices per image (mean)", [
                (f"sum(rate(nsod_sahi_slices_per_image_sum{{{S}}}[$__rate_interval])) / sum(rate(nsod_sahi_slices_per_image_count{{{S}}}[$__rate_interval]))", "slices"),
            ], w=8),
            row("Merging across slices (NMS / NMM)"),
            panel("timeseries", "NMS keep ratio", [(f"nsod:nms_keep_ratio:rate5m{{{S}}}", "{{instance}}")], unit="percentunit", w=8,
                  desc="Detections kept / detections in, over 5 minutes: low values mean heavy overlap between slices."),
            panel("timeseries", "Detections into and out of the merge", [
                (f"sum(rate(nsod_nms_input_detections_total{{{S}}}[$__rate_interval]))", "in"),
                (f"sum(rate(nsod_nms_output_detections_total{{{S}}}[$__rate_interval]))", "out"),
            ], unit="suffix: det/s", w=8),
            panel("timeseries", "Merge time p95", [(f"histogram_quantile(0.95, sum by (le) (rate(nsod_nms_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "p95")], unit="s", w=8),
            row("Symbolic stage (Prolog rules)"),
            panel("timeseries", "Stage time p95", [(f"nsod:pipeline_stage_duration_seconds:p95_5m{{{S}}}", "{{stage}}")], unit="s", w=8),
            panel("timeseries", "Prolog query time p95", [(f"nsod:prolog_query_duration_seconds:p95_5m{{{S}}}", "{{query}}")], unit="s", w=8),
            panel("stat", "Prolog query failures", [(f"sum(increase(nsod_prolog_query_failures_total{{{S}}}[$__range])) or vector(0)", "failures")], w=8),
            panel("timeseries", "Rule applications", [(f"nsod:rule_applications:rate5m{{{S}}}", "{{action}}")], unit="suffix: /s", w=12),
            panel("heatmap", "Confidence adjustments (after - before)", [(f"sum by (le) (increase(nsod_confidence_adjustment_delta_bucket{{{S}}}[$__rate_interval]))",)], w=12),
            row("Knowledge graph"),
            panel("timeseries", "Relations extracted", [(f"nsod:relationships_extracted:rate5m{{{S}}}", "{{relation}}")], unit="suffix: /s", w=8),
            panel("timeseries", "Scene graph size (mean per image)", [
                (f"sum(rate(nsod_graph_nodes_sum{{{S}}}[$__rate_interval])) / sum(rate(nsod_graph_nodes_count{{{S}}}[$__rate_interval]))", "nodes"),
                (f"sum(rate(nsod_graph_edges_sum{{{S}}}[$__rate_interval])) / sum(rate(nsod_graph_edges_count{{{S}}}[$__rate_interval]))", "edges"),
            ], w=8),
            panel("timeseries", "Graph construction p95", [(f"histogram_quantile(0.95, sum by (le) (rate(nsod_graph_construction_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "p95")], unit="s", w=8),
            row("Service (nsod serve)"),
            panel("timeseries", "Requests by route and code", [(f"sum by (route, code) (nsod:http_requests:rate5m{{{S}}})", "{{route}} {{code}}")],
                  unit="reqps", w=8, desc="nsod_http_requests_total: every answer, by route and status code."),
            panel("timeseries", "5xx ratio", [(f"max by (instance) (nsod:http_5xx_ratio:rate5m{{{S}}})", "{{instance}}")], unit="percentunit", w=8,
                  desc="Share of detection requests answered 5xx (503: shed or timed out; 500: pipeline failure). Alert NsodServe5xxRatioHigh above 5%."),
            panel("timeseries", "Request latency p99", [(f"nsod:http_request_duration_seconds:p99_5m{{{S}}}", "{{route}}")], unit="s", w=8,
                  desc="nsod_http_request_duration_seconds (exemplar: request id). Alert NsodServeLatencyHigh above 10 s."),
            panel("timeseries", "Queue depth and busy workers", [
                (f"sum(nsod_queue_depth{{{S}}})", "queued"),
                (f"avg(nsod_worker_busy_ratio{{{S}}})", "busy ratio"),
            ], w=8, desc="Requests waiting for a session worker, and the share of workers running an image."),
            panel("timeseries", "Rejected requests", [(f"sum by (reason) (nsod:requests_rejected:rate5m{{{S}}})", "{{reason}}")], unit="reqps", w=8,
                  desc="nsod_requests_rejected_total by reason: queue_full and timeout are load shedding (alert NsodServeShedding)."),
            panel("stat", "Workers", [(f"sum(nsod_workers{{{S}}})", "workers")], w=8, h=8),
            row("Tracking (nsod track)"),
            panel("timeseries", "Frames tracked", [(f"sum by (instance) (rate(nsod_frames_total{{{S}}}[$__rate_interval]))", "{{instance}}")], unit="suffix: /s", w=8,
                  desc="nsod_frames_total: frames that reached the tracker (failed frames included). Alert NsodTrackStalled when they stop while tracks are active."),
            panel("timeseries", "Active tracks", [(f"sum by (instance) (nsod_tracks_active{{{S}}})", "{{instance}}")], w=8,
                  desc="Confirmed tracks alive after the last frame (matched or lost); 0 once a sequence has finished."),
            panel("timeseries", "Tracks started and ended", [
                (f"sum(rate(nsod_tracks_started_total{{{S}}}[$__rate_interval]))", "started"),
                (f"sum by (reason) (rate(nsod_tracks_ended_total{{{S}}}[$__rate_interval]))", "ended: {{reason}}"),
            ], unit="suffix: /s", w=8, desc="Tracks confirmed, and tracks ended by reason (lost: unmatched for longer than --max-lost; finished: the sequence ended)."),
            panel("timeseries", "Frame pace and tracker update p95", [
                (f"histogram_quantile(0.95, sum by (le) (rate(nsod_frame_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "frame to frame"),
                (f"histogram_quantile(0.95, sum by (le) (rate(nsod_track_update_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "tracker update"),
            ], unit="s", w=12, desc="Time between consecutive frames leaving the tracker (the pace of the whole pipeline), and the tracker's own share."),
            panel("timeseries", "Live stream: dropped frames, lag, reconnections", [
                (f"sum by (instance) (rate(nsod_frames_dropped_total{{{S}}}[$__rate_interval]))", "dropped/s {{instance}}"),
                (f"max by (instance) (nsod_stream_lag_seconds{{{S}}})", "lag s {{instance}}"),
                (f"sum by (instance) (increase(nsod_stream_reconnects_total{{{S}}}[$__rate_interval]))", "reconnections {{instance}}"),
            ], w=12, desc="nsod track --live: frames decoded but not processed (the pipeline was behind; the newest wins), the last frame's lag from its decoding to the end of its tracking, and reconnections of the stream."),
            row("Errors and build"),
            panel("timeseries", "Errors by stage and type", [(f"sum by (stage, error_type) (nsod:errors:rate5m{{{S}}})", "{{stage}} {{error_type}}")], unit="suffix: /s", w=12),
            panel("table", "Build", [(f"nsod_build_info{{{S}}}",)], w=12),
        ],
        model_metric="nsod_inference_duration_seconds_count",
    )


def training():
    return dashboard(
        "nsod-training",
        "nsod / Training",
        "nsod train-monitor: an Ultralytics run's losses, validation metrics, learning rate, progress and process.",
        [
            row("Progress"),
            panel("stat", "Epoch", [(f"max by (model) (nsod_training_epoch{{{SM}}})", "{{model}}")], w=4, h=5),
            panel("stat", "Epochs planned", [(f"max by (model) (nsod_training_epochs_planned{{{SM}}})", "{{model}}")], w=4, h=5),
            panel("stat", "ETA", [(f"max by (model) (nsod_training_eta_seconds{{{SM}}})", "{{model}}")], unit="s", w=4, h=5),
            panel("stat", "Since last epoch", [(f"time() - max by (model) (nsod_training_last_progress_timestamp_seconds{{{SM}}})", "{{model}}")], unit="s", w=4, h=5),
            panel("stat", "mAP50", [(f'max by (model) (nsod_validation_map{{{SM},iou="0.5"}})', "{{model}}")], unit="percentunit", w=4, h=5),
            panel("stat", "Training process up", [(f"max by (model) (nsod_training_process_up{{{SM}}})", "{{model}}")], w=4, h=5,
                  desc="Wrap mode only (nsod train-monitor RUN -- yolo train ...)."),
            row("Losses and validation"),
            panel("timeseries", "Loss by component", [(f"nsod_training_loss{{{SM}}}", "{{model}} {{component}}")]),
            panel("timeseries", "Total training loss", [(f"nsod:training_loss:train_sum{{{SM}}}", "{{model}}")]),
            panel("timeseries", "Validation mAP", [(f"nsod_validation_map{{{SM}}}", "{{model}} mAP@{{iou}}")], unit="percentunit"),
            panel("timeseries", "Validation precision and recall", [
                (f"nsod_validation_precision{{{SM}}}", "{{model}} precision"),
                (f"nsod_validation_recall{{{SM}}}", "{{model}} recall"),
            ], unit="percentunit"),
            row("Schedule and checkpoints"),
            panel("timeseries", "Learning rate", [(f"nsod_learning_rate{{{SM}}}", "{{model}} {{param_group}}")], w=8),
            panel("timeseries", "Epoch duration", [(f"nsod_training_epoch_duration_seconds{{{SM}}}", "{{model}}")], unit="s", w=8),
            panel("stat", "Checkpoint saves", [(f"sum by (model, kind) (nsod_checkpoint_saves_total{{{SM}}})", "{{model}} {{kind}}")], w=8),
            row("Training process"),
            panel("timeseries", "Process CPU", [(f"rate(nsod_training_process_cpu_seconds_total{{{SM}}}[$__rate_interval])", "{{model}}")], unit="percentunit", w=8,
                  desc="CPU seconds per second of the training command and its children (1 = one core)."),
            panel("timeseries", "Process memory", [(f"nsod_training_process_resident_memory_bytes{{{SM}}}", "{{model}}")], unit="bytes", w=8),
            panel("table", "Run", [(f"nsod_training_info{{{SM}}}",)], w=8),
        ],
        model_metric="nsod_training_epoch",
    )


def system():
    return dashboard(
        "nsod-system",
        "nsod / System and GPU",
        "Host, nsod process and NVIDIA GPU metrics as nsod reports them (GPU panels are empty without an NVIDIA driver).",
        [
            row("Targets"),
            panel("stat", "Targets up", [('up{job=~"$job",instance=~"$instance"}', "{{job}} {{instance}}")], w=16, h=5),
            panel("stat", "Alerts firing", [('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")], w=8, h=5),
            row("Host"),
            panel("timeseries", "CPU usage", [(f"nsod_system_cpu_usage_ratio{{{S}}}", "{{instance}}")], unit="percentunit", w=8),
            panel("timeseries", "Memory", [
                (f"nsod_system_memory_used_bytes{{{S}}}", "used {{instance}}"),
                (f"nsod_system_memory_available_bytes{{{S}}}", "available {{instance}}"),
            ], unit="bytes", w=8),
            panel("timeseries", "nsod disk I/O", [
                (f"rate(nsod_disk_read_bytes_total{{{S}}}[$__rate_interval])", "read {{instance}}"),
                (f"rate(nsod_disk_written_bytes_total{{{S}}}[$__rate_interval])", "written {{instance}}"),
            ], unit="Bps", w=8),
            row("nsod process"),
            panel("timeseries", "Process CPU", [(f"rate(process_cpu_seconds_total{{{S}}}[$__rate_interval])", "{{job}} {{instance}}")], unit="percentunit", w=8),
            panel("timeseries", "Process memory (RSS)", [(f"process_resident_memory_bytes{{{S}}}", "{{job}} {{instance}}")], unit="bytes", w=8),
            panel("stat", "Uptime", [(f"time() - process_start_time_seconds{{{S}}}", "{{job}} {{instance}}")], unit="s", w=8),
            row("GPU"),
            panel("timeseries", "GPU utilisation", [(f"nsod_gpu_utilization_ratio{{{S}}}", "GPU {{gpu}} {{instance}}")], unit="percentunit", w=6),
            panel("timeseries", "GPU memory used", [(f"nsod_gpu_memory_used_bytes{{{S}}} / nsod_gpu_memory_total_bytes{{{S}}}", "GPU {{gpu}} {{instance}}")], unit="percentunit", w=6),
            panel("timeseries", "GPU temperature", [(f"nsod_gpu_temperature_celsius{{{S}}}", "GPU {{gpu}} {{instance}}")], unit="celsius", w=6),
            panel("timeseries", "GPU power", [(f"nsod_gpu_power_watts{{{S}}}", "GPU {{gpu}} {{instance}}")], unit="watt", w=6),
        ],
    )


def main():
    check = "--check" in sys.argv[1:]
    out = HERE / "dashboards"
    stale = []
    for name, dash in [("nsod-inference.json", inference()), ("nsod-training.json", training()), ("nsod-system.json", system())]:
        text = json.dumps(dash, indent=2, ensure_ascii=False) + "\n"
        path = out / name
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.exit("dashboards differ from monitoring/grafana/generate.py (run it and commit): " + ", ".join(stale))


if __name__ == "__main__":
    main()
