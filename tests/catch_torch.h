// Include this instead of <catch2/catch.hpp> in tests that use LibTorch. Debian's LibTorch pulls
// in glog, whose CHECK macro would silently replace Catch2's CHECK (aborting instead of
// reporting); torch goes first, glog's CHECK is removed, then Catch2 defines its own.
#pragma once

#include <torch/torch.h>
#undef CHECK
#include <catch2/catch.hpp>
