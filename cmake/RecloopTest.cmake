# recloop_add_test(NAME SOURCES src... LIBS lib...): one GoogleTest binary, registered with CTest
# test by test so that a failure names the test case.
function(recloop_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} recloop::test_support GTest::gmock GTest::gtest_main)
  recloop_target_warnings(${name})
  gtest_discover_tests(${name}
      PROPERTIES ENVIRONMENT "RECLOOP_DATASETS_DEFAULT=${RECLOOP_DATASETS_DIR}"
      DISCOVERY_TIMEOUT 60)
endfunction()
