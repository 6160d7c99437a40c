# --help from the manual pages: tools/scd2help turns a page's SYNOPSIS and OPTIONS (and tidectl's
# COMMANDS) into string-literal macros in a generated header, so the page and --help are one
# source. tide_help_header(TARGET PAGE SYMBOL) makes build/generated/help/PAGE.h (PAGE as in
# docs/man/PAGE.scd) and gives TARGET its directory and a dependency on it.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(TIDE_HELP_DIR ${PROJECT_BINARY_DIR}/generated/help)

function(tide_help_header target page symbol)
  set(src ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd)
  set(out ${TIDE_HELP_DIR}/${page}.h)
  if(NOT TARGET tide_help_${symbol})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${TIDE_HELP_DIR}
      COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/scd2help ${src} ${out} ${symbol}
      DEPENDS ${src} ${PROJECT_SOURCE_DIR}/tools/scd2help
      COMMENT "scd2help ${page}.scd -> ${symbol}"
      VERBATIM)
    add_custom_target(tide_help_${symbol} DEPENDS ${out})
  endif()
  add_dependencies(${target} tide_help_${symbol})
  target_include_directories(${target} PRIVATE ${TIDE_HELP_DIR})
endfunction()
