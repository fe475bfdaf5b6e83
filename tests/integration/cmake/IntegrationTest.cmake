# SPDX-License-Identifier: Apache-2.0
#
# One call registers one integration test with the properties its kind needs. Test names are
# what CI and people refer to: keep them as they are.

include_guard(GLOBAL)

# dbw_integration_test(<name> [KERNEL] [TIMEOUT <seconds>] COMMAND <command> [<arg>...])
#
# KERNEL: the test needs root and the real kernel (BPF programs, private servers). It then
# exits 77 where it cannot run (not root, or the agent lacks privilege), which ctest reports
# as skipped; with DBWARDEN_REQUIRE_KERNEL_TESTS=1 in the environment the test itself turns
# that skip into a failure (pg_cluster.skip_or_fail, the kernel tests' main). It runs alone:
# it loads BPF programs and starts servers that other tests would see.
function(dbw_integration_test name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "KERNEL" "TIMEOUT" "COMMAND")
  if(ARG_UNPARSED_ARGUMENTS OR NOT ARG_COMMAND)
    message(FATAL_ERROR "dbw_integration_test(${name}): unexpected ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  add_test(NAME "${name}" COMMAND ${ARG_COMMAND})
  if(ARG_TIMEOUT)
    set_tests_properties("${name}" PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  endif()
  if(ARG_KERNEL)
    set_tests_properties("${name}" PROPERTIES SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endif()
endfunction()

# dbw_agent_test(<name> <script.py> <timeout> [<arg>...])
#
# A KERNEL test driven by a python script of this folder against the real agent:
# `python3 <script.py> --agent <dbwarden> <arg>...`. Registered only where the agent is built.
function(dbw_agent_test name script timeout)
  if(TARGET dbwarden)
    dbw_integration_test("${name}" KERNEL TIMEOUT ${timeout}
                         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/${script}
                                 --agent $<TARGET_FILE:dbwarden> ${ARGN})
  endif()
endfunction()
