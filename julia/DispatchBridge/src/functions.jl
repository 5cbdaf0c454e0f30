# Julia functions as references or bytes (`funcspec`, client side), the `Main`
# names they need on a worker (`main_names`), and their resolution and invocation
# on a worker's owner thread (`invoke_task`).

"""
    funcspec(f; nogil=true) -> (spec, main_names)

The spec `pydispatch.julia.JuliaFunction.from_spec` reads, as a tree (`pyobj`
makes it Python): a reference `("ref", "Mod.Sub.f", uuid_or_empty, nogil)` when
`f` is a named function (or type) of a package, `Base`, `Core` or `Main`;
otherwise `Serialization` bytes `("serialized", "", bytes, [(uuid, name), ...], nogil)`.
`main_names` are the names in `Main` that a worker must have for `f` to run
there (see `main_names`).
"""
function funcspec(f; nogil::Bool = true)
    needs = main_names(f)
    ref = funcref(f)
    ref === nothing || return (("ref", ref[1], ref[2], nogil), needs)
    io = IOBuffer()
    serialize(io, f)
    pkgs = Any[(string(id.uuid), id.name) for id in packages_of(f)]
    return (("serialized", "", take!(io), pkgs, nogil), needs)
end

"(qualified name, package uuid or \"\") for a named function or type, or `nothing`."
function funcref(f)
    (f isa Function || f isa DataType) || return nothing
    # `nameof(f::Function)` reads a field of the type's name (`name.mt.name` up to
    # Julia 1.11, `name.singletonname` later: base/reflection.jl); for a callable
    # struct (`ComposedFunction`, `Base.Fix1`, ...) that is the type's name, which
    # the identity check below rejects. Guarded in case a version lacks the field.
    name = try
        nameof(f)
    catch
        return nothing
    end
    name isa Symbol || return nothing
    startswith(string(name), '#') && return nothing
    mod = parentmodule(f)
    (isdefined(mod, name) && getglobal(mod, name) === f) || return nothing
    root = Base.moduleroot(mod)
    path = join((string.(fullname(mod))..., string(name)), '.')
    # A named function of Main goes by name too: Serialization would send only a
    # reference to it anyway (it sends the code of anonymous Main functions only:
    # Julia stdlib/Serialization, `should_send_whole_type`). A worker resolves it in
    # its own Main, where `@everywhere` put it.
    (root === Base || root === Core || root === Main) && return (path, "")
    id = Base.PkgId(root)
    id.uuid === nothing && return nothing
    return (path, string(id.uuid))
end

"The packages a worker loads before deserializing `f`."
function packages_of(f)
    root = Base.moduleroot(parentmodule(f))
    id = Base.PkgId(root)
    return id.uuid === nothing ? Base.PkgId[] : [id]
end

# Names a worker's `Main` has without any `@everywhere`: juliacall evaluates
# `using PythonCall` in Main (juliacall/__init__.py, init()) and pydispatch's
# backend `import DispatchBridge`.
const WORKER_MAIN = (:PythonCall, :DispatchBridge)

"""
    main_names(f) -> Vector{String}

The names in `Main` that `f` needs on a worker: its own name for a named `Main`
function (`"Sub"` for `Main.Sub.f`); for an anonymous `Main` function (sent by
value), the `Main` globals, named `Main` functions and `using`-imported names its
code refers to, and named `Main` functions it captured. Julia's `Serialization`
sends those as bare references (`serialize(::AbstractSerializer, ::GlobalRef)`
sends the whole value only for anonymous function types), so a worker must
define them (`@everywhere`). Names from `Base` and `Core` need nothing; a name
from PythonCall comes back as `"PythonCall.<name>"`, which Python refuses (a task
function runs with the GIL released and must not call Python).
"""
function main_names(f)
    out = Set{String}()
    ref = funcref(f)
    if ref !== nothing
        parts = split(ref[1], '.')
        parts[1] == "Main" && push!(out, String(parts[2]))
    else
        needs!(out, f, IdDict{Any, Nothing}())
    end
    return sort!(collect(out))
end

is_hidden(name::Symbol) = startswith(string(name), '#')

"""
    value_names(x) -> Vector{String}

The names in `Main` a Julia *value* needs on a worker: an `Op` argument or a
`DataNode`'s data that is (or holds) a named `Main` function, a value of a `Main`
type, or a `Main` closure. `Serialization` sends those types and functions by
name, as it does for a function (see `main_names`).
"""
value_names(x) = sort!(collect(needs!(Set{String}(), x, IdDict{Any, Nothing}())))

