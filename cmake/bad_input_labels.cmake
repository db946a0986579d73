# Run by ctest after the test list that gtest_discover_tests(lmq_tests) wrote: every test of a
# suite named BadInput* (the CLI's bad-input tests, the hostile safetensors/config tests) gets the
# label bad-input, so `ctest -L bad-input` runs just them (scripts/test.sh does, under ASan+UBSan).
# (CMake 3.25's gtest_discover_tests has no TEST_FILTER to split the suites at discovery.)
foreach(test IN LISTS lmq_tests_TESTS)
  if(test MATCHES "^BadInput")
    set_tests_properties("${test}" PROPERTIES LABELS bad-input)
  endif()
endforeach()
