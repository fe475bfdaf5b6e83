// SPDX-License-Identifier: Apache-2.0
//
// Fixed substitutes per type and encoding (value_types.cc).
#pragma once

#include <string>

#include "masking/masking.h"

namespace dbwarden::masking {

// The type's fixed substitute in `enc` into `out` (0, the epoch, the nil
// UUID, {}, empty bytes, "" for text); false for kOther (no substitute: NULL).
bool substitute(ValueType type, Encoding enc, std::string& out);

}  // namespace dbwarden::masking
