# The seed's dask "do" example: 9 + 39 + 309 == 357.
#   julia --project=julia/DispatchBridge examples/julia/do.jl [ADDRESS]
import Dispatcher
import ResultTypes
using DispatchBridge: @everywhere, DaskExecutor, Worker, run!, shutdown

# Named functions in Main do not travel with a graph (Julia sends only anonymous
# functions by value): `@everywhere` defines them here and on every worker,
# including workers that join later.
@everywhere begin
    slowadd(x, y) = (sleep(rand() / 10); x + y)
    slowinc(x) = (sleep(rand() / 10); x + 1)
    slowsum(a...) = (sleep(rand() / 10); sum(a))
end

address = isempty(ARGS) ? "127.0.0.1:8786" : ARGS[1]
worker = Worker(address)
try
    exec = DaskExecutor(address)
    data = [1, 2, 3]
    A = [Dispatcher.Op(slowinc, i) for i in data]
    B = [Dispatcher.Op(slowadd, a, 10) for a in A]
    C = [Dispatcher.Op(slowadd, a, 100) for a in A]
    result = Dispatcher.Op(
        +,
        Dispatcher.Op(slowsum, A...),
        Dispatcher.Op(slowsum, B...),
        Dispatcher.Op(slowsum, C...),
    )
    (r,) = run!(exec, [result]; timeout = 600)
    println(fetch(ResultTypes.unwrap(r))) # 357
finally
    shutdown(worker)
end