"How many objects `needs!` looks at in one value before it stops (huge values)."
const MAX_SCANNED = 100_000
"How deep `needs!` follows references (a long linked list must not overflow the stack)."
const MAX_DEPTH = 200

function needs!(out::Set{String}, x, seen::IdDict{Any, Nothing}, depth::Int = 0)
    (depth > MAX_DEPTH || length(seen) >= MAX_SCANNED || haskey(seen, x)) && return out
    seen[x] = nothing
    if x isa Core.Box
        isdefined(x, :contents) && needs!(out, x.contents, seen, depth + 1)
    elseif x isa Module || x isa String || x isa Symbol
        # a module is sent by name (DispatchBridge's `packages_of`), strings whole
    elseif x isa Type
        # a type sent as a value goes by name, e.g. `Op(convert, Scale, x)`
        needs_typename!(out, x, seen)
    elseif x isa Function && funcref(x) !== nothing
        parts = split(funcref(x)[1], '.')
        parts[1] == "Main" && push!(out, String(parts[2]))
    else
        T = typeof(x)
        # The code of an anonymous Main function travels with it, but its references
        # to Main names do not.
        x isa Function && parentmodule(x) === Main && needs_type!(out, T, seen)
        # A named type defined in Main (a callable struct, a value of a Main struct)
        # travels as a reference to the type, which a worker must define.
        needs_typename!(out, T, seen)
        # Whatever it holds: captured variables of a closure, `outer`/`inner` of a
        # `ComposedFunction`, `f` of a `Base.Fix1`, a struct's fields, elements.
        needs_fields!(out, x, seen, depth + 1)
    end
    return out
end

function needs_fields!(out::Set{String}, x, seen::IdDict{Any, Nothing}, depth::Int)
    T = typeof(x)
    isbitstype(T) && return out # holds no functions or references (its type: above)
    if x isa DenseArray
        # Array, and Memory (Julia >= 1.11 Dict storage)
        # Elements of a bits type hold nothing more than their type says.
        isbitstype(eltype(x)) && return out
        # Counted, not only `seen`: equal bits elements (a Vector{Any} of zeros)
        # do not grow `seen`.
        for (n, i) in enumerate(eachindex(x))
            (n > MAX_SCANNED || length(seen) >= MAX_SCANNED) && break
            isassigned(x, i) && needs!(out, x[i], seen, depth)
        end
        return out
    end
    for i in 1:nfields(x)
        length(seen) >= MAX_SCANNED && break
        isdefined(x, i) && needs!(out, getfield(x, i), seen, depth)
    end
    return out
end

"Record the `Main` names type `T` (and its parameters) needs: `Scale`, `Main.Sub.T` -> `Sub`."
function needs_typename!(out::Set{String}, T, seen::IdDict{Any, Nothing})
    T isa UnionAll && (T = Base.unwrap_unionall(T))
    T isa DataType || return out
    key = (:typename, T)
    (haskey(seen, key) || length(seen) >= MAX_SCANNED) && return out
    seen[key] = nothing
    mod = parentmodule(T)
    if Base.moduleroot(mod) === Main && mod !== Base && mod !== Core
        name = nameof(T)
        if mod !== Main
            push!(out, string(fullname(mod)[2])) # Main.Sub.T: the worker needs Sub
        elseif !is_hidden(name)
            push!(out, string(name))
        elseif T <: Function && isdefined(T, :instance)
            # `typeof(slowinc)` (named `#slowinc`): needs the function itself
            needs!(out, T.instance, seen)
        end
    end
    for p in T.parameters
        p isa Type && needs_typename!(out, p, seen)
    end
    return out
end

"The methods a callable type has (what Serialization sends for a Main closure type)."
function methods_of(T::Type)
    matches = try
        Base._methods_by_ftype(Tuple{T, Vararg{Any}}, -1, Base.get_world_counter())
    catch
        nothing
    end
    matches isa AbstractVector || return Method[]
    return Method[m.method for m in matches]
end

function needs_type!(out::Set{String}, T::Type, seen::IdDict{Any, Nothing})
    haskey(seen, T) && return out
    seen[T] = nothing
    for m in methods_of(T)
        code = try
            Base.uncompressed_ast(m)
        catch
            nothing
        end
        code === nothing || foreach(s -> needs_code!(out, s, seen), code.code)
    end
    return out
