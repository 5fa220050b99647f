# Profile-guided optimisation (GCC), the two stages of scripts/build-release.sh, run in one
# build directory so that each object finds its own profile next to it:
#   SLUICE_PGO=generate  instrumented: at exit the binary writes a .gcda profile beside each
#                        object file (atomic counters: the I/O threads run at once)
#   SLUICE_PGO=use       optimised with those profiles: hot paths laid out and inlined for
#                        what the training ran; a function the training never ran is optimised
#                        as without a profile (-fprofile-partial-training), not for size
#   SLUICE_PGO=off       (default) neither
# Included from the root CMakeLists.txt before any target, so the flags reach every target.
set(SLUICE_PGO "off" CACHE STRING "Profile-guided optimisation stage: off, generate or use")
set_property(CACHE SLUICE_PGO PROPERTY STRINGS off generate use)
string(TOLOWER "${SLUICE_PGO}" sluice_pgo_stage)

if(NOT sluice_pgo_stage STREQUAL "off")
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    message(FATAL_ERROR "SLUICE_PGO needs GCC (its -fprofile-generate/-fprofile-use)")
  endif()
  if(SLUICE_SANITIZE OR SLUICE_FUZZ)
    message(FATAL_ERROR "SLUICE_PGO is for release builds, not with SLUICE_SANITIZE or SLUICE_FUZZ")
  endif()
endif()

if(sluice_pgo_stage STREQUAL "generate")
  add_compile_options(-fprofile-generate -fprofile-update=atomic)
  add_link_options(-fprofile-generate)
elseif(sluice_pgo_stage STREQUAL "use")
  # -Wno-missing-profile: objects the training binary does not link (the tests) have none.
  # -Wno-restrict: with the profile's inlining GCC 12 reports an impossible overlap (of
  # 2^64 - 1 bytes) in libstdc++'s char_traits::copy, a false positive of -Wrestrict.
  add_compile_options(-fprofile-use -fprofile-partial-training -Wno-missing-profile
    -Wno-restrict)
elseif(NOT sluice_pgo_stage STREQUAL "off")
  message(FATAL_ERROR "SLUICE_PGO must be off, generate or use (got '${SLUICE_PGO}')")
endif()
