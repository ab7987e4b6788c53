# recloop_target_warnings(target): the project's warning set, PRIVATE so that it never leaks into
# code that merely links us.
function(recloop_target_warnings target)
  # -Wno-restrict: GCC 12 warns falsely on `"literal" + std::string` (GCC bug 105651).
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-sign-compare)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()
