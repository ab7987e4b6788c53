# recloop_target_warnings(target): the project's warning set, PRIVATE so that it never leaks into
# code that merely links us.
#
# Eigen, FAISS, Boost and the other dependencies come in through imported targets, so their
# headers are -isystem and their own warnings are silent. One kind still reaches us: GCC's
# -Wmaybe-uninitialized is a middle-end warning, issued after Eigen's AVX-512 packet code
# (_mm512_undefined_* in GCC's avx512fintrin.h) has been inlined into our functions, and it is
# then reported at our line. It floods -march=native builds on AVX-512 machines with false
# reports, so it is turned off there only; every other build keeps it.
include(CheckCXXSourceCompiles)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND RECLOOP_NATIVE)
  set(CMAKE_REQUIRED_FLAGS -march=native)
  check_cxx_source_compiles("#ifndef __AVX512F__\n#error no AVX-512\n#endif\nint main() {}"
                            RECLOOP_NATIVE_HAS_AVX512)
  unset(CMAKE_REQUIRED_FLAGS)
endif()

function(recloop_target_warnings target)
  # -Wno-restrict: GCC 12 warns falsely on `"literal" + std::string` (GCC bug 105651).
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-sign-compare)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-restrict)
    if(RECLOOP_NATIVE_HAS_AVX512)
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()
