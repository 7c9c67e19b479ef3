// Fault injection for tests of crash safety: with MODTRAIN_FAULT=<name> in the environment,
// fault::point("<name>") kills the calling process with SIGKILL (no cleanup, no flush), as a
// node failure or an OOM kill would. A no-op otherwise (one getenv, cached).
#pragma once

namespace modtrain::fault {

void point(const char* name);

}  // namespace modtrain::fault
