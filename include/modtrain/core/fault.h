// Fault injection for tests of crash safety: with MODTRAIN_FAULT=<name> in the environment,
// fault::point("<name>") kills the calling process with SIGKILL (no cleanup, no flush), as a
// node failure or an OOM kill would; with MODTRAIN_FAULT=<name>:enospc it throws the error a
// write to a full disk throws, so the cleanup paths of failed writes can be tested anywhere;
// <name>:slow sleeps 200 ms there (so that a kill at a random moment lands inside that window);
// <name>:unknown throws a value that is not a std::exception (the CLI's catch-alls) and
// <name>:terminate calls std::terminate (the last-resort handler).
// MODTRAIN_FAULT=<name>:corrupt makes fault::corrupt("<name>") true instead: the code at that
// point then computes a wrong result on purpose (a test that a check catches it, such as
// `modtrain dist selftest` against an all-reduce that leaves one rank's contribution out).
// A no-op otherwise (one getenv, cached).
#pragma once

namespace modtrain::fault {

void point(const char* name);
bool corrupt(const char* name);

}  // namespace modtrain::fault
