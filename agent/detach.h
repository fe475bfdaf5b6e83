// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden detach [--bpf-pin-dir DIR]`: removes the pinned capture state, so
// that the programs detach and their maps are freed. Idempotent.
#pragma once

namespace dbwarden::agent {

int detach_main(int argc, const char* const* argv);  // argv[0] is "detach"

}  // namespace dbwarden::agent
