// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden steering status|mark-down|detach [--steer-pin-dir DIR]`: the
// pinned steering state of enforce mode, from outside the proxy. mark-down is
// for the unit's ExecStopPost= and for a watchdog that finds the proxy alive
// but unhealthy (a dead proxy needs nothing: the kernel drops its sockets).
#pragma once

namespace dbwarden::agent {

int steering_main(int argc, const char* const* argv);  // argv[0] is "steering"

}  // namespace dbwarden::agent
