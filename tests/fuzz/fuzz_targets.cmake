# The libFuzzer targets, shared by the STRATA_FUZZ=ON build (tests/fuzz/CMakeLists.txt) and the
# small clang sub-build (tests/fuzz/standalone). Needs clang; STRATA_SOURCE_DIR is the repo root.
function(strata_add_fuzzer NAME)
  cmake_parse_arguments(ARG "" "" "SRCS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_include_directories(${NAME} PRIVATE ${STRATA_SOURCE_DIR})
  target_compile_features(${NAME} PRIVATE cxx_std_20)
  target_compile_options(${NAME} PRIVATE -fsanitize=fuzzer,address,undefined
                         -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  target_link_options(${NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${NAME} PRIVATE nlohmann_json::nlohmann_json)
endfunction()

strata_add_fuzzer(safetensors_header_fuzz SRCS
  ${STRATA_SOURCE_DIR}/tests/fuzz/safetensors_header_fuzz.cc
  ${STRATA_SOURCE_DIR}/model/safetensors_header.cc
  ${STRATA_SOURCE_DIR}/model/safetensors.cc
  ${STRATA_SOURCE_DIR}/common/status.cc)
