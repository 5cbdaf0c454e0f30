# The seed's quick start: max(3, 4) on a dask cluster.
# Start a scheduler first (`dask scheduler`), then:
#   julia --project=julia/DispatchBridge examples/julia/quickstart.jl [ADDRESS]
import Dispatcher
import ResultTypes
using DispatchBridge: DaskExecutor, Worker, run!, shutdown

address = isempty(ARGS) ? "127.0.0.1:8786" : ARGS[1]
worker = Worker(address)
try
    exec = DaskExecutor(address)
    a = Dispatcher.Op(() -> 3)
    b = Dispatcher.Op(() -> 4)
    c = Dispatcher.Op(max, a, b)
    results = run!(exec, Dispatcher.DispatchGraph(c))
    println(fetch(ResultTypes.unwrap(results[1]))) # 4
finally
    shutdown(worker)
end
