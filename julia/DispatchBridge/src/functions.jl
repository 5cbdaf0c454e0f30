# Julia functions as references or bytes (`funcspec`, client side) and their
# resolution and invocation on a worker's owner thread (`invoke_task`).

"""
    funcspec(f) -> Py

The spec `pydispatch.julia.JuliaFunction.from_spec` reads: a reference
`("ref", "Mod.Sub.f", uuid_or_empty, nogil)` when `f` is a named function (or
type) reachable from a package, `Base` or `Core`; otherwise `Serialization`
bytes `("serialized", "", bytes, [(uuid, name), ...], nogil)`.
"""
function funcspec(f; nogil::Bool = true)
    ref = funcref(f)
    ref === nothing || return pytuple(("ref", ref[1], ref[2], nogil))
    io = IOBuffer()
    serialize(io, f)
    pkgs = pylist(pytuple((string(id.uuid), id.name)) for id in packages_of(f))
    return pytuple(("serialized", "", pybytes(take!(io)), pkgs, nogil))
end

"(qualified name, package uuid or \"\") for a named function, or `nothing`."
function funcref(f)
    (f isa Function || f isa DataType) || return nothing
    name = nameof(f)
    startswith(string(name), '#') && return nothing
    mod = parentmodule(f)
    (isdefined(mod, name) && getglobal(mod, name) === f) || return nothing
    root = Base.moduleroot(mod)
    path = join((string.(fullname(mod))..., string(name)), '.')
    (root === Base || root === Core) && return (path, "")
    root === Main && return nothing
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

"Resolved functions on this worker, by reference or content digest."
const FUNCTIONS = Dict{String, Any}()

function resolve(spec::Py)
    kind = getstr(spec, 0)
    if kind == "ref"
        path = getstr(spec, 1)
        uuid = getstr(spec, 2)
        return get!(() -> resolve_ref(path, uuid), FUNCTIONS, "ref:$(uuid):$(path)")
    elseif kind == "serialized"
        digest = getstr(spec, 1)
        # An empty digest (a spec straight from `funcspec`) cannot key the cache.
        isempty(digest) && return load_serialized(spec)
        return get!(() -> load_serialized(spec), FUNCTIONS, "serialized:" * digest)
    end
    throw(ArgumentError("unknown Julia function spec kind $(repr(kind))"))
end

function load_serialized(spec::Py)
    for p in pygetitem(spec, 3)
        Base.require(Base.PkgId(Base.UUID(getstr(p, 0)), getstr(p, 1)))
    end
    return deserialize_loading(pyconvert(Vector{UInt8}, pygetitem(spec, 2)))
end

function resolve_ref(path::String, uuid::String)
    parts = split(path, '.')
    obj = if isempty(uuid)
        getglobal(Main, Symbol(parts[1]))
    else
        Base.require(Base.PkgId(Base.UUID(uuid), String(parts[1])))
    end
    for part in parts[2:end]
        obj = getglobal(obj, Symbol(part))
    end
    return obj
end

"Deserialize, loading any package the bytes refer to that is not loaded yet."
function deserialize_loading(data::Vector{UInt8})
    for _ in 1:64
        try
            return deserialize(IOBuffer(data))
        catch e
            (e isa KeyError && e.key isa Base.PkgId) || rethrow()
            Base.require(e.key)
        end
    end
    throw(ArgumentError("too many packages to load while deserializing a function"))
end

"""
    invoke_task(request) -> Py

Called by pydispatch's juliacall backend on the worker's owner thread.
`request.payload` is `(spec, args, kwargs)` with tagged arguments. Runs the
function (with the GIL released unless the spec says `nogil=false`) and returns
the tagged result, or a tagged error: no Julia exception escapes to Python.
"""
function invoke_task(request)
    try
        req = pygetattr(Py(request), "payload")
        spec = pygetitem(req, 0)
        f = resolve(spec)
        args = [fromtagged(a) for a in pygetitem(req, 1)]
        kwargs = [
            Symbol(getstr(kv, 0)) => fromtagged(pygetitem(kv, 1))
            for kv in pygetitem(req, 2)
        ]
        nogil = pyconvert(Bool, pygetitem(spec, -1))
        result = if nogil
            PythonCall.GIL.@unlock Base.invokelatest(f, args...; kwargs...)
        else
            Base.invokelatest(f, args...; kwargs...)
        end
        return totagged(result)
    catch e
        return errortagged(e, catch_backtrace())
    end
end

"Let Julia's scheduler run (called by the owner thread while it has no work)."
function idle()
    yield()
    return nothing
end
