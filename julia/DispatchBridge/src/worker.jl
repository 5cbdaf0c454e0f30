# Worker: a Julia-capable dask worker in a subprocess that reuses this Julia.

"""
    Worker(scheduler_address="127.0.0.1:8786"; nthreads=1, timeout=300, python=<PythonCall's python>)

Start a dask worker for `scheduler_address` in a subprocess
(`python -m pydispatch worker ADDRESS --julia`) that runs Julia tasks with
*this* Julia and *this* project (`PYTHON_JULIACALL_EXE`,
`PYTHON_JULIACALL_PROJECT`), so it can call every function this session can.
Returns once the worker has registered; `w.address` is its address. Stop it
with `shutdown(w)`.
"""
struct Worker
    process::Base.Process
    address::String
    scheduler_address::String
end

function Worker(
    scheduler_address::AbstractString = "127.0.0.1:8786";
    nthreads::Integer = 1,
    timeout::Real = 300,
    python::AbstractString = pyconvert(String, pyimport("sys").executable),
)
    address = String(scheduler_address)
    h = hostapi()
    known = h.scheduler_workers(address)
    cmd = pyconvert(
        Vector{String},
        h.worker_command(address; nthreads = Int(nthreads), python = String(python)),
    )
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    project = dirname(Base.active_project())
    env = pyconvert(
        Dict{String, String},
        h.worker_env(
            julia,
            project;
            juliacall_path = joinpath(pkgdir(PythonCall), "pysrc"),
        ),
    )
    process = run(setenv(Cmd(cmd), env); wait = false)
    alive = pyfunc(() -> process_running(process))
    worker_address = try
        pyconvert(
            String,
            h.wait_for_worker(address, known; timeout = Float64(timeout), alive = alive),
        )
    catch
        kill(process)
        rethrow()
    end
    return Worker(process, worker_address, address)
end

"""
    shutdown(w::Worker)

Stop the worker process (its tasks are rescheduled on other workers).
"""
function shutdown(w::Worker)
    process_running(w.process) && kill(w.process)
    wait(w.process)
    return nothing
end
