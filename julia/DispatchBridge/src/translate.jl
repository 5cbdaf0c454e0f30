# Dispatcher.jl nodes -> pydispatch nodes (Python objects), memoised by identity.

"""
    PyFunc(f::Py)

A Python callable usable as a Dispatcher `Op` function: the node runs in Python
on a worker, e.g. `Op(PyFunc(pyimport("operator").truediv), 1, 2)`.
"""
struct PyFunc <: Function
    f::Py
end

(p::PyFunc)(args...; kwargs...) = p.f(args...; kwargs...)

"The Python callable's name (`truediv`), or its `repr` when it has none."
function pyname(p::PyFunc)
    for attr in ("__qualname__", "__name__")
        name = pygetattr(p.f, attr, pybuiltins.None)
        pyis(name, pybuiltins.None) || return pyconvert(String, pystr(name))
    end
    return pyconvert(String, pyrepr(p.f))
end

# Dispatcher's `Op` labels a node `string(Symbol(func))` (Dispatcher.jl src/nodes.jl),
# that is, the printed function: print a PyFunc as its Python name.
Base.show(io::IO, p::PyFunc) = print(io, pyname(p))

struct Translator
    memo::IdDict{Any, Py}
    active::IdDict{Any, Nothing}
end

Translator() = Translator(IdDict{Any, Py}(), IdDict{Any, Nothing}())

"The pydispatch node for a Dispatcher node (the same Python node for the same Julia node)."
function topynode(t::Translator, node::Dispatcher.DispatchNode)
    haskey(t.memo, node) && return t.memo[node]
    if haskey(t.active, node)
        throw(Dispatcher.ExecutorError(
            "Dispatcher can only run graphs without circular dependencies",
        ))
    end
    t.active[node] = nothing
    py = makenode(t, node)
    delete!(t.active, node)
    t.memo[node] = py
    return py
end

toarg(t::Translator, x::Dispatcher.DispatchNode) = topynode(t, x)
toarg(::Translator, x) = totagged(x)

makenode(::Translator, n::Dispatcher.DataNode) = data_pynode(n.data)

"A pydispatch `DataNode` of a Julia value, with the `Main` names the value needs."
data_pynode(x) = hostapi().data_node(totagged(x), pylist(value_names(x)))

"The `Main` names the values among `xs` (not nodes) need on a worker (`value_names`)."
function values_names(xs)
    out = Set{String}()
    seen = IdDict{Any, Nothing}()
    for x in xs
        x isa Dispatcher.DispatchNode || needs!(out, x, seen)
    end
    return sort!(collect(out))
end

# Dispatcher indexes the parent's Julia value: `fetch(node.node)[node.index]`
# (Dispatcher.jl src/nodes.jl, `run!(::IndexNode)`). So does this: a Julia
# `getindex` on a worker, 1-based, by Julia's rules for the value's type.
makenode(t::Translator, n::Dispatcher.IndexNode) = hostapi().index_node(
    topynode(t, n.node),
    totagged(n.index),
    "getindex",
    pylist(value_names(n.index)),
)

function makenode(t::Translator, n::Dispatcher.CollectNode)
    return hostapi().collect_node(pylist(topynode(t, d) for d in n.nodes), n.label)
end

function makenode(t::Translator, n::Dispatcher.Op)
    args = pylist(toarg(t, a) for a in n.args)
    kwargs = pydict(string(k) => toarg(t, v) for (k, v) in n.kwargs)
    # Values go by `Serialization` too: a Main function passed as an argument
    # (`Op(map, slowinc, xs)`), a value of a Main struct, a `ComposedFunction` of
    # Main functions need those names on a worker, like the function itself does.
    vneeds = pylist(values_names(Any[n.args..., (v for (_, v) in n.kwargs)...]))
    if n.func isa PyFunc
        return hostapi().python_op(n.func.f, n.label, args, kwargs, vneeds)
    end
    spec, needs = funcspec(n.func)
    return hostapi().julia_op(pyobj(spec), n.label, args, kwargs, pylist(needs), vneeds)
end

function makenode(::Translator, n::Dispatcher.DispatchNode)
    throw(ArgumentError(
        "DispatchBridge cannot run a $(typeof(n)): use Op, DataNode, IndexNode or CollectNode",
    ))
end
