#!/bin/sh
# Stands in for ssh when tests launch an MPI job on the "hosts" of a hostfile: mpirun calls
# `AGENT HOST COMMAND...` to start its daemon (orted) on HOST; this runs COMMAND here instead.
# Each named host still gets its own daemon, and the processes of different hosts talk over
# TCP (on loopback), as on separate machines.
shift  # the host name
exec /bin/sh -c "$*"
