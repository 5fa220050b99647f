# Instrumented builds, each in a build directory of its own (scripts/sanitize-and-fuzz.sh):
#   SLUICE_SANITIZE  everything (daemon and tests) under ASan + UBSan, so the whole test suite
#                    runs once with them; any UB aborts the test that hit it.
#   SLUICE_FUZZ      clang only: every library gets ASan + UBSan and libFuzzer's coverage
#                    instrumentation, and the libFuzzer targets of tests/fuzz are added.
# Included from the root CMakeLists.txt before any target, so the flags reach every target.
option(SLUICE_SANITIZE "Build everything with -fsanitize=address,undefined" OFF)
option(SLUICE_FUZZ "Build the libFuzzer targets (tests/fuzz); needs clang" OFF)

if(SLUICE_SANITIZE AND SLUICE_FUZZ)
  message(FATAL_ERROR "SLUICE_SANITIZE and SLUICE_FUZZ want separate build directories")
endif()

if(SLUICE_SANITIZE)
  # -fno-sanitize=vptr: UBSan checks a dynamic type by probing its vtable's memory through a
  # pipe, which fails once the process is out of file descriptors, and then reports a valid
  # object as having an "invalid vptr"; the e2e suite runs sluice out of descriptors on purpose.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

if(SLUICE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SLUICE_FUZZ needs clang: -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # fuzzer-no-link: coverage feedback from the libraries; the libFuzzer runtime (and its main)
  # is linked into the fuzz targets only (tests/fuzz/CMakeLists.txt). -fsanitize=function (part
  # of "undefined" in clang) makes clang 14 fail on coroutines ("Cannot represent a difference
  # across sections") and only checks calls through mistyped function pointers: left out.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function
    -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
