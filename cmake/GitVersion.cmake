# Run at build time: writes common/version.h with the current git SHA, touching it only when
# the content changes (so a new commit rebuilds only what prints the version).
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE STRATA_GIT_SHA OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE DIRTY OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT STRATA_GIT_SHA)
  set(STRATA_GIT_SHA unknown)
elseif(DIRTY)
  set(STRATA_GIT_SHA "${STRATA_GIT_SHA}-dirty")
endif()
configure_file(${IN} ${OUT}.tmp @ONLY)
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
