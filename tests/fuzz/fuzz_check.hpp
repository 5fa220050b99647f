// The one assertion of the fuzz targets: a broken invariant aborts, so libFuzzer reports it as a
// crash and keeps the input.
#pragma once

#include <cstdio>
#include <cstdlib>

/// Aborts with the failed condition when `cond` is false; checked in every build type.
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (false)
