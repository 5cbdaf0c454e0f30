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
    name = nameof(f)
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
define them (`@everywhere`). Names from `Base` and `Core` need nothing.
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

function needs!(out::Set{String}, x, seen::IdDict{Any, Nothing})
    haskey(seen, x) && return out
    seen[x] = nothing
    if x isa Core.Box
        isdefined(x, :contents) && needs!(out, x.contents, seen)
    elseif x isa Function
        ref = funcref(x)
        if ref !== nothing
            parts = split(ref[1], '.')
            parts[1] == "Main" && push!(out, String(parts[2]))
        elseif parentmodule(x) === Main
            needs_type!(out, typeof(x), seen)
            for i in 1:nfields(x)
                # captured variables travel by value, but not named functions
                isdefined(x, i) && needs!(out, getfield(x, i), seen)
            end
        end
    elseif !(x isa Module || x isa Type)
        # A value of a named type defined in Main (a callable struct, or a captured
        # value) travels with a reference to its type, which a worker must define.
        T = typeof(x)
        if T isa DataType && parentmodule(T) === Main && !is_hidden(nameof(T))
            push!(out, string(nameof(T)))
        end
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
    (owner === Base || owner === Core) || push!(out, string(name))
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
