// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_events.h"

#include <time.h>

#include "agent/approval_blast.h"
#include "audit/json_escape.h"
#include "audit/record.h"

namespace dbwarden::agent {
namespace {

void field(const char* key, std::string_view value, std::string& out) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
  audit::append_json_string(value, out);
}

}  // namespace

std::string ApprovalEvents::format(const approvals::Event& e, int64_t unix_ns) {
  std::string out = "{\"time\":\"";
  audit::append_rfc3339_nanos(unix_ns, out);
  out.append("\",\"dbwarden.record_type\":\"approval\"");
  field("dbwarden.approval.event", e.kind, out);
  out.append(",\"dbwarden.approval.request_id\":" + std::to_string(e.id));
  field("dbwarden.policy.rule", e.rule, out);
  if (!e.by.empty()) field("dbwarden.approval.by", e.by, out);
  if (!e.reason.empty()) field("dbwarden.approval.reason", e.reason, out);
  if (!e.channel.empty()) field("dbwarden.approval.channel", e.channel, out);
  if (e.grant_ns != 0) {
    out.append(",\"dbwarden.approval.grant_seconds\":" +
               std::to_string(e.grant_ns / 1'000'000'000));
  }
  if (e.request != nullptr) {
    const approvals::RequestSpec& r = *e.request;
    const approvals::Requester& w = r.who;
    field("db.user", w.db_user, out);
    field("db.namespace", w.database, out);
    if (!w.application_name.empty()) {
      field("db.client.application_name", w.application_name, out);
    }
    if (!w.client_address.empty()) {
      field("client.address", w.client_address, out);
      if (w.client_port != 0) out.append(",\"client.port\":" + std::to_string(w.client_port));
    }
    if (w.pid != 0) {
      out.append(",\"client.process.pid\":" + std::to_string(w.pid));
      if (!w.command.empty()) field("client.process.command", w.command, out);
      field("client.process.executable.path", w.executable, out);
      out.append(",\"client.user.id\":" + std::to_string(w.uid));
      if (!w.user_name.empty()) field("client.user.name", w.user_name, out);
      if (w.login_uid != approvals::kUnknownId) {
        out.append(",\"dbwarden.login_uid\":" + std::to_string(w.login_uid));
        if (!w.login_user.empty()) field("dbwarden.login_user", w.login_user, out);
      }
      if (!w.unit.empty()) field("dbwarden.client.systemd_unit", w.unit, out);
      if (!w.container.empty()) field("container.id", w.container, out);
    }
    if (e.kind == "requested") {
      field("db.query.text", r.text, out);
      field("db.operation.name", r.operation, out);
      char fp[17];
      snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(r.fingerprint));
      field("dbwarden.fingerprint", fp, out);
      out.append(",\"dbwarden.approval.needed\":" + std::to_string(r.approvals));
      out.append(",\"dbwarden.approval.timeout_seconds\":" +
                 std::to_string(r.timeout_ns / 1'000'000'000));
      if (!r.tables.empty()) {
        out.append(",\"dbwarden.collections\":[");
        for (size_t i = 0; i < r.tables.size(); ++i) {
          if (i) out.push_back(',');
          audit::append_json_string(r.tables[i], out);
        }
        out.push_back(']');
      }
      if (!r.why.empty()) field("dbwarden.approval.why", r.why, out);
      if (r.ran_before >= 0) {
        out.append(",\"dbwarden.approval.ran_before\":");
        out.append(r.ran_before ? "true" : "false");
      }
      out.append(",\"dbwarden.approval.approved_before\":" + std::to_string(r.approved_before));
      if (r.blast_rows >= 0) {
        out.append(",\"dbwarden.approval.blast_radius.rows\":" + std::to_string(r.blast_rows));
        if (!r.blast_via.empty()) field("dbwarden.approval.blast_radius.via", r.blast_via, out);
      } else if (!r.blast_unavailable.empty()) {
        field("dbwarden.approval.blast_radius.unavailable", r.blast_unavailable, out);
      }
    }
  }
  if (!e.status_code.empty()) field("db.response.status_code", e.status_code, out);
  if (e.rows >= 0) out.append(",\"db.response.returned_rows\":" + std::to_string(e.rows));
  out.push_back('}');
  return out;
}

void ApprovalEvents::on_approval_event(const approvals::Event& e) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::string record = format(e, int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
  std::lock_guard<std::mutex> lock(mu_);
  if (queued_.size() >= max_queued_) {
    ++dropped_;
    return;
  }
  queued_.push_back(std::move(record));
}

void ApprovalEvents::drain(audit::JsonlWriter& to) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_.empty()) return;
    draining_.swap(queued_);
  }
  for (const std::string& r : draining_) to.on_other_record(r);
  draining_.clear();
}

uint64_t ApprovalEvents::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace dbwarden::agent
