# `@everywhere`: code that runs in this session's Main and in every worker's Main.
# The registry and the dask worker plugin that carries the code to workers (also
# to workers that join or restart later) are in Python:
# `pydispatch.julia.everywhere`.

"""
    @everywhere expr

Evaluate `expr` in `Main` here and in `Main` on every worker's Julia: the ones
connected now and every one that joins or restarts later (through a dask worker
plugin on every scheduler this session runs graphs on). Use it for what Julia's
`Serialization` does not send with a function: named functions, globals, and
`using`/`import` lines, e.g.

```julia
@everywhere begin
    using Statistics: mean
    slowadd(x, y) = (sleep(0.1); x + y)
end
```

A graph that needs a `Main` name no `@everywhere` block defines is rejected
before it is submitted, naming the node and the name.
"""
macro everywhere(ex)
    origin = "$(__source__.file):$(__source__.line)"
    return :($everywhere($(QuoteNode(ex)), $origin))
end

"""
    everywhere(ex, origin="everywhere")

The function behind `@everywhere`: evaluate `ex` in `Main`, then record it (as
`Serialization` bytes of the expression) for every worker.
"""
function everywhere(ex, origin::AbstractString = "everywhere")
    before = Set{Symbol}(names(Main; all = true, imported = true))
    eval_main(ex)
    # What the block defined is newer than this call's world (Julia >= 1.12).
    provided = Base.invokelatest(provided_names, ex, before)
    io = IOBuffer()
    serialize(io, ex)
    text = first(string(ex), 2000)
    hostapi().add_everywhere(pybytes(take!(io)), pylist(provided), text, String(origin))
    return nothing
end

"Evaluate `ex` in `Main` one top-level statement at a time (like Distributed's `@everywhere`)."
function eval_main(ex)
    stmts = (ex isa Expr && ex.head in (:block, :toplevel)) ? ex.args : Any[ex]
    return Core.eval(Main, Expr(:toplevel, stmts...))
end

"""
    provided_names(ex, before) -> Vector{String}

The `Main` names the block `ex` defines: the names `Main` gained while it ran,
plus what its top-level definitions name (so redefining an existing function
counts), plus what its `using`/`import` lines bring in.
"""
function provided_names(ex, before::Set{Symbol})
    out = Set{String}()
    for n in names(Main; all = true, imported = true)
        n in before || push!(out, string(n))
    end
    defined_names!(out, ex)
    return sort!(collect(out))
end

function defined_names!(out::Set{String}, ex)
    ex isa Expr || return out
    h = ex.head
    if h in (:block, :toplevel, :const, :global, :macrocall)
        foreach(a -> defined_names!(out, a), ex.args)
    elseif h === :function || h === :macro
        n = signature_name(ex.args[1])
        n === nothing || push!(out, h === :macro ? "@" * n : n)
    elseif h === :(=)
        lhs = ex.args[1]
        n = signature_name(lhs)
        if n !== nothing
            push!(out, n)
        elseif lhs isa Symbol
            push!(out, string(lhs))
        elseif lhs isa Expr && lhs.head === :(::) && lhs.args[1] isa Symbol
            push!(out, string(lhs.args[1]))
        elseif lhs isa Expr && lhs.head === :tuple
            foreach(a -> a isa Symbol && push!(out, string(a)), lhs.args)
        end
    elseif h === :struct
        n = type_name(ex.args[2])
        n === nothing || push!(out, n)
    elseif h === :abstract || h === :primitive
        n = type_name(ex.args[1])
        n === nothing || push!(out, n)
    elseif h === :using || h === :import
        foreach(a -> imported_names!(out, a, h === :using), ex.args)
    end
    return out
end

"The function name a signature defines in Main (`nothing` for `Base.show(...)` etc.)."
function signature_name(sig)
    sig isa Expr || return nothing
    if sig.head === :where || sig.head === :(::)
        return signature_name(sig.args[1])
    elseif sig.head === :call
        f = sig.args[1]
        f isa Expr && f.head === :curly && (f = f.args[1])
        return f isa Symbol ? string(f) : nothing
    end
    return nothing
end

function type_name(x)
    x isa Symbol && return string(x)
    x isa Expr && x.head in (:curly, :(<:)) && return type_name(x.args[1])
    return nothing
end

function imported_names!(out::Set{String}, a, is_using::Bool)
    a isa Expr || return out
    if a.head === :(:)
        # using M: a, b / import M: a as b
        foreach(b -> imported_names!(out, b, false), a.args[2:end])
    elseif a.head === :as
        a.args[2] isa Symbol && push!(out, string(a.args[2]))
    elseif a.head === :.
        path = a.args
        isempty(path) || !(path[end] isa Symbol) || push!(out, string(path[end]))
        if is_using && !isempty(path) && all(p -> p isa Symbol && p !== :., path)
            m = try
                foldl((m, p) -> getglobal(m, p), path; init = Main)
            catch
                nothing
            end
            m isa Module && foreach(n -> push!(out, string(n)), names(m))
        end
    end
    return out
end

"The `Main` names the recorded `@everywhere` blocks define (what a graph may use)."
function available_names()
    names = pyimport("pydispatch.julia.everywhere").available_names()
    return sort!(pyconvert(Vector{String}, pylist(names)))
end
