# Generates build_info.cpp with the project version and the git commit. A custom target runs on
# every build but rewrites the file only when the commit changes, so nothing recompiles needlessly.
set(MODTRAIN_BUILD_INFO_CPP ${CMAKE_CURRENT_BINARY_DIR}/generated/build_info.cpp)
add_custom_target(modtrain_build_info
  COMMAND ${CMAKE_COMMAND}
    -DSOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}
    -DOUTPUT=${MODTRAIN_BUILD_INFO_CPP}
    -DVERSION=${PROJECT_VERSION}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/WriteBuildInfo.cmake
  BYPRODUCTS ${MODTRAIN_BUILD_INFO_CPP}
  COMMENT "" VERBATIM)
# First configure: write it once so that the file exists for dependency scanning.
execute_process(COMMAND ${CMAKE_COMMAND}
  -DSOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR} -DOUTPUT=${MODTRAIN_BUILD_INFO_CPP}
  -DVERSION=${PROJECT_VERSION} -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/WriteBuildInfo.cmake)
