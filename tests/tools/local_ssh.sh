#!/bin/sh
# Stands in for ssh when tests launch an MPI job on the "hosts" of a hostfile: mpirun calls
# `AGENT HOST COMMAND...` to start its daemon (orted) on HOST; this runs COMMAND here instead.
# Each named host still gets its own daemon, and the processes of different hosts talk over
# TCP (on loopback), as on separate machines.
#
# Separate machines also have separate /tmp. Here the daemon and mpirun would share Open MPI's
# session directory (/tmp/ompi.HOST.UID/jf.N) and race to create it ("mkdir ... File exists",
# orte_init failed: seen in CI), so each "host" gets a session base of its own.
shift  # the host name
session=$(mktemp -d "${TMPDIR:-/tmp}/recloop-orted.XXXXXX") || exit 1
OMPI_MCA_orte_tmpdir_base=$session /bin/sh -c "$*"
rc=$?
rm -rf "$session"
exit $rc
