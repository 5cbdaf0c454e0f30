"""The dask adapter: everything in pydispatch that speaks to dask lives here.

The room below the dask executor and the commands: the client session and its
ledger of node <-> key <-> future, submission (client) and what it leaves on the
nodes (outcomes), reaching the scheduler (connection), content keys, fusion planning
and the fused block task, turning nodes into dask tasks, shipping functions by value,
the check that task values can travel, replication, the in-process worker and the
embedded local cluster. Every dask internal (a name dask does not document) is used only through
`compat`, which has a test per internal. Above it: `executors.dask` and `commands`.
Below it: only pydispatch's core (graph, plan, retry, errors, results, address).
"""
