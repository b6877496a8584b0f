"""How long tests wait for what is slow only on a loaded machine.

A deadline is reached only when something is wrong, so being generous costs a passing
run nothing; on a shared CI machine, with a test worker per core, a server that takes
three processes to start can take far longer than on an idle one.
"""

#: Waiting for a server to answer, a subprocess to get going, a condition to hold.
PATIENCE_S = 120.0
