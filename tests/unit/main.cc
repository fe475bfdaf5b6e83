// SPDX-License-Identifier: Apache-2.0
//
// The one translation unit that provides Catch2's main() for unit_tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
