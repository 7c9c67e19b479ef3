# Decides whether the NCCL backend is built (option MODTRAIN_WITH_NCCL = AUTO | ON | OFF).
# NCCL and the CUDA runtime are looked up under CUDA_HOME / /usr/local/cuda (the CUDA toolkit) and
# NCCL_HOME (e.g. the nvidia-nccl-cu13 Python package); no GPU is needed to build or to link.
set(MODTRAIN_HAVE_NCCL OFF)
if(NOT MODTRAIN_WITH_NCCL STREQUAL "OFF")
  set(_cuda_hints $ENV{CUDA_HOME} $ENV{CUDA_PATH} /usr/local/cuda)
  if(NOT CUDAToolkit_ROOT)
    foreach(_h ${_cuda_hints})
      if(EXISTS "${_h}/include/cuda_runtime_api.h")
        set(CUDAToolkit_ROOT "${_h}")
        break()
      endif()
    endforeach()
  endif()
  find_package(CUDAToolkit QUIET)
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${NCCL_HOME} $ENV{NCCL_HOME} ${CUDAToolkit_INCLUDE_DIRS} ${_cuda_hints}
    PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2
    HINTS ${NCCL_HOME} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_DIR} ${_cuda_hints}
    PATH_SUFFIXES lib lib64)
  if(CUDAToolkit_FOUND AND TARGET CUDA::cudart AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(MODTRAIN_HAVE_NCCL ON)
    if(NOT TARGET NCCL::NCCL)
      add_library(NCCL::NCCL UNKNOWN IMPORTED)
      set_target_properties(NCCL::NCCL PROPERTIES
        IMPORTED_LOCATION "${NCCL_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
    endif()
    message(STATUS "modtrain: NCCL backend ON (${NCCL_LIBRARY}, CUDA ${CUDAToolkit_VERSION})")
  elseif(MODTRAIN_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "MODTRAIN_WITH_NCCL=ON but NCCL/CUDA runtime not found "
      "(nccl.h: ${NCCL_INCLUDE_DIR}, libnccl: ${NCCL_LIBRARY}, CUDA toolkit: ${CUDAToolkit_FOUND}). "
      "Set CUDA_HOME or NCCL_HOME, or configure with -DMODTRAIN_WITH_NCCL=OFF.")
  else()
    message(STATUS "modtrain: NCCL backend OFF (nccl.h or the CUDA runtime not found)")
  endif()
endif()
