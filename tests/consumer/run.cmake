# Driver of the ctest install.find_package_consumer, run as `cmake -P`:
#   1. builds the loom library target (so the test does not depend on what
#      was built before it),
#   2. installs the loom build tree into a fresh prefix under WORK_DIR,
#   3. configures tests/consumer against that prefix (CMAKE_PREFIX_PATH),
#      builds it and runs it.
# Any failing step fails the test, with the step's output in the log.
#
# Inputs (-D): LOOM_BINARY_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, and optionally
# CONFIG (build type), GENERATOR, CXX_COMPILER.
cmake_minimum_required(VERSION 3.20)

foreach(var LOOM_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()

set(config_args "")
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()

function(step what)
  message(STATUS "consumer test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "consumer test: ${what} failed (${rc}):\n  ${cmd}")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")

step("building the loom library" ${CMAKE_COMMAND} --build "${LOOM_BINARY_DIR}" --target loom ${config_args})
step("installing loom into ${prefix}" ${CMAKE_COMMAND} --install "${LOOM_BINARY_DIR}" --prefix "${prefix}" ${config_args})

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${build}" "-DCMAKE_PREFIX_PATH=${prefix}"
                   "-DEXPECTED_LOOM_PREFIX=${prefix}")
if(GENERATOR)
  list(APPEND configure_args -G "${GENERATOR}")
endif()
if(CONFIG)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
step("configuring the consumer with find_package(loom)" ${CMAKE_COMMAND} ${configure_args})
step("building the consumer" ${CMAKE_COMMAND} --build "${build}" ${config_args})

set(exe "${build}/loom_consumer")
if(CONFIG AND EXISTS "${build}/${CONFIG}/loom_consumer")  # multi-config generators
  set(exe "${build}/${CONFIG}/loom_consumer")
endif()
step("running the consumer" "${exe}" "${build}")
