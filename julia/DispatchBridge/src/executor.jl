# DaskExecutor: Dispatcher.jl's run! on a dask scheduler, one submission per run.

"The result type `run!` returns (Dispatcher.jl's `DispatchResult`)."
const DispatchResult = ResultTypes.Result{
    Dispatcher.DispatchNode,
    Dispatcher.DependencyError,
}

"""
    DaskExecutor(scheduler_address="127.0.0.1:8786"; retries=0)

A Dispatcher.jl `Executor` that runs graphs on the dask scheduler at
`scheduler_address`, through pydispatch. At least one worker must be connected
(start one with `Worker(scheduler_address)`). `exec.client` is a `Client` for
advanced workflows; it shares the executor's dask connection.
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
    return DaskExecutor(py, Client(py, address, Translator(), true), address)
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

# The nodes that hold a result (`DataNode`s hold their data).
const ResultNode = Union{Dispatcher.Op, Dispatcher.IndexNode, Dispatcher.CollectNode}

store!(::Dispatcher.DispatchNode, value) = nothing
store!(node::ResultNode, value) = put!(node.result, value)

"""
    run!(exec::DaskExecutor, nodes, input_nodes=[]; input_map=Dict(), throw_error=true, timeout=nothing)

Run the graph reachable from `nodes` on the dask cluster in one submission and
return one `DispatchResult` per node of `nodes` (a vector or a tuple; a node
may appear twice); `fetch(unwrap(r))` is the value. As with Dispatcher's own
executors, every node of the graph gets its result, intermediates included.
A node that failed holds a `DependencyError` whose `err` is a `RemoteTaskError`
(Julia error on a worker) or a `PyException` (Python error); a node that did
not run because a dependency failed holds a `DependencyError` whose `err` is
that dependency's. `DependencyError.id` is the node's id in the run's
`DispatchGraph`, as in Dispatcher. With `throw_error=true` the first failure
is thrown. `timeout` (seconds) bounds the whole run. A node whose function no
worker can resolve (a named `Main` function not made available with
`@everywhere`) fails the run before anything is submitted.
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
    inputs = collect(
        Dispatcher.DispatchNode,
        Iterators.flatten((input_nodes, keys(input_map))),
    )
    graph = Dispatcher.DispatchGraph(nodes, inputs)
    t = Translator()
    for node in input_nodes
        t.memo[node] = data_pynode(fetch(node))
    end
    for (node, value) in input_map
        t.memo[node] = data_pynode(value)
    end
    # Dispatcher numbers a graph's nodes 1:n (its `NodeSet`); `DependencyError.id`
    # is that number (Dispatcher.jl src/executors.jl, `run_inner_node!`).
    ordered = Dispatcher.DispatchNode[graph.nodes[i] for i in 1:length(graph.nodes)]
    pynodes = pylist(topynode(t, node) for node in ordered)
    outputs = pylist(graph.nodes[node] - 1 for node in nodes)
    is_input = IdDict{Any, Nothing}(n => nothing for n in inputs)
    fillable = [!haskey(is_input, n) for n in ordered]
    for (node, f) in zip(ordered, fillable)
        f && Dispatcher.prepare!(node)
    end
    errors = Vector{Any}(nothing, length(ordered))
    filled = falses(length(ordered))
    try
        outcomes = checked(() -> hostapi().run_graph(exec.py, pynodes, outputs, timeout))
        for i in eachindex(ordered)
            fillable[i] || continue
            value = node_outcome(outcomes, i, errors)
            store!(ordered[i], value)
            filled[i] = true
        end
    catch e
        # Never leave a node without a result: `fetch` on it would wait forever.
        for i in eachindex(ordered)
            (fillable[i] && !filled[i]) || continue
            err = e isa Exception ? e : ErrorException(string(e))
            store!(ordered[i], Dispatcher.DependencyError(err, Any[], i))
        end
        rethrow()
    end
    results = DispatchResult[]
    for node in nodes
        err = errors[graph.nodes[node]]
        push!(results, err === nothing ? node : err)
    end
    if throw_error
        first_error = something(
            findfirst(
                e -> e !== nothing && !(e.err isa Dispatcher.DependencyError),
                errors,
            ),
            findfirst(!isnothing, errors),
            Some(nothing),
        )
        first_error === nothing || throw(errors[first_error])
    end
    return results
end

Dispatcher.run!(exec::DaskExecutor, nodes::Tuple, args...; kwargs...) = Dispatcher.run!(
    exec,
    collect(Dispatcher.DispatchNode, nodes),
    args...;
    kwargs...,
)

"The value (or `DependencyError`) of node `i` from `hostapi.run_graph`'s outcomes."
function node_outcome(outcomes::Py, i::Int, errors::Vector{Any})
    errors[i] === nothing || return errors[i]
    o = pygetitem(outcomes, i - 1)
    if pyconvert(String, pygetitem(o, 0)) == "upstream"
        j = pyconvert(Int, pygetitem(o, 1)) + 1
        upstream = node_outcome(outcomes, j, errors)
        if upstream isa Dispatcher.DependencyError
            errors[i] = Dispatcher.DependencyError(upstream, Any[], i)
            return errors[i]
        end
        o = pytuple(("python", pybuiltins.RuntimeError("a dependency failed"), ""))
    end
    ok, value = try
        outcome_value(o)
    catch e
        # A value that does not convert back is that node's error, not the run's.
        (false, (e, sprint(Base.show_backtrace, catch_backtrace())))
    end
    ok && return value
    err, trace = value
    errors[i] = Dispatcher.DependencyError(err, Any[trace], i)
    return errors[i]
end
