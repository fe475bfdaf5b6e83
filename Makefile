# SPDX-License-Identifier: Apache-2.0
#
# Thin wrapper over CMake. The two commands a new user needs:
#   make run    install what is missing, build, start the agent on the local PostgreSQL
#   make test   install what is missing, build with sanitizers and fuzzers, run every test
# And: make run-enforce   the same as run, in enforce mode with the shipped guardrails
# Both need root (BPF); they re-run themselves through sudo when started as a user.

BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-test
CONFIG ?= packaging/dbwarden.conf
JOBS ?= $(shell nproc)
CMAKE_COMMON = -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++

ifeq ($(shell id -u),0)
AS_ROOT =
else
AS_ROOT = sudo --preserve-env=DBWARDEN_REQUIRE_KERNEL_TESTS
endif

.PHONY: all build deps run run-enforce test clean

all: build

build:
	cmake -S . -B $(BUILD_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target dbwarden

deps:
	$(AS_ROOT) scripts/install-deps.sh

run: deps build
	$(AS_ROOT) scripts/start-local-postgres.sh
	$(AS_ROOT) $(BUILD_DIR)/agent/dbwarden run --config $(CONFIG)

run-enforce: deps build
	$(AS_ROOT) scripts/start-local-postgres.sh
	$(AS_ROOT) $(BUILD_DIR)/agent/dbwarden run --config $(CONFIG) --mode enforce \
	  --policy packaging/policy.yaml

test: deps
	cmake -S . -B $(TEST_BUILD_DIR) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug \
	  -DDBWARDEN_SANITIZE=ON -DDBWARDEN_FUZZ=ON
	cmake --build $(TEST_BUILD_DIR) -j$(JOBS)
	cd $(TEST_BUILD_DIR) && $(AS_ROOT) ctest --output-on-failure

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR)
