// Catch2 main for the single-process unit tests (kept in its own TU: catch.hpp is slow to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
