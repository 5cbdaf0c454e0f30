# The graph a Julia file defines, for `pydispatch run FILE.jl` (Python evaluates the
# file into a fresh module, then asks for its outputs here).

"""
    graph_outputs(m::Module) -> Py

The pydispatch nodes of the graph module `m` defines: its global `outputs` (a
node, a vector of nodes or a `DispatchGraph`, whose leaves are the outputs) or
what its `main()` returns.
"""
function graph_outputs(m::Module)
    value = if isdefined(m, :outputs)
        getglobal(m, :outputs)
    elseif isdefined(m, :main)
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
function output_nodes(value)
    throw(ArgumentError(
        "`outputs` (or `main()`) gave a $(typeof(value)), not a graph: give a node, " *
            "a vector of nodes or a DispatchGraph",
    ))
end
