# fetchd_version: the generated header fetchd/version.h, the one place the
# version string (the project's VERSION) and the build description come
# from, for fetchd's and fetchctl's --version and fetch_build_info.
set(FETCHD_BUILD_DESCRIPTION
    "${CMAKE_BUILD_TYPE} build, ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
if(FETCHD_SANITIZE)
  string(APPEND FETCHD_BUILD_DESCRIPTION ", sanitizers ${FETCHD_SANITIZE}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
               ${CMAKE_BINARY_DIR}/gen/fetchd/version.h @ONLY)
add_library(fetchd_version INTERFACE)
target_include_directories(fetchd_version INTERFACE ${CMAKE_BINARY_DIR}/gen)
