// SPDX-License-Identifier: Apache-2.0
//
// One audit record per statement, as one line of JSON (JSON Lines). Keys follow
// the OpenTelemetry database semantic conventions where one exists
// (https://opentelemetry.io/docs/specs/semconv/database/database-spans/), in
// this order:
//   time                        RFC 3339 UTC, 9 fractional digits, from start_ns
//   duration_us                 (end_ns - start_ns) / 1000, integer
//   connection_id
//   db.system.name, db.namespace, db.user
//   db.query.text, db.operation.name
//   db.query.summary            only if non-empty
//   db.collection.name          the first of collections, only if any
//   dbwarden.collections        JSON array of strings, only if any
//   dbwarden.fingerprint        only if non-empty
//   db.response.status_code    "00000" on success; on failure the SQLSTATE
//                               (PostgreSQL) or the error number (MySQL,
//                               MariaDB); null when the outcome is unknown
//   error.type                  the status code, only on failure
//   dbwarden.sqlstate           MySQL/MariaDB failures: the ERR's SQLSTATE
//   db.response.returned_rows   only if known
//   db.statement.name           only if non-empty
//   db.query.parameter.N        one per bound parameter (N from 0), string or null
//   network.transport           "tcp" or "unix"
//   client.address, client.port only for tcp
//   server.port, process.pid
//   db.client.application_name  only if non-empty
//   error.message               only if non-empty
//   dbwarden.query_truncated    only when true
//   dbwarden.capture_gap        only when true
//   dbwarden.statement_unresolved only when true
//   dbwarden.unbounded_write    only when true
//   dbwarden.redacted           only when true: a credential was cut out of the
//                               text, a parameter or error.message (sql/redact.h)
#pragma once

#include <cstdint>
#include <string>

#include "protocol/statement.h"

namespace dbwarden::audit {

// Appends one record, terminated by '\n', to `out`. Monotonic times become
// wall-clock time by adding realtime_offset_ns (CLOCK_REALTIME minus
// CLOCK_MONOTONIC, sampled once). A statement without a connection gets the
// fields of an empty ConnectionInfo.
void format_record(const Statement& statement, int64_t realtime_offset_ns, std::string& out);

// Appends `unix_ns` (nanoseconds since the epoch, clamped at 0) as
// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ".
void append_rfc3339_nanos(int64_t unix_ns, std::string& out);

}  // namespace dbwarden::audit
