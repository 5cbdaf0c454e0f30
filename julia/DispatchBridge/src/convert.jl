# The Julia half of the conversion table in `pydispatch.julia.convert`: build and
# read tagged values. Keep the policy in Python; keep this file thin.
#
# Two steps each way, so that the work that can be slow (deserializing, loading
# packages, serializing big values) runs with Python's GIL released:
#   Julia value <-> "tree" (pure Julia: Tuples, Vector{Any}, String, Int64, Float64,
#                           Bool, nothing, Vector{UInt8}) needs no Python at all;
#   tree        <-> Python tagged tuple (`pyobj`, `jltree`) needs the GIL and is cheap.

"Element types whose arrays cross as raw column-major bytes (numpy on the Python side)."
const ELTYPES = (
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float16,
    Float32,
    Float64,
    ComplexF32,
    ComplexF64,
)
const ELTYPE = Union{ELTYPES...}
const ELTYPE_BY_NAME = Dict{String, DataType}(string(T) => T for T in ELTYPES)

"Integer types a `Rational` may have on the wire (`RATIONAL_INTTYPES` in Python)."
const RATIONAL_INTS = (
    Int8,
    Int16,
    Int32,
    Int64,
    Int128,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    UInt128,
    BigInt,
)
const RATIONAL_INT_BY_NAME = Dict{String, DataType}(string(T) => T for T in RATIONAL_INTS)

rawbytes(x::ELTYPE) = collect(reinterpret(UInt8, [x]))
items(xs) = Any[totree(x) for x in xs]

# The element type Julia gives a collection rebuilt element by element (what
# `fromtree` does): the `promote_typejoin` of the element types, `Any` when empty.
joined_type(xs) = isempty(xs) ? Any : mapreduce(typeof, Base.promote_typejoin, xs)

"""
    totree(x)

The tagged tree (pure Julia) for a Julia value; `pyobj` makes it the Python
tagged value (see `pydispatch.julia.convert`). A value whose tagged form would
come back as another type (a `Vector{Any}` of numbers, an `OrderedDict`, a
`UnitRange`, invalid UTF-8, ...) travels as a `Serialization` blob, so every
Julia value comes back to Julia exactly.
"""
totree(::Nothing) = ("nothing",)
totree(x::Bool) = ("bool", x)
totree(x::Int64) = ("int", x)
totree(x::Float64) = ("float", x)
totree(x::ComplexF64) = ("complex", real(x), imag(x))
totree(x::ELTYPE) = ("num", string(typeof(x)), rawbytes(x))
totree(x::BigInt) = ("bigint", string(x))
function totree(x::Rational{T}) where {T}
    T in RATIONAL_INTS || return blob(x)
    return ("rational", string(T), string(numerator(x)), string(denominator(x)))
end
# PythonCall refuses invalid UTF-8 (a `String` is any bytes in Julia): those go as blobs.
totree(x::String) = isvalid(x) ? ("str", x) : blob(x)
totree(x::Symbol) = isvalid(string(x)) ? ("symbol", string(x)) : blob(x)
totree(x::Char) = isvalid(x) ? ("char", string(x)) : blob(x)
totree(x::Tuple) = ("tuple", items(x))
totree(x::Pair) = ("pair", totree(first(x)), totree(last(x)))
# Entries are vectors (Python lists), never 2-tuples: `jltree` reads a 2-tuple
# starting with "pyobject" as a Python object, and a field may be called that.
function totree(x::NamedTuple)
    return ("namedtuple", Any[Any[string(k), totree(v)] for (k, v) in pairs(x)])
end
function totree(x::Dict{K, V}) where {K, V}
    (K === joined_type(keys(x)) && V === joined_type(values(x))) || return blob(x)
    return ("dict", Any[(totree(k), totree(v)) for (k, v) in x])
end
totree(x::Set{T}) where {T} = T === joined_type(x) ? ("set", items(x)) : blob(x)
function totree(x::Array{T, N}) where {T, N}
    if T <: ELTYPE && isconcretetype(T)
        data = collect(reinterpret(UInt8, vec(x)))
        return ("array", string(T), Tuple(Int64(n) for n in size(x)), data)
    elseif N == 1 && T === joined_type(x)
        return ("list", items(x))
    end
    return blob(x)
end
totree(x::Py) = ("pyobject", x)
totree(x) = blob(x)

function blob(x)
    io = IOBuffer()
    # `x` may hold a `Py`, which PythonCall serializes with `pickle.dumps`
    # (src/Compat/serialization.jl, `serialize_py`): that needs the GIL, and a worker
    # encodes results with it released (`run_call`). See `with_gil`.
    with_gil(() -> serialize(io, x))
    return ("blob", string(typeof(x)), take!(io))
