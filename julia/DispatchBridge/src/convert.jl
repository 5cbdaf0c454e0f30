# The Julia half of the conversion table in `pydispatch.julia.convert`: build and
# read tagged values. Keep the policy in Python; keep this file thin.

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

tag(name::String, items...) = pytuple((name, items...))
tagged_items(xs) = pylist(totagged(x) for x in xs)
rawbytes(x::ELTYPE) = pybytes(collect(reinterpret(UInt8, [x])))

"""
    totagged(x) -> Py

The tagged Python value for a Julia value (see `pydispatch.julia.convert`).
"""
totagged(::Nothing) = tag("nothing")
totagged(x::Bool) = tag("bool", x)
totagged(x::Int64) = tag("int", x)
totagged(x::Float64) = tag("float", x)
totagged(x::ComplexF64) = tag("complex", real(x), imag(x))
totagged(x::ELTYPE) = tag("num", string(typeof(x)), rawbytes(x))
totagged(x::BigInt) = tag("bigint", string(x))
function totagged(x::Rational)
    return tag(
        "rational",
        x isa Rational{BigInt} ? "BigInt" : "Int64",
        string(numerator(x)),
        string(denominator(x)),
    )
end
totagged(x::AbstractString) = tag("str", String(x))
totagged(x::AbstractChar) = tag("str", string(x))
totagged(x::Symbol) = tag("str", string(x))
totagged(x::Tuple) = tag("tuple", tagged_items(x))
totagged(x::Pair) = tag("tuple", tagged_items((first(x), last(x))))
totagged(x::AbstractDict) = tag(
    "dict",
    pylist(pytuple((totagged(k), totagged(v))) for (k, v) in x)
)
totagged(x::NamedTuple) = tag(
    "dict",
    pylist(pytuple((totagged(string(k)), totagged(v))) for (k, v) in pairs(x))
)
totagged(x::AbstractSet) = tag("set", tagged_items(x))
totagged(x::Py) = tag("pyobject", x)
function totagged(x::AbstractArray)
    T = eltype(x)
    if T <: ELTYPE && isconcretetype(T)
        data = collect(reinterpret(UInt8, vec(collect(x))))
        return tag("array", string(T), pytuple(size(x)), pybytes(data))
    elseif ndims(x) == 1
        return tag("list", tagged_items(x))
    end
    return blob(x)
end
totagged(x) = blob(x)

function blob(x)
    io = IOBuffer()
    serialize(io, x)
    return tag("blob", string(typeof(x)), pybytes(take!(io)))
end

getstr(t::Py, i::Integer) = pyconvert(String, pygetitem(t, i))

"""
    fromtagged(t::Py)

The Julia value for a tagged Python value (see `pydispatch.julia.convert`).
Arrays are copied; lists and dicts get the narrowest element types.
"""
function fromtagged(t::Py)
    name = getstr(t, 0)
    if name == "nothing"
        return nothing
    elseif name == "bool"
        return pyconvert(Bool, pygetitem(t, 1))
    elseif name == "int"
        return pyconvert(Int64, pygetitem(t, 1))
    elseif name == "bigint"
        return parse(BigInt, getstr(t, 1))
    elseif name == "float"
        return pyconvert(Float64, pygetitem(t, 1))
    elseif name == "complex"
        return ComplexF64(
            pyconvert(Float64, pygetitem(t, 1)),
            pyconvert(Float64, pygetitem(t, 2)),
        )
    elseif name == "num"
        T = eltype_named(getstr(t, 1))
        return reinterpret(T, pyconvert(Vector{UInt8}, pygetitem(t, 2)))[1]
    elseif name == "rational"
        I = getstr(t, 1) == "Int64" ? Int64 : BigInt
        return Rational{I}(parse(I, getstr(t, 2)), parse(I, getstr(t, 3)))
    elseif name == "str"
        return getstr(t, 1)
    elseif name == "tuple"
        return Tuple(fromtagged(v) for v in pygetitem(t, 1))
    elseif name == "list"
        return [fromtagged(v) for v in pygetitem(t, 1)]
    elseif name == "dict"
        return Dict(
            fromtagged(pygetitem(kv, 0)) => fromtagged(pygetitem(kv, 1))
            for kv in pygetitem(t, 1)
        )
    elseif name == "set"
        return Set(fromtagged(v) for v in pygetitem(t, 1))
    elseif name == "array"
        T = eltype_named(getstr(t, 1))
        shape = Tuple(pyconvert(Int, n) for n in pygetitem(t, 2))
        data = pyconvert(Vector{UInt8}, pygetitem(t, 3))
        return collect(reshape(reinterpret(T, data), shape))
    elseif name == "blob"
        return deserialize(IOBuffer(pyconvert(Vector{UInt8}, pygetitem(t, 2))))
    elseif name == "pyobject"
        return pygetitem(t, 1)
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
