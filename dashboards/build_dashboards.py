#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the Grafana dashboards in dashboards/grafana/ (the JSON files are committed).

The panels are declared here once so that the dashboards share one datasource variable,
one set of label variables and one style; edit this file and run it, then commit both.
`--check` exits 1 when a committed file differs from what this script would write.
Stdlib only (Debian /usr/bin/python3).
"""

import json
import os
import sys

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grafana")
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}

# Label filters every statement query carries; the histogram and the gauge only have
# db_system (metrics/exporter.h), so their panels filter on that alone.
STMT = 'instance=~"$instance", db_system=~"$db_system", db_namespace=~"$db_namespace", ' \
       'db_user=~"$db_user"'
SYS = 'instance=~"$instance", db_system=~"$db_system"'
INST = 'instance=~"$instance"'
# A failed statement: status_code (PostgreSQL's SQLSTATE, the MySQL/MariaDB error number, as
# OpenTelemetry's db.response.status_code) neither success ("00000" on every system), nor
# unknown (empty), nor the overflow bucket.
ERR = 'status_code!~"00000||__other__"'
# PostgreSQL: insufficient_privilege and class 28 (invalid authorization specification);
# MySQL/MariaDB: access denied to a database or user (1044, 1045, 1698), command denied on a
# table or column (1142, 1143), privilege needed (1227), routine denied (1370).
AUTHZ = 'status_code=~"42501|28...|1044|1045|1698|1142|1143|1227|1370"'
DDL = 'operation=~"CREATE|ALTER|DROP|GRANT|REVOKE|TRUNCATE|COMMENT|SECURITY"'
# The rule a learn-mode decision names (policy/policy.h kNovelFingerprintRule).
NOVEL = "learn:novel_fingerprint"


def label_var(name, label, metric, flt, doc):
    query = f"label_values({metric}{{{flt}}}, {label})" if flt else \
        f"label_values({metric}, {label})"
    return {
        "name": name, "label": label, "description": doc, "type": "query",
        "datasource": DS, "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2, "regex": "", "sort": 1, "hide": 0,
        "multi": True, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def templating(statement_vars=True):
    out = [{
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "regex": "", "hide": 0, "refresh": 1, "options": [],
        "current": {}, "description": "Prometheus that scrapes the dbwarden agents",
    }, label_var("instance", "instance", "dbwarden_build_info", "", "Agent (scrape target)")]
    if statement_vars:
        out += [
            label_var("db_system", "db_system", "dbwarden_statements_total",
                      'instance=~"$instance"', "Database system (postgresql, mysql)"),
            label_var("db_namespace", "db_namespace", "dbwarden_statements_total",
                      'instance=~"$instance", db_system=~"$db_system"', "Database"),
            label_var("db_user", "db_user", "dbwarden_statements_total",
                      'instance=~"$instance", db_system=~"$db_system", '
                      'db_namespace=~"$db_namespace"', "Database user"),
        ]
    return {"list": out}


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self):
        self.panels, self.x, self.y, self.row_h, self.next_id = [], 0, 0, 0, 1

    def row(self, title):
        self._newline()
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def targets(queries):
    out = []
    for i, (expr, legend) in enumerate(queries):
        t = {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "range": True,
             "editorMode": "code", "legendFormat": legend or "__auto"}
        out.append(t)
    return out


def timeseries(title, queries, unit="short", desc="", stack=False):
    return {
        "type": "timeseries", "title": title, "description": desc, "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {"defaults": {
            "unit": unit, "min": 0,
            "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                       "showPoints": "never", "spanNulls": False,
                       "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
        }, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["mean", "max", "lastNotNull"], "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title, expr, unit="short", desc="", thresholds=None):
    steps = [{"color": "green", "value": None}] + [
        {"color": c, "value": v} for v, c in (thresholds or [])]
    return {
        "type": "stat", "title": title, "description": desc, "datasource": DS,
        "targets": targets([(expr, "")]),
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute",
                                                                  "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto",
                    "justifyMode": "auto", "orientation": "auto"},
    }


def table(title, expr, desc="", unit="short"):
    t = targets([(expr, "")])
    t[0].update({"instant": True, "range": False, "format": "table"})
    return {
        "type": "table", "title": title, "description": desc, "datasource": DS, "targets": t,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    }


def dashboard(uid, title, desc, layout, statement_vars=True):
    return {
        "uid": uid, "title": title, "description": desc, "tags": ["dbwarden"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "graphTooltip": 1, "timezone": "browser", "refresh": "30s", "liveNow": False,
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {},
        "fiscalYearStartMonth": 0, "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "dbwarden", "type": "dashboards", "tags": ["dbwarden"],
                   "asDropdown": True, "includeVars": True, "keepTime": True, "icon":
                   "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": templating(statement_vars), "panels": layout.panels,
    }


RI = "$__rate_interval"


def overview():
    L = Layout()
    L.add(stat("Statements / s", f"sum(rate(dbwarden_statements_total{{{STMT}}}[{RI}]))",
               "reqps"), 6, 4)
    L.add(stat("Failed statements", f"sum(rate(dbwarden_statements_total{{{STMT}, {ERR}}}[{RI}]))"
               f" / sum(rate(dbwarden_statements_total{{{STMT}}}[{RI}]))", "percentunit",
               "Share of statements that failed (a SQLSTATE other than 00000, a MySQL error "
               "number)", [(0.01, "orange"), (0.1, "red")]), 6, 4)
    L.add(stat("p99 latency", "histogram_quantile(0.99, sum by (le) (rate("
               f"dbwarden_statement_duration_seconds_bucket{{{SYS}}}[{RI}])))", "s"), 6, 4)
    L.add(stat("Active connections", f"sum(dbwarden_connections_active{{{SYS}}})"), 6, 4)
    L.row("Traffic")
    L.add(timeseries("Statements / s by database and operation",
                     [(f"sum by (db_namespace, operation) (rate(dbwarden_statements_total"
                       f"{{{STMT}}}[{RI}]))", "{{db_namespace}} {{operation}}")],
                     "reqps", stack=True), 12, 8)
    # A SQLSTATE's class is its first two characters; a MySQL error number is its own class.
    L.add(timeseries("Errors / s by class",
                     [("sum by (class) (label_replace(rate(dbwarden_statements_total"
                       f"{{{STMT}, {ERR}, db_system=\"postgresql\"}}[{RI}]), \"class\", \"$1\", "
                       "\"status_code\", \"(..).*\") or label_replace(rate("
                       f"dbwarden_statements_total{{{STMT}, {ERR}, db_system!=\"postgresql\"}}"
                       f"[{RI}]), \"class\", \"$1\", \"status_code\", \"(.*)\"))",
                       "class {{class}}")],
                     "reqps", "PostgreSQL: the SQLSTATE class, e.g. 42 syntax or access rule "
                     "violation, 22 data exception, 23 integrity constraint violation. MySQL "
                     "and MariaDB: the error number, e.g. 1146 no such table, 1064 syntax "
                     "error", stack=True), 12, 8)
    L.row("Latency and connections")
    L.add(timeseries("Statement latency", [
        (f"histogram_quantile({q}, sum by (db_system, le) (rate("
         f"dbwarden_statement_duration_seconds_bucket{{{SYS}}}[{RI}])))",
         f"p{int(q * 100)} {{{{db_system}}}}") for q in (0.5, 0.95, 0.99)], "s",
        "From the statement's first request byte to its completion, per database system"),
        12, 8)
    L.add(timeseries("Active connections", [
        (f"sum by (instance, db_system) (dbwarden_connections_active{{{SYS}}})",
         "{{instance}} {{db_system}}")]), 12, 8)
    return dashboard("dbwarden-overview", "dbwarden / Overview",
                     "Statement traffic, errors, latency and connections seen by dbwarden", L)


def databases_users():
    L = Layout()
    L.row("By database")
    L.add(timeseries("Statements / s by database", [
        (f"sum by (db_system, db_namespace) (rate(dbwarden_statements_total{{{STMT}}}[{RI}]))",
         "{{db_system}} {{db_namespace}}")], "reqps", stack=True), 12, 8)
    L.add(timeseries("Failed statements / s by database", [
        (f"sum by (db_system, db_namespace) (rate(dbwarden_statements_total"
         f"{{{STMT}, {ERR}}}[{RI}]))", "{{db_system}} {{db_namespace}}")], "reqps"), 12, 8)
    L.row("By user")
    L.add(timeseries("Statements / s by user", [
        (f"sum by (db_user) (rate(dbwarden_statements_total{{{STMT}}}[{RI}]))", "{{db_user}}")],
        "reqps", stack=True), 12, 8)
    L.add(timeseries("Failed statements / s by user", [
        (f"sum by (db_user) (rate(dbwarden_statements_total{{{STMT}, {ERR}}}[{RI}]))",
         "{{db_user}}")], "reqps"), 12, 8)
    L.add(timeseries("Operations / s by user", [
        (f"sum by (db_user, operation) (rate(dbwarden_statements_total{{{STMT}}}[{RI}]))",
         "{{db_user}} {{operation}}")], "reqps", stack=True), 12, 8)
    L.add(table("Statements in the time range by database, user and operation",
                "sort_desc(sum by (db_system, db_namespace, db_user, operation) "
                f"(increase(dbwarden_statements_total{{{STMT}}}[$__range])))"), 12, 8)
    return dashboard("dbwarden-databases-users", "dbwarden / Databases and users",
                     "Statement traffic and failures per database and per database user", L)


def security():
    L = Layout()
    L.add(timeseries("Failed statements / s by status code", [
        (f"sum by (status_code) (rate(dbwarden_statements_total{{{STMT}, {ERR}}}[{RI}]))",
         "{{status_code}}")], "reqps", stack=True), 12, 8)
    L.add(timeseries("Privilege and authorization failures / s by user", [
        (f"sum by (db_namespace, db_user, status_code) (rate(dbwarden_statements_total"
         f"{{{STMT}, {AUTHZ}}}[{RI}]))", "{{db_user}}@{{db_namespace}} {{status_code}}")],
        "reqps", "Statements refused with SQLSTATE 42501 (insufficient_privilege) or class 28 "
        "(invalid authorization specification); MySQL and MariaDB errors 1044, 1045, 1698 "
        "(access denied), 1142, 1143 (command denied), 1227 (privilege needed), 1370 (routine "
        "denied). Refused logins are in the next panel"), 12, 8)
    L.add(timeseries("Failed logins / s by reason", [
        (f"sum by (instance, reason) (rate(dbwarden_login_failures_total{{{INST}}}[{RI}]))",
         "{{instance}} {{reason}}")],
        "reqps", "Logins the server refused (PostgreSQL): authentication = SQLSTATE class 28 "
        "(wrong password, no pg_hba.conf entry); other = unknown database, too many "
        "connections, ..."), 12, 8)
    L.add(timeseries("Schema and privilege changes / s by user", [
        (f"sum by (db_namespace, db_user, operation) (rate(dbwarden_statements_total"
         f"{{{STMT}, {DDL}}}[{RI}]))", "{{db_user}}@{{db_namespace}} {{operation}}")],
        "reqps", "DDL, GRANT and REVOKE statements, successful or not"), 12, 8)
    L.add(table("Failures in the time range by user and status code",
                "sort_desc(sum by (db_namespace, db_user, status_code) "
                f"(increase(dbwarden_statements_total{{{STMT}, {ERR}}}[$__range])))"), 12, 8)
    L.add(timeseries("Enforcement: policy decisions / s by rule and action", [
        (f"sum by (rule, action) (rate(dbwarden_policy_decisions_total{{{INST}}}[{RI}])) "
         "or on() vector(0)", "{{rule}} {{action}}")],
        "reqps", "Enforce mode: statements the policy judged, by the deciding rule (empty: no "
        "rule matched) and action (allow, block, log). 0 in observe mode"), 12, 8)
    L.add(timeseries("Enforcement: state and steered connections", [
        (f"max by (instance, state) (dbwarden_enforcement_state{{{INST}}})",
         "{{instance}} {{state}}"),
        (f"sum by (instance, transport, outcome) "
         f"(rate(dbwarden_steering_connections_total{{{INST}}}[{RI}]))",
         "{{instance}} {{transport}} {{outcome}} / s")],
        "short", "enforce_mode, proxy_alive, fail_open_configured, unsteered_connections; and new "
        "connections steered to the proxy or, with the proxy down, let through (fail_open) "
        "or refused (fail_closed)"), 12, 8)
    L.row("Masking and learn mode")
    L.add(timeseries("Masked values / s by rule and detector", [
        (f"sum by (rule, detector) (rate(dbwarden_masked_values_total{{{INST}}}[{RI}]))",
         "{{rule}} {{detector}}")],
        "ops", "Result values the proxy masked (dbwarden_masked_values_total), by mask rule and "
        "detector: email, payment_card, iban, phone, us_ssn, token, a user-defined detector, or "
        "column (a whole value under the rule's columns)", stack=True), 12, 8)
    L.add(table("Masked values in the time range by rule and detector",
                "sort_desc(sum by (rule, detector) "
                f"(increase(dbwarden_masked_values_total{{{INST}}}[$__range])))",
                "Which rules and detectors masked how many values; a detector that never "
                "fires is not listed"), 12, 8)
    L.add(timeseries("Learn mode: novel fingerprints / s by action", [
        (f"sum by (instance, action) (rate(dbwarden_policy_decisions_total{{{INST}, "
         f"rule=\"{NOVEL}\"}}[{RI}]))", "{{instance}} {{action}}")],
        "reqps", "Protect mode: statements whose fingerprint their identity never ran while "
        "learning (decisions of rule learn:novel_fingerprint), blocked or logged"), 8, 8)
    L.add(timeseries("Learn mode: learned identities and fingerprints", [
        (f"max by (instance, kind) (dbwarden_learn_learned{{{INST}}})", "{{instance}} {{kind}}")],
        "short", "The learned set (dbwarden_learn_learned): identities, and fingerprints over "
        "all identities; flat once learning has ended"), 8, 8)
    L.add(timeseries("Learn mode: fingerprints not learned and write errors / s", [
        (f"sum by (instance, cap) (rate(dbwarden_learn_not_learned_total{{{INST}}}[{RI}]))",
         "{{instance}} cap {{cap}}"),
        (f"sum by (instance) (rate(dbwarden_learn_write_errors_total{{{INST}}}[{RI}]))",
         "{{instance}} write errors")],
        "ops", "New fingerprints refused because a cap was reached (max_fingerprints_per_identity, "
        "max_fingerprints), and failed flushes of the learned set to the state directory: "
        "anything above zero means the learned set is incomplete"), 8, 8)
    return dashboard("dbwarden-security", "dbwarden / Security",
                     "Failed statements, privilege failures, schema changes, enforcement, "
                     "masking and learn mode", L)


def agent_health():
    L = Layout()
    L.add(table("Agents", f"max by (instance, version) (dbwarden_build_info{{{INST}}})",
                "Running agents and their versions (dbwarden_build_info)"), 12, 6)
    L.add(timeseries("Scrape up", [(f'up{{job="dbwarden", {INST}}}', "{{instance}}")],
                     desc="1 when Prometheus scraped the agent (job \"dbwarden\")"), 12, 6)
    L.row("Capture")
    L.add(timeseries("Capture events / s", [
        (f"sum by (instance) (rate(dbwarden_capture_events_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "ops"), 8, 8)
    L.add(timeseries("Captured, ring and bulk-skipped bytes / s", [
        (f"sum by (instance) (rate(dbwarden_capture_bytes_total{{{INST}}}[{RI}]))",
         "{{instance}} payload"),
        (f"sum by (instance) (rate(dbwarden_capture_ring_bytes_total{{{INST}}}[{RI}]))",
         "{{instance}} ring buffer"),
        (f"sum by (instance) (rate(dbwarden_capture_bulk_skipped_bytes_total{{{INST}}}[{RI}]))",
         "{{instance}} result bytes skipped by the bulk bound")], "Bps",
        "Payload copied, ring-buffer bytes read, and large-result bytes the bulk-data bound "
        "kept out of the ring (row counts stay exact)"), 8, 8)
    L.add(timeseries("Capture drops / s by reason", [
        (f"sum by (instance, reason) (rate(dbwarden_capture_dropped_total{{{INST}}}[{RI}]))",
         "{{instance}} {{reason}}")], "ops", "Events lost before userspace read them"), 8, 8)
    L.add(timeseries("Stream gaps / s", [
        (f"sum by (instance) (rate(dbwarden_capture_gaps_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "ops"), 12, 8)
    L.add(timeseries("Missed bytes / s", [
        (f"sum by (instance) (rate(dbwarden_capture_gap_bytes_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "Bps"), 12, 8)
    L.row("Protocol decoding")
    L.add(timeseries("Decoded messages / s", [
        (f"sum by (instance) (rate(dbwarden_decoder_messages_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "ops"), 12, 8)
    L.add(timeseries("Decoder errors, truncations, TLS and mid-stream joins / s", [
        (f"sum by (instance, kind) (rate(dbwarden_decoder_errors_total{{{INST}}}[{RI}]))",
         "{{instance}} {{kind}}"),
        (f"sum by (instance) (rate(dbwarden_decoder_truncated_queries_total{{{INST}}}[{RI}]))",
         "{{instance}} truncated query text"),
        (f"sum by (instance) (rate(dbwarden_decoder_encrypted_connections_total{{{INST}}}"
         f"[{RI}]))", "{{instance}} unreadable TLS connections"),
        (f"sum by (instance) (rate(dbwarden_decoder_midstream_joins_total{{{INST}}}[{RI}]))",
         "{{instance}} mid-stream joins"),
    ], "ops"), 12, 8)
    L.row("Audit trail")
    L.add(timeseries("Audit records / s", [
        (f"sum by (instance) (rate(dbwarden_audit_records_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "ops"), 8, 8)
    L.add(timeseries("Audit bytes / s", [
        (f"sum by (instance) (rate(dbwarden_audit_bytes_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "Bps"), 8, 8)
    L.add(timeseries("Audit write errors and dropped records / s", [
        (f"sum by (instance) (rate(dbwarden_audit_write_errors_total{{{INST}}}[{RI}]))",
         "{{instance}} write errors"),
        (f"sum by (instance) (rate(dbwarden_audit_dropped_total{{{INST}}}[{RI}]))",
         "{{instance}} dropped (queue full)"),
    ], "ops", "Anything above zero means statements are missing from the audit trail"), 8, 8)
    L.add(timeseries("Audit write queue", [
        (f"max by (instance) (dbwarden_audit_queue_bytes{{{INST}}})", "{{instance}}")],
        "bytes", "Formatted records waiting for the writer thread; growth means a slow disk"),
        12, 8)
    L.row("Shipping")
    L.add(timeseries("Records shipped / s by destination", [
        (f"sum by (instance, sink) (rate(dbwarden_shipping_sent_total{{{INST}}}[{RI}]))",
         "{{instance}} {{sink}}"),
        (f"sum by (instance, sink) (rate(dbwarden_shipping_dropped_total{{{INST}}}[{RI}]))",
         "{{instance}} {{sink}} dropped"),
    ], "ops", "stdout and syslog destinations; dropped means queue and spool were full"), 8, 8)
    L.add(timeseries("Shipping lag", [
        (f"max by (instance, sink) (dbwarden_shipping_lag_seconds{{{INST}}})",
         "{{instance}} {{sink}}")], "s",
        "Age of the oldest record not yet delivered (a collector outage shows here)"), 8, 8)
    L.add(timeseries("Shipping queue and spool", [
        (f"max by (instance, sink) (dbwarden_shipping_queue_bytes{{{INST}}})",
         "{{instance}} {{sink}} queue"),
        (f"max by (instance, sink) (dbwarden_shipping_spool_bytes{{{INST}}})",
         "{{instance}} {{sink}} spool"),
    ], "bytes", "Records waiting in memory and on disk"), 8, 8)
    L.add(timeseries("Statements counted under __other__ / s", [
        (f"sum by (instance) (rate(dbwarden_metrics_label_overflow_total{{{INST}}}[{RI}]))",
         "{{instance}}")], "ops", "dbwarden_statements_total hit its label-set limit"), 12, 8)
    return dashboard("dbwarden-agent-health", "dbwarden / Agent health",
                     "Capture, decoding and audit trail health of the dbwarden agents", L,
                     statement_vars=False)


def approvals():
    L = Layout()
    L.add(timeseries("Pending requests", [
        (f"max by (instance) (dbwarden_approvals_pending{{{INST}}})", "{{instance}} pending")],
        "short", "Statements held for a person's decision now (enforce mode; 0 otherwise). "
        "Each holds its client until approved, denied or timed out"), 8, 8)
    L.add(timeseries("Oldest pending request's wait", [
        (f"max by (instance) (dbwarden_approvals_oldest_pending_seconds{{{INST}}})",
         "{{instance}}")],
        "s", "How long the oldest pending request has waited; alert "
        "DbwardenApprovalPendingTooLong fires past 2 minutes"), 8, 8)
    L.add(timeseries("Decisions / s by outcome", [
        (f"sum by (outcome) (rate(dbwarden_approvals_decisions_total{{{INST}}}[{RI}]))",
         "{{outcome}}")],
        "reqps", "approved, denied (by a person, or as the agent stopped), expired (the rule's "
        "timeout), withdrawn (the client went away)", stack=True), 8, 8)
    L.add(timeseries("Time to decision by outcome", [
        (f"histogram_quantile({q}, sum by (outcome, le) (rate("
         f"dbwarden_approvals_decision_seconds_bucket{{{INST}}}[{RI}])))",
         f"p{int(q * 100)} {{{{outcome}}}}") for q in (0.5, 0.95)], "s",
        "From the request to its decision; empty while nothing is decided"), 12, 8)
    L.add(timeseries("Webhook notifications and failures / s", [
        (f"sum by (outcome) (rate(dbwarden_approvals_webhook_notifications_total{{{INST}}}"
         f"[{RI}]))", "{{outcome}}"),
        (f"sum(rate(dbwarden_approvals_webhook_failures_total{{{INST}}}[{RI}]))",
         "failed attempts")],
        "reqps", "New requests announced to the approvals webhook: delivered, gave_up, dropped "
        "(queue full), decided_first; and failed delivery attempts (each retried with backoff)"),
        12, 8)
    L.add(timeseries("Held statements / s by rule and fate", [
        (f"sum by (rule, action) (rate(dbwarden_policy_decisions_total{{{INST}, "
         f"action=~\"require_approval|approved|denied|expired|granted\"}}[{RI}])) "
         "or on() vector(0)", "{{rule}} {{action}}")],
        "reqps", "Statements of require_approval rules, by what became of them: require_approval "
        "(held; the client went away before a decision), approved (ran), denied, expired, or "
        "granted (a just-in-time grant let it through without a request). 0 in observe mode"),
        24, 8)
    L.add(timeseries("Refused approvers' requests / s by channel and reason", [
        (f"sum by (channel, reason) (rate(dbwarden_approvals_refused_total{{{INST}}}[{RI}]))",
         "{{channel}} {{reason}}")],
        "reqps", "Approvers' requests refused, by channel (cli: the approvals socket, api, web: "
        "the inbox) and reason (own_request, not_approver, unknown_request, already_decided, "
        "no_token, wrong_token, cross_site, csrf, bad_request, ...). Each is also a `refused` "
        "approval record in the audit trail (rate-bounded)"), 24, 8)
    return dashboard("dbwarden-approvals", "dbwarden / Approvals",
                     "Statements held for a person's decision (require_approval): pending "
                     "requests, decisions, time to decision, the approvals webhook", L,
                     statement_vars=False)


DASHBOARDS = {
    "dbwarden-overview.json": overview,
    "dbwarden-databases-users.json": databases_users,
    "dbwarden-security.json": security,
    "dbwarden-agent-health.json": agent_health,
    "dbwarden-approvals.json": approvals,
}


def main(argv):
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        path = os.path.join(OUT_DIR, name)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if stale:
        print("out of date (run dashboards/build_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
