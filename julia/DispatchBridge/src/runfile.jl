# The graph a Julia file defines, for `pydispatch run FILE.jl` (pydispatch's
# `pydispatch.julia.runfile` calls `load_graph_file`).

"""
    load_graph_file(path) -> Py

Evaluate the Julia file at `path` in `Main`, record it as an `@everywhere` block
(so its definitions reach every worker's Julia), and return the pydispatch nodes
of its graph (see `graph_outputs`).
"""
function load_graph_file(path::AbstractString)
    file = abspath(String(path))
    code = read(file, String)
    # Parse once: the same expressions run here and on the workers.
    ex = Meta.parseall(code; filename = file)
    everywhere(ex, file)
    # The file's definitions are newer than this function's world (Julia >= 1.12
    # ties bindings to world age): look at them in the latest world.
    return Base.invokelatest(graph_outputs, Main)
end

"""
    graph_outputs(m::Module) -> Py

The pydispatch nodes of the graph module `m` defines: its global `outputs` (a
node, a vector of nodes or a `DispatchGraph`, whose leaves are the outputs) or
what its `main()` returns.
"""
function graph_outputs(m::Module)
    value = if Base.invokelatest(isdefined, m, :outputs)
        Base.invokelatest(getglobal, m, :outputs)
    elseif Base.invokelatest(isdefined, m, :main)
        Base.invokelatest(getglobal(m, :main))
    else
        throw(ArgumentError(
            "the file defines no graph: define a global `outputs` (a node, a vector " *
                "of nodes or a DispatchGraph), or a function `main()` that returns one",
        ))
    end
    t = Translator()
    return pylist(topynode(t, node) for node in output_nodes(value))
end

output_nodes(node::Dispatcher.DispatchNode) = Dispatcher.DispatchNode[node]
output_nodes(graph::Dispatcher.DispatchGraph) = collect(
    Dispatcher.DispatchNode,
    Dispatcher.leaf_nodes(graph),
)
output_nodes(nodes::AbstractVector) = collect(Dispatcher.DispatchNode, nodes)
output_nodes(nodes::Tuple) = collect(Dispatcher.DispatchNode, nodes)
function output_nodes(value)
    throw(ArgumentError(
        "`outputs` (or `main()`) gave a $(typeof(value)), not a graph: give a node, " *
            "a vector or tuple of nodes, or a DispatchGraph",
    ))
end
