# cmake -P script behind each `fuzz` ctest: configures and builds the clang sub-build
# (tests/fuzz/standalone) for one target, then runs it for SECONDS on a scratch copy of its
# seed corpus. Fails on a build error or on any crash, leak or timeout the fuzzer finds
# (the reproducer is left in BUILD_DIR/artifacts/).
# Variables: SOURCE_DIR, BUILD_DIR, TARGET, CORPUS, SECONDS, GENERATOR, [DICT].
find_program(CLANGXX clang++)
if(NOT CLANGXX)
  message(FATAL_ERROR "clang++ not found: the fuzz tests need clang and libclang-rt (scripts/setup installs them)")
endif()
set(launcher "")
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/fuzz/standalone -B ${BUILD_DIR} -G ${GENERATOR}
          -DCMAKE_CXX_COMPILER=${CLANGXX} -DCMAKE_BUILD_TYPE=Release ${launcher}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the clang fuzz build failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${TARGET} with clang failed (${rc})")
endif()
set(work ${BUILD_DIR}/corpus/${TARGET})
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work} ${BUILD_DIR}/artifacts)
set(dict_arg "")
if(DICT)
  set(dict_arg -dict=${DICT})
endif()
execute_process(
  COMMAND ${BUILD_DIR}/${TARGET} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${BUILD_DIR}/artifacts/ ${dict_arg} ${work} ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TARGET} found a failure (exit ${rc}); reproducer in ${BUILD_DIR}/artifacts/")
endif()