end

function needs_code!(out::Set{String}, x, seen::IdDict{Any, Nothing})
    if x isa GlobalRef
        x.mod === Main && needs_global!(out, x.name, seen)
    elseif x isa Expr
        foreach(a -> needs_code!(out, a, seen), x.args)
    elseif x isa Core.ReturnNode
        isdefined(x, :val) && needs_code!(out, x.val, seen)
    elseif x isa Core.GotoIfNot
        needs_code!(out, x.cond, seen)
    end
    return out
end

function needs_global!(out::Set{String}, name::Symbol, seen::IdDict{Any, Nothing})
    name in WORKER_MAIN && return out
    if is_hidden(name)
        # A closure type nested in this one: sent whole, look inside it.
        if isdefined(Main, name)
            v = getglobal(Main, name)
            v isa Type && needs_type!(out, v, seen)
            v isa Function && needs!(out, v, seen)
        end
        return out
    end
    owner = binding_owner(name)
    if owner === PythonCall
        # `pyimport` & co. from a client's `using PythonCall`: a task function runs with
        # Python's GIL released, so this is refused whatever the workers define
        # (`pydispatch.julia.everywhere.PYTHON_CALL`).
        push!(out, "PythonCall." * string(name))
    elseif !(owner === Base || owner === Core)
        push!(out, string(name))
    end
    return out
end

"The module that owns `Main.name` (`Base` for `+`, `Main` for a Main global)."
function binding_owner(name::Symbol)
    isdefined(Main, name) || return Main
    owner = try
        Base.binding_module(Main, name)
    catch
        nothing
    end
    owner isa Module && return owner
    value = getglobal(Main, name)
    for m in (Base, Core)
        isdefined(m, name) && getglobal(m, name) === value && return m
    end
    return Main
end

# -- on a worker --------------------------------------------------------------

"How many resolved functions a worker keeps (least recently used go first)."
const MAX_FUNCTIONS = 256

"Resolved functions on this worker, by reference or content digest, oldest first."
const FUNCTIONS = Dict{String, Any}()
const FUNCTION_ORDER = String[]

function cached!(make, key::String)
    if haskey(FUNCTIONS, key)
        i = findfirst(==(key), FUNCTION_ORDER)
        i === nothing || deleteat!(FUNCTION_ORDER, i)
        push!(FUNCTION_ORDER, key)
        return FUNCTIONS[key]
    end
    value = make()
    FUNCTIONS[key] = value
    push!(FUNCTION_ORDER, key)
    while length(FUNCTION_ORDER) > MAX_FUNCTIONS
        delete!(FUNCTIONS, popfirst!(FUNCTION_ORDER))
    end
    return value
end

"The function a spec tree names (pure Julia: runs with the GIL released)."
function resolve(spec::Tuple)
    kind = spec[1]
    if kind == "ref"
        path, uuid = spec[2]::String, spec[3]::String
        return cached!(() -> resolve_ref(path, uuid), "ref:$(uuid):$(path)")
    elseif kind == "serialized"
        digest = spec[2]::String
        # An empty digest (a spec straight from `funcspec`) cannot key the cache.
        isempty(digest) && return load_serialized(spec)
        return cached!(() -> load_serialized(spec), "serialized:" * digest)
    end
    throw(ArgumentError("unknown Julia function spec kind $(repr(kind))"))
end

function load_serialized(spec::Tuple)
    for p in spec[4]
        require(Base.PkgId(Base.UUID(p[1]), p[2]))
    end
    return deserialize_loading(spec[3])
end

"""
    require(id::Base.PkgId)

Load a package. Code that uses what it defines runs through `invokelatest`:
since Julia 1.12 bindings are world-aged, and a caller still in the world from
before the load would not see them ("binding may be too new").
"""
require(id::Base.PkgId) = Base.require(id)

function resolve_ref(path::String, uuid::String)
    parts = split(path, '.')
    obj = if isempty(uuid)
        Base.invokelatest(getglobal, Main, Symbol(parts[1]))
    else
        require(Base.PkgId(Base.UUID(uuid), String(parts[1])))
    end
    for part in parts[2:end]
        obj = Base.invokelatest(getglobal, obj, Symbol(part))
    end
    return obj
end

