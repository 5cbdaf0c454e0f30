# The seed's dask "cluster" example: ~500 nodes, a CollectNode feeding an Op,
# on three workers launched from Julia.
#   julia --project=julia/DispatchBridge examples/julia/cluster.jl [ADDRESS]
import Dispatcher
import ResultTypes
using DispatchBridge: @everywhere, DaskExecutor, Worker, run!, shutdown

# Defined here and on every worker (named Main functions do not travel by value).
@everywhere begin
    load(filename) = (sleep(rand() / 2); 1)
    load_from_sql(filename) = (sleep(rand() / 2); 1)
    process(data, reference) = (sleep(rand() / 2); 1)
    roll(a, b, c) = (sleep(rand() / 5); 1)
    compare(a, b) = (sleep(rand() / 10); 1)
    reduction(seq) = (sleep(rand()); 1)
end

address = isempty(ARGS) ? "127.0.0.1:8786" : ARGS[1]
workers = [Worker(address) for _ in 1:3]
try
    exec = DaskExecutor(address)
    data = [Dispatcher.Op(load, "mydata-$(d).dat") for d in 1:100]
    reference = Dispatcher.Op(load_from_sql, "sql://mytable")
    processed = [Dispatcher.Op(process, d, reference) for d in data]
    rolled = [
        Dispatcher.Op(roll, processed[i], processed[i + 1], processed[i + 2])
        for i in 1:98
    ]
    compared = [Dispatcher.Op(compare, rand(rolled), rand(rolled)) for _ in 1:200]
    best = Dispatcher.Op(reduction, Dispatcher.CollectNode(compared))
    (r,) = run!(exec, [best]; timeout = 1200)
    println(fetch(ResultTypes.unwrap(r))) # 1
finally
    foreach(shutdown, workers)
end
