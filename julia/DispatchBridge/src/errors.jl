"""
    RemoteTaskError(jltype, message, backtrace, original)

A Julia exception raised by a task on a worker. `jltype` is the remote
exception's type name, `message` its `showerror` text, `backtrace` the remote
backtrace as text, and `original` the exception itself when it could be
deserialized here (else `nothing`).
"""
struct RemoteTaskError <: Exception
    jltype::String
    message::String
    backtrace::String
    original::Union{Exception, Nothing}
end

function Base.showerror(io::IO, e::RemoteTaskError)
    print(io, "RemoteTaskError: ", e.jltype, " on a worker: ", e.message)
    if !isempty(e.backtrace)
        print(io, "\nRemote backtrace:\n", e.backtrace)
    end
    return nothing
end

"""
    ConversionError(msg)

A value cannot cross between Julia and Python under the conversion table.
"""
struct ConversionError <: Exception
    msg::String
end

Base.showerror(io::IO, e::ConversionError) = print(io, "ConversionError: ", e.msg)

"""
    UnavailableFunctionError(msg)

A graph uses a function (or a `Main` global) that no worker can resolve; thrown
before anything is submitted. Define what it names inside `@everywhere`.
"""
struct UnavailableFunctionError <: Exception
    msg::String
end

Base.showerror(io::IO, e::UnavailableFunctionError) = print(
    io,
    "UnavailableFunctionError: ",
    e.msg,
)

"Largest serialized exception a worker sends back (bigger ones send only their text)."
const MAX_ERROR_PAYLOAD = 1 << 20
"Longest error message or backtrace text a worker sends back."
const MAX_ERROR_TEXT = 1 << 16

function clip(text::String)
    ncodeunits(text) <= MAX_ERROR_TEXT && return text
    keep = prevind(text, MAX_ERROR_TEXT)
    return text[1:keep] * "\n... ($(ncodeunits(text)) bytes in all, cut)"
end

"""
    error_tree(e, bt) -> Tuple

The tagged error `("error", type, message, backtrace, payload)` (a tree) for an
exception caught on a worker; `payload` is the serialized exception, or
`nothing` when it does not serialize or is over `MAX_ERROR_PAYLOAD` bytes (a
`BoundsError` or `MethodError` carries its arguments, which may be huge). Runs
with or without the GIL: it takes the GIL itself (`with_gil`), because a
`PyException` (or an exception holding a `Py`) pickles when serialized and calls
Python when shown (PythonCall src/Compat/serialization.jl; src/Core/err.jl).
"""
error_tree(e, bt) = with_gil(() -> Base.invokelatest(error_tree_gil, e, bt))
# `invokelatest`: a task may load a package (or `@everywhere` may define methods)
# in this very call, and its `showerror`/`serialize` methods are newer than the
# caller's world; without it Julia would not see them (world age, Julia manual
# "Redefining Methods").

function error_tree_gil(e, bt)
    payload = try
        io = IOBuffer()
        serialize(io, e)
        position(io) <= MAX_ERROR_PAYLOAD ? take!(io) : nothing
    catch
        nothing
    end
    message = try
        clip(sprint(showerror, e))
    catch
        string(typeof(e))
    end
    backtrace = try
        clip(sprint(io -> Base.show_backtrace(io, bt)))
    catch
        ""
    end
    return ("error", string(typeof(e)), message, backtrace, payload)
end

"""
    outcome_value(o::Py) -> (ok::Bool, value_or_error_and_trace)

Read one outcome from `pydispatch.julia.hostapi`: a value, a remote Julia
error (`RemoteTaskError`) or a Python error (`PyException`).
"""
function outcome_value(o::Py)
    kind = pyconvert(String, pygetitem(o, 0))
    if kind == "ok"
        return (true, fromtagged(pygetitem(o, 1)))
    elseif kind == "julia"
        payload = pygetitem(o, 4)
        original = nothing
        if !pyis(payload, pybuiltins.None)
            original = try
                deserialize_loading(pyconvert(Vector{UInt8}, payload))
            catch
                nothing
            end
        end
        err = RemoteTaskError(
            pyconvert(String, pygetitem(o, 1)),
            pyconvert(String, pygetitem(o, 2)),
            pyconvert(String, pygetitem(o, 3)),
            original isa Exception ? original : nothing,
        )
        return (false, (err, pyconvert(String, pygetitem(o, 5))))
    else
        return (false, (PyException(pygetitem(o, 1)), pyconvert(String, pygetitem(o, 2))))
    end
end

"""
    checked(f)

`f()`, with pydispatch's `UnavailableFunctionError` (a graph that needs a `Main`
name no worker has) thrown as the Julia `UnavailableFunctionError`.
"""
function checked(f)
    try
        return f()
    catch e
        if e isa PyException
            cls = pygetattr(pyimport("pydispatch.julia.values"), "UnavailableFunctionError")
            pyisinstance(e.v, cls) &&
                throw(UnavailableFunctionError(pyconvert(String, pystr(e.v))))
        end
        rethrow()
    end
end
