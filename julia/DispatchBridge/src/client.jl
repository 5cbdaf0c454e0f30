# Client: submit, cancel, gather, replicate, shutdown (pydispatch.Client underneath).

"""
    Client(scheduler_address::String) -> Client

A client of the dask scheduler at `scheduler_address`, for advanced workflows
(`submit`, `cancel`, `gather`, `replicate`, `shutdown`). Nodes are the
Dispatcher.jl nodes; each is sent once, with its dependencies.
"""
struct Client
    source::Py
    scheduler_address::String
    translator::Translator
    of_executor::Bool
end

Client(scheduler_address::AbstractString) = Client(
    pygetattr(PYDISPATCH[], "Client")(String(scheduler_address)),
    String(scheduler_address),
    Translator(),
    false,
)

# A DaskExecutor's client is its Python executor's (one dask connection, not two);
# looked up each time, as `reset!` replaces it.
pyclient(c::Client) = c.of_executor ? pygetattr(c.source, "client") : c.source

pynodes(c::Client, nodes) = pylist(topynode(c.translator, n) for n in nodes)

"""
    submit(client, node; workers=Address[])

Submit `node` and every dependency not submitted yet, in one update; `workers`
restricts where `node` runs.
"""
function submit(client::Client, node::Dispatcher.DispatchNode; workers = Address[])
    addresses = isempty(workers) ? nothing : pylist(string(w) for w in workers)
    pynode = topynode(client.translator, node)
    checked(() -> hostapi().check_graph(pylist((pynode,)), pyclient(client)))
    pyclient(client).submit(pynode; workers = addresses)
    return nothing
end

"""
    cancel(client, nodes)

Stop `nodes`, forget their results and those of their dependents.
"""
function cancel(client::Client, nodes::AbstractVector{<:Dispatcher.DispatchNode})
    pyclient(client).cancel(pynodes(client, nodes))
    return nothing
end

"""
    gather(client, nodes) -> Vector

The values of `nodes`, in order. A node that failed throws its error: a
`RemoteTaskError` (Julia error on a worker) or a `PyException` (Python error).
"""
function gather(client::Client, nodes::AbstractVector{<:Dispatcher.DispatchNode})
    values = Any[]
    for o in hostapi().gather(pyclient(client), pynodes(client, nodes))
        ok, value = outcome_value(o)
        ok || throw(first(value))
        push!(values, value)
    end
    return values
end

"""
    result(client, node)

The value of one submitted node (see `gather`).
"""
result(client::Client, node::Dispatcher.DispatchNode) = only(gather(client, [node]))

"""
    replicate(client; nodes=nothing)

Copy results onto every worker (default: everything this client submitted).
"""
function replicate(client::Client; nodes = nothing)
    pyclient(client).replicate(nodes === nothing ? nothing : pynodes(client, nodes))
    return nothing
end

"""
    shutdown(client)

Forget everything this client submitted. Does not stop the scheduler or the
workers; a second call throws.
"""
function shutdown(client::Client)
    pyclient(client).shutdown()
    return nothing
end

"""
    get_key(node) -> String

The node's key: equal for identical nodes.
"""
get_key(node::Dispatcher.DispatchNode) = pyconvert(
    String,
    PYDISPATCH[].get_key(topynode(Translator(), node)),
)

"""
    Address(text) / Address(host, port; scheme="tcp")

A scheduler or worker address; `string(a)` is like `"tcp://127.0.0.1:8786"`.
"""
struct Address
    scheme::String
    host::String
    port::Int
end

function Address(text::AbstractString)
    parts = pyimport("pydispatch.address").parse_address(String(text))
    return Address(getstr(parts, 0), getstr(parts, 1), pyconvert(Int, pygetitem(parts, 2)))
end

Address(host, port::Integer; scheme::AbstractString = "tcp") = Address(
    String(scheme),
    string(host),
    Int(port),
)

function Base.show(io::IO, a::Address)
    host = occursin(':', a.host) ? "[$(a.host)]" : a.host
    print(io, a.scheme, "://", host, ":", a.port)
    return nothing
end
