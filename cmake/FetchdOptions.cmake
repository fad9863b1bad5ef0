# Compiler options shared by every fetchd target: link `fetchd_options`.
option(FETCHD_WERROR "Treat warnings as errors" OFF)
set(FETCHD_SANITIZE "" CACHE STRING
    "Sanitizers to build with, e.g. address,undefined (empty: none)")

add_library(fetchd_options INTERFACE)
target_compile_options(fetchd_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough)
if(FETCHD_WERROR)
  target_compile_options(fetchd_options INTERFACE -Werror)
endif()

if(FETCHD_SANITIZE)
  # Applied globally so that every object (generated protos included) agrees.
  add_compile_options(-fsanitize=${FETCHD_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${FETCHD_SANITIZE})
endif()
