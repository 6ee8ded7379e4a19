# strata_library(NAME <name> SRCS <files...> [DEPS <targets...>] [PUBLIC_DEPS <targets...>])
#   One library per top-level folder. Headers are included as "<folder>/<file>.h" from the
#   source root. DEPS link PRIVATE (the default habit); PUBLIC_DEPS only when a public header
#   exposes the dependency's types.
function(strata_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(strata::${ARG_NAME} ALIAS ${ARG_NAME})
  target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} PUBLIC ${ARG_PUBLIC_DEPS})
  target_compile_options(${ARG_NAME} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
endfunction()

# strata_test(NAME <name> SRCS <files...> [DEPS <targets...>] [LABELS unit|integration|e2e|gpu|fuzz]
#             [TIMEOUT <seconds>])
#   A GoogleTest binary registered with ctest under its labels (default: unit).
function(strata_test)
  # UCX_RACE_RETRY: the test runs several UCX workers in one process; a run that dies of UCX
  # 1.13's async-handler race (cmake/ucx_race_retry.sh) runs once more.
  cmake_parse_arguments(ARG "UCX_RACE_RETRY" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(ARG_UCX_RACE_RETRY)
    add_test(NAME ${ARG_NAME}
      COMMAND bash ${PROJECT_SOURCE_DIR}/cmake/ucx_race_retry.sh $<TARGET_FILE:${ARG_NAME}>)
  else()
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "STRATA_SOURCE_DIR=${PROJECT_SOURCE_DIR};STRATA_BINARY_DIR=${PROJECT_BINARY_DIR};STRATA_TEST_ASSETS=${PROJECT_SOURCE_DIR}/.cache/test-assets")
endfunction()
