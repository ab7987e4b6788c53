# recloop_target_warnings(target): the project's warning set, PRIVATE so that it never leaks into
# code that merely links us.
function(recloop_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-sign-compare)
endfunction()