end

"""
    fromtree(t)

The Julia value for a tagged tree (see `pydispatch.julia.convert`). Arrays are
copied; lists, dicts and sets get the narrowest element types. Blobs are
deserialized loading the packages they need (`deserialize_loading`).
"""
function fromtree(t::Tuple)
    name = t[1]::String
    if name == "nothing"
        return nothing
    elseif name in ("bool", "int", "float", "str")
        return t[2]
    elseif name == "bigint"
        return parse(BigInt, t[2])
    elseif name == "complex"
        return ComplexF64(t[2], t[3])
    elseif name == "num"
        return reinterpret(eltype_named(t[2]), t[3])[1]
    elseif name == "rational"
        I = get(RATIONAL_INT_BY_NAME, t[2], nothing)
        I === nothing &&
            throw(ConversionError("unsupported Rational integer type $(repr(t[2]))"))
        return Rational{I}(parse(I, t[3]), parse(I, t[4]))
    elseif name == "symbol"
        return Symbol(t[2])
    elseif name == "char"
        return only(t[2])
    elseif name == "tuple"
        return Tuple(fromtree(v) for v in t[2])
    elseif name == "pair"
        return fromtree(t[2]) => fromtree(t[3])
    elseif name == "namedtuple"
        keys = Tuple(Symbol(kv[1]) for kv in t[2])
        return NamedTuple{keys}(Tuple(fromtree(kv[2]) for kv in t[2]))
    elseif name == "list"
        return [fromtree(v) for v in t[2]]
    elseif name == "dict"
        return Dict(fromtree(kv[1]) => fromtree(kv[2]) for kv in t[2])
    elseif name == "set"
        return Set(fromtree(v) for v in t[2])
    elseif name == "array"
        T = eltype_named(t[2])
        shape = Tuple(Int(n) for n in t[3])
        return collect(reshape(reinterpret(T, t[4]), shape))
    elseif name == "blob"
        return deserialize_loading(t[3])
    elseif name == "pyobject"
        return t[2]
    end
    throw(ConversionError(
        "unknown tag $(repr(name)) from Python (DispatchBridge and pydispatch versions differ?)",
    ))
end

function eltype_named(name::String)
    T = get(ELTYPE_BY_NAME, name, nothing)
    T === nothing && throw(ConversionError("unsupported array element type $(repr(name))"))
    return T
end

"""
    pyobj(tree) -> Py

The Python tagged value for a tree (needs the GIL).
"""
pyobj(x::Tuple) = pytuple(pyobj(v) for v in x)
pyobj(x::Vector{UInt8}) = pybytes(x)
pyobj(x::Vector) = pylist(pyobj(v) for v in x)
pyobj(x::Union{Nothing, Bool, Int64, Float64, String}) = Py(x)
pyobj(x::Py) = x

"""
    jltree(p::Py)

The tree for a Python tagged value (needs the GIL): tuples, lists, bytes, str,
bool, int, float and None become Julia values; anything else (a `pyobject`
payload) stays a `Py`.
"""
function jltree(p::Py)
    if pyisinstance(p, pybuiltins.tuple)
        # A `pyobject` payload is any Python object, kept as it is.
        if length(p) == 2 &&
                pyisinstance(pygetitem(p, 0), pybuiltins.str) &&
                pyconvert(String, pygetitem(p, 0)) == "pyobject"
            return ("pyobject", pygetitem(p, 1))
        end
        return Tuple(jltree(v) for v in p)
    elseif pyisinstance(p, pybuiltins.list)
        return Any[jltree(v) for v in p]
    elseif pyisinstance(p, pybuiltins.bytes)
        return pyconvert(Vector{UInt8}, p)
    elseif pyisinstance(p, pybuiltins.str)
        return pyconvert(String, p)
    elseif pyisinstance(p, pybuiltins.bool)
        return pyconvert(Bool, p)
    elseif pyisinstance(p, pybuiltins.int)
        return pyconvert(Int64, p)
    elseif pyisinstance(p, pybuiltins.float)
        return pyconvert(Float64, p)
    elseif pyis(p, pybuiltins.None)
        return nothing
    end
    return p
end

"The tagged Python value for a Julia value (the client side, with the GIL)."
totagged(x) = pyobj(totree(x))

"The Julia value for a tagged Python value (the client side, with the GIL)."
fromtagged(t::Py) = fromtree(jltree(t))

getstr(t::Py, i::Integer) = pyconvert(String, pygetitem(t, i))
