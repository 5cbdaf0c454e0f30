"""
    DispatchBridge

Run Dispatcher.jl graphs on a dask cluster through pydispatch (Python), and run
Julia functions on Python dask workers. `using DispatchBridge` gives the
DaskDistributedDispatcher.jl API: `DaskExecutor`, `Worker`, `Client`, `run!`,
`reset!`, `submit`, `cancel`, `gather`, `replicate`, `shutdown`, `get_key`,
`Address`, and `@everywhere` for code every worker's Julia must run.

The conversion policy lives in Python (`pydispatch.julia.convert`); this package
only builds and reads its tagged values.
"""
module DispatchBridge

import Dispatcher
import PythonCall
import ResultTypes
import TOML
using Dispatcher: run!
using PythonCall:
    Py,
    PyException,
    pybuiltins,
    pybytes,
    pyconvert,
    pydict,
    pyfunc,
    pygetattr,
    pygetitem,
    pyimport,
    pyis,
    pyisinstance,
    pylist,
    pyrepr,
    pystr,
    pytuple
using Serialization: deserialize, serialize

export @everywhere,
    Address,
    Client,
    DaskExecutor,
    PyFunc,
    RemoteTaskError,
    UnavailableFunctionError,
    Worker,
    cancel,
    gather,
    get_key,
    replicate,
    reset!,
    run!,
    shutdown,
    submit

"The pydispatch version this DispatchBridge is released with (checked at load)."
const PYDISPATCH_VERSION = "0.1.0"

const PYDISPATCH = Ref{Py}()
const HOSTAPI = Ref{Py}()

include("errors.jl")
include("convert.jl")
include("functions.jl")
include("everywhere.jl")
include("translate.jl")
include("runfile.jl")
include("client.jl")
include("executor.jl")
include("worker.jl")

function __init__()
    # Python is touched at load time only, never while precompiling.
    PYDISPATCH[] = pyimport("pydispatch")
    HOSTAPI[] = pyimport("pydispatch.julia.hostapi")
    version = pyconvert(String, pygetattr(PYDISPATCH[], "__version__"))
    if version != PYDISPATCH_VERSION
        @warn "DispatchBridge $(PYDISPATCH_VERSION) expects pydispatch $(PYDISPATCH_VERSION) " *
            "but Python has $(version): install matching versions"
    end
    return nothing
end

hostapi() = HOSTAPI[]

end # module
