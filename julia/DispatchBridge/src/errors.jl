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
    errortagged(e, bt) -> Py

The tagged error `("error", type, message, backtrace, payload)` for an
exception caught on a worker; `payload` is the serialized exception or `None`.
"""
function errortagged(e, bt)
    payload = try
        io = IOBuffer()
        serialize(io, e)
        pybytes(take!(io))
    catch
        nothing
    end
    message = try
        sprint(showerror, e)
    catch
        string(typeof(e))
    end
    backtrace = try
        sprint(io -> Base.show_backtrace(io, bt))
    catch
        ""
    end
    return pytuple(("error", string(typeof(e)), message, backtrace, payload))
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
                deserialize(IOBuffer(pyconvert(Vector{UInt8}, payload)))
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