"Deserialize, loading any package the bytes refer to that is not loaded yet."
function deserialize_loading(data::Vector{UInt8})
    # Serialization's `deserialize_module` calls `Base.root_module`, which throws
    # `KeyError(::PkgId)` for a package that is not loaded (Julia stdlib/Serialization).
    for _ in 1:64
        try
            # A `Py` inside is unpickled (`deserialize_py`): needs the GIL (`with_gil`).
            return with_gil(() -> Base.invokelatest(deserialize, IOBuffer(data)))
        catch e
            (e isa KeyError && e.key isa Base.PkgId) || rethrow()
            require(e.key)
        end
    end
    throw(ArgumentError("too many packages to load while deserializing a value"))
end

"`(true, f())`, or `(false, error tree)` if it throws (pure Julia)."
function guarded(f)
    try
        return (true, f())
    catch e
        return (false, error_tree(e, catch_backtrace()))
    end
end

# Run `f` with Python's GIL released: nothing in it may touch Python. It is the
# function form of `PythonCall.GIL.@unlock` (PythonCall.jl src/GIL/GIL.jl), which
# exists since PythonCall 0.9.22.
unlocked(f) = PythonCall.GIL.unlock(f)

# Run `f` holding the GIL, whether or not this thread holds it now. In PythonCall's
# src/GIL/GIL.jl, `GIL.unlock` is `PyEval_SaveThread`/`PyEval_RestoreThread` and
# `GIL.lock` is `PyGILState_Ensure`/`PyGILState_Release`. Ensure on a thread whose
# state was saved by PyEval_SaveThread re-takes the GIL with that same thread state,
# and Release saves it again; on a thread that already holds the GIL, Ensure only
# counts (CPython Python/pystate.c, PyGILState_Ensure). This runs in the same Julia
# task as the `unlocked` around it and does not yield, so it stays on the owner
# thread (the PythonCall.jl#809 caveat, task migration, does not arise).
with_gil(f) = PythonCall.GIL.lock(f)

"""
    invoke_task(request) -> Py

Called by pydispatch's juliacall backend on the worker's owner thread.
`request.payload` is `(spec, args, kwargs)` with tagged arguments. Resolving
the function (which may load packages and compile), deserializing and decoding
the arguments, and encoding the result run with the GIL released, so the
worker's event loop keeps heartbeating; so does the call itself unless the spec
says `nogil=false`. Returns the tagged result, or a tagged error: no Julia
exception escapes to Python. A spec `("eval", bytes, origin, false)` is an
`@everywhere` block, evaluated in `Main` with the GIL held (it may load packages
whose `__init__` calls Python).
"""
function invoke_task(request)
    out = try
        req = pygetattr(Py(request), "payload")
        spec = jltree(pygetitem(req, 0))
        args = jltree(pygetitem(req, 1))
        kwargs = jltree(pygetitem(req, 2))
        spec[1] == "eval" ? run_eval(spec) : run_call(spec, args, kwargs)
    catch e
        error_tree(e, catch_backtrace())
    end
    return try
        pyobj(out)
    catch e
        pyobj(error_tree(e, catch_backtrace()))
    end
end

function run_call(spec::Tuple, args, kwargs)
    ok, prepared = unlocked() do
        guarded() do
            f = resolve(spec)
            # `resolve` may have loaded packages: decode (and below, encode) in the
            # newest world, so their methods (`hash`, `serialize`, ...) are seen.
            xs, kws = Base.invokelatest(decode_args, args, kwargs)
            (f, xs, kws)
        end
    end
    ok || return prepared
    f, xs, kws = prepared
    call = () -> Base.invokelatest(f, xs...; kws...)
    ok, result = spec[end] === true ? unlocked(() -> guarded(call)) : guarded(call)
    ok || return result
    _, tree = unlocked(() -> guarded(() -> Base.invokelatest(totree, result)))
    return tree # the result's tree, or the error tree of a failed encoding
end

function decode_args(args, kwargs)
    xs = Any[fromtree(a) for a in args]
    kws = Pair{Symbol, Any}[Symbol(kv[1]) => fromtree(kv[2]) for kv in kwargs]
    return xs, kws
end

function run_eval(spec::Tuple)
    ok, ex = unlocked(() -> guarded(() -> deserialize_loading(spec[2])))
    ok || return ex
    ok, err = guarded(() -> eval_main(ex))
    return ok ? ("nothing",) : err
end

"Let Julia's scheduler run (called by the owner thread while it has no work)."
function idle()
    yield()
    return nothing
end
