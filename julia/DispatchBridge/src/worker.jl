# Worker: a Julia-capable dask worker in a subprocess that reuses this Julia.

"""
    Worker(scheduler_address="127.0.0.1:8786"; nthreads=1, timeout=300, python=<PythonCall's python>, log=<temp file>)

Start a dask worker for `scheduler_address` in a subprocess
(`python -m pydispatch worker ADDRESS --julia`) that runs Julia tasks with
*this* Julia and *this* project (`PYTHON_JULIACALL_EXE`,
`PYTHON_JULIACALL_PROJECT`), so it can load every package this session can.
Code defined in `Main` reaches it through `@everywhere`. Returns once the
worker has registered; `w.address` is its address. Its output goes to `w.log`,
whose end is shown if it fails to start. Stop it with `shutdown(w)`.

The active project must have PythonCall and DispatchBridge as direct
dependencies: the worker's Julia runs `using PythonCall` in `Main` (juliacall)
and `import DispatchBridge`.
"""
struct Worker
    process::Base.Process
    address::String
    scheduler_address::String
    log::String
end

function Worker(
    scheduler_address::AbstractString = "127.0.0.1:8786";
    nthreads::Integer = 1,
    timeout::Real = 300,
    python::AbstractString = pyconvert(String, pyimport("sys").executable),
    log::AbstractString = tempname() * "-pydispatch-worker.log",
)
    address = String(scheduler_address)
    project_file = Base.active_project()
    check_worker_project(project_file)
    h = hostapi()
    known = h.scheduler_workers(address)
    cmd = pyconvert(
        Vector{String},
        h.worker_command(address; nthreads = Int(nthreads), python = String(python)),
    )
    julia = joinpath(Sys.BINDIR, Base.julia_exename())
    env = pyconvert(
        Dict{String, String},
        h.worker_env(
            julia,
            dirname(project_file),
            # Julia's ENV, not Python's os.environ (a copy taken when Python started).
            pydict(Dict{String, String}(ENV));
            juliacall_path = joinpath(pkgdir(PythonCall), "pysrc"),
        ),
    )
    logfile = String(log)
    process = open(logfile, "w") do io
        run(pipeline(setenv(Cmd(cmd), env); stdout = io, stderr = io); wait = false)
    end
    # `process_running` reads `process.handle`, which only libuv's exit callback
    # clears (Julia base/process.jl, `uv_return_spawn`), and libuv callbacks run only
    # when Julia processes events. Julia is blocked inside Python's polling loop here,
    # so let it: `yield()` goes through `wait()`, which calls `process_events()`
    # (Julia base/task.jl). Without it a worker that died at once would be noticed
    # only at the timeout.
    alive = pyfunc(() -> (yield(); process_running(process)))
    worker_address = try
        pyconvert(
            String,
            h.wait_for_worker(address, known; timeout = Float64(timeout), alive = alive),
        )
    catch e
        stop_process(process, 10)
        throw(ErrorException(
            "the worker for $(address) did not start: " *
                sprint(showerror, e) *
                "\nLast lines of its log $(logfile):\n" *
                log_tail(logfile),
        ))
    end
    return Worker(process, worker_address, address, logfile)
end

"Throw, saying what to do, unless the worker's Julia can `using PythonCall` and `import DispatchBridge`."
function check_worker_project(project_file::Union{String, Nothing})
    project_file === nothing &&
        throw(ArgumentError(
            "Worker needs an active Julia project (start Julia with --project)",
        ))
    project = TOML.parsefile(project_file)
    deps = get(project, "deps", Dict{String, Any}())
    missing = [
        name
        for name in ("PythonCall", "DispatchBridge")
        if !(haskey(deps, name) || get(project, "name", "") == name)
    ]
    isempty(missing) ||
        throw(ArgumentError(
            "the active project $(project_file) lacks $(join(missing, " and ")) as direct " *
                "dependencies; a worker's Julia loads them in Main. Add them: " *
                "using Pkg; Pkg.add([$(join(repr.(missing), ", "))])",
        ))
    return nothing
end

function log_tail(path::String; lines::Int = 40)
    text = try
        read(path, String)
    catch
        return "(no log)"
    end
    return join(last(split(text, '\n'), lines), '\n')
end

"SIGTERM, wait up to `timeout` seconds, then SIGKILL (and wait a bounded time again)."
function stop_process(process::Base.Process, timeout::Real)
    process_running(process) && kill(process)
    if timedwait(() -> !process_running(process), Float64(timeout)) !== :ok
        kill(process, 9) # SIGKILL (POSIX): Base names only SIGTERM
        timedwait(() -> !process_running(process), 10.0)
    end
    return nothing
end

"""
    shutdown(w::Worker; timeout=30)

Stop the worker process (its tasks are rescheduled on other workers): it gets
`timeout` seconds to close, then it is killed.
"""
function shutdown(w::Worker; timeout::Real = 30)
    stop_process(w.process, timeout)
    return nothing
end
