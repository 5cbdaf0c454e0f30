# DaskExecutor: Dispatcher.jl's run! on a dask scheduler, one submission per run.

"The result type `run!` returns (as Dispatcher.jl's `DispatchResult`)."
const DispatchResult = ResultTypes.Result{
    Dispatcher.DispatchNode,
    Dispatcher.DependencyError,
}

"""
    DaskExecutor(scheduler_address="127.0.0.1:8786"; retries=0)

A Dispatcher.jl `Executor` that runs graphs on the dask scheduler at
`scheduler_address`, through pydispatch. At least one worker must be connected
(start one with `Worker(scheduler_address)`). `exec.client` is a `Client` for
advanced workflows.
"""
struct DaskExecutor <: Dispatcher.Executor
    py::Py
    client::Client
    scheduler_address::String
end

function DaskExecutor(
    scheduler_address::AbstractString = "127.0.0.1:8786";
    retries::Integer = 0,
)
    address = String(scheduler_address)
    py = pygetattr(PYDISPATCH[], "DaskExecutor")(address; retries = Int(retries))
    return DaskExecutor(py, Client(address), address)
end

"""
    reset!(exec::DaskExecutor)

Drop everything this executor computed, on the scheduler and the workers; the
executor stays usable.
"""
function reset!(exec::DaskExecutor)
    exec.py.reset()
    return nothing
end

store!(::Dispatcher.DataNode, value) = nothing
store!(node::Dispatcher.DispatchNode, value) = put!(node.result, value)

"""
    run!(exec::DaskExecutor, nodes, input_nodes=[]; input_map=Dict(), throw_error=true, timeout=nothing)

Run the graph reachable from `nodes` on the dask cluster in one submission and
return one `DispatchResult` per node; `fetch(unwrap(r))` is the value. A node
that failed holds a `DependencyError` whose `err` is a `RemoteTaskError` (Julia
error on a worker) or a `PyException` (Python error); with `throw_error=true`
the first one is thrown. `timeout` (seconds) bounds the whole run.
(`run!(exec, graph::DispatchGraph)` comes from Dispatcher.jl and runs its leaves.)
"""
function Dispatcher.run!(
    exec::DaskExecutor,
    nodes::AbstractArray{T},
    input_nodes::AbstractArray{S} = Dispatcher.DispatchNode[];
    input_map::AbstractDict = Dict{Dispatcher.DispatchNode, Any}(),
    throw_error::Bool = true,
    timeout::Union{Real, Nothing} = nothing,
) where {T <: Dispatcher.DispatchNode, S <: Dispatcher.DispatchNode}
    t = Translator()
    for node in input_nodes
        t.memo[node] = hostapi().data_node(totagged(fetch(node)))
    end
    for (node, value) in input_map
        t.memo[node] = hostapi().data_node(totagged(value))
    end
    pynodes = pylist(topynode(t, node) for node in nodes)
    for node in nodes
        node isa Dispatcher.DataNode || Dispatcher.prepare!(node)
    end
    outcomes = hostapi().run(exec.py, pynodes, timeout)
    results = DispatchResult[]
    first_error = nothing
    for (i, (node, o)) in enumerate(zip(nodes, outcomes))
        ok, value = outcome_value(o)
        if ok
            store!(node, value)
            push!(results, node)
        else
            err, trace = value
            dep = Dispatcher.DependencyError(err, Any[trace], i)
            store!(node, dep)
            push!(results, dep)
            first_error === nothing && (first_error = dep)
        end
    end
    throw_error && first_error !== nothing && throw(first_error)
    return results
end
