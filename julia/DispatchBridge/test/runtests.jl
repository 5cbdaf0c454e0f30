# Run with `julia --project=julia/DispatchBridge -e 'using Pkg; Pkg.test()'`, with
# JULIA_CONDAPKG_BACKEND=Null and JULIA_PYTHONCALL_EXE pointing at a Python that
# has pydispatch (and juliacall) installed. Starts its own dask scheduler, and a
# worker launched from Julia inside Pkg.test's sandbox (JULIA_LOAD_PATH="@:<tmp>").
import Dispatcher
import DispatchBridge
import ResultTypes
using DispatchBridge: @everywhere
using PythonCall:
    Py,
    PyException,
    pybuiltins,
    pyconvert,
    pyimport,
    pyis,
    pylist,
    pystr,
    pytuple
using Sockets: IPv4
using Test: @test, @test_throws, @testset

const DB = DispatchBridge

# Named Main functions: defined here and, once a graph runs, on every worker.
@everywhere begin
    slowadd(x, y) = x + y
    slowinc(x) = x + 1
    slowsum(a...) = sum(a)
    const OFFSET = 100
    offset(x) = x + OFFSET
end

# A named Main function no @everywhere defines: no worker can resolve it.
local_only(x) = x
# A callable struct defined in Main outside @everywhere: its type travels by name.
struct Scale
    k::Int
end
(s::Scale)(x) = s.k * x

roundtrip(x) = DB.fromtagged(DB.hostapi().to_julia(DB.hostapi().decode(DB.totagged(x))))

# Every `run!` here is bounded: a dead worker must fail the test, not hang Pkg.test.
const RUN_TIMEOUT = 300

@testset "DispatchBridge" begin
    @testset "conversions through Python and back are exact" begin
        for x in (
                nothing,
                true,
                3,
                2.5,
                1 + 2im,
                big(2)^70,
                big(2),
                3 // 4,
                Int32(1) // Int32(3),
                "héllo",
                :sym,
                'c',
                (1, "a"),
                1 => "a",
                (a = 1, b = [1.0]),
                [1, 2, 3],
                Any[1, 2],
                Any[1, "x"],
                Dict("a" => 1, "b" => 2),
                Dict{String, Any}("a" => 1),
                Set([1, 2]),
                1:3,
                Float32(1.5),
                IPv4(127, 0, 0, 1), # a blob
            )
            y = roundtrip(x)
            @test isequal(y, x)
            @test typeof(y) === typeof(x)
        end
        m = reshape(collect(1.0:6.0), 2, 3)
        @test roundtrip(m) == m
        @test size(roundtrip(m)) == (2, 3)
        @test roundtrip("\xff") == "\xff" # invalid UTF-8 travels as a blob
    end

    @testset "function references and what workers need" begin
        @test DB.funcref(max) == ("Base.max", "")
        @test DB.funcref(x -> x) === nothing
        @test DB.funcref(slowadd) == ("Main.slowadd", "")
        @test DB.main_names(slowadd) == ["slowadd"]
        @test DB.main_names(max) == String[]
        @test DB.main_names(x -> x + 1) == String[]
        @test DB.main_names(x -> slowinc(x)) == ["slowinc"]
        k = 10
        @test DB.main_names(x -> x + k) == String[] # captured: travels by value
        g = slowadd
        @test DB.main_names(x -> g(x, 1)) == ["slowadd"] # a captured named function
        @test DB.main_names(Scale(2)) == ["Scale"]
        p = Scale(3)
        @test DB.main_names(x -> p(x)) == ["Scale"] # a captured value of a Main type
        # Functions that are not references: what they hold is looked into.
        @test DB.main_names(slowinc ∘ slowadd) == ["slowadd", "slowinc"]
        @test DB.main_names(Base.Fix1(slowadd, 1)) == ["slowadd"]
        # Calling Python from a task function (it runs without the GIL) is flagged.
        @test DB.main_names(x -> pyimport("math")) == ["PythonCall.pyimport"]
        @test DB.main_names(Base.Fix2(max, Scale(2))) == ["Scale"]
        # Values (Op arguments, DataNode data) go by Serialization too.
        @test DB.value_names(slowinc) == ["slowinc"]
        @test DB.value_names(Scale(2)) == ["Scale"]
        @test DB.value_names(Scale) == ["Scale"]
        @test DB.value_names(Any[1, "a", Scale(2)]) == ["Scale"]
        @test DB.value_names(Dict("f" => slowinc)) == ["slowinc"]
        @test DB.value_names(Scale[]) == ["Scale"] # the element type travels too
        @test DB.value_names((1, 2.0, "x", :y, [1, 2])) == String[]
        @test DB.value_names(max) == String[]
        # Bounded: bits arrays are skipped, other big or deep values are cut short.
        @test DB.value_names(zeros(10^6)) == String[]
        @test DB.value_names(Any[0 for _ in 1:(10^6)]) == String[]
        deep = foldl((acc, _) -> Any[acc], 1:10^5; init = Any[])
        @test DB.value_names(deep) == String[]
        @test "slowadd" in DB.available_names()
        @test "OFFSET" in DB.available_names()
    end

    @testset "invoke_task resolves, calls and encodes" begin
        box = pyimport("pydispatch.julia.backends")._Box
        call(f, args...; nogil = true) = DB.invoke_task(box(pytuple((
            DB.pyobj(first(DB.funcspec(f; nogil = nogil))),
            pylist(DB.totagged(a) for a in args),
            pylist(),
        ))))
        @test DB.fromtagged(call(max, 3, 4)) == 4
        closure = let k = 10
            x -> x + k
        end
        @test DB.fromtagged(call(closure, 1)) == 11
        @test DB.fromtagged(call(slowadd, 1, 2)) == 3 # Main.slowadd, resolved by name
        @test DB.fromtagged(call(getproperty, (a = 1,), :a)) == 1 # a Symbol stays a Symbol
        err = call(sqrt, -1.0)
        @test pyconvert(String, err[0]) == "error"
        @test pyconvert(String, err[1]) == "DomainError"
        big_err = call(x -> throw(BoundsError(zeros(10^6), 0)), 1)
        @test pyconvert(String, big_err[1]) == "BoundsError"
        @test pyis(big_err[4], pybuiltins.None) # over the payload cap: text only

        # A value holding a Py is a blob: pickled and unpickled with the GIL held,
        # though the worker decodes arguments and encodes results with it released.
        # (`pystr` calls Python: that function runs with the GIL, `nogil = false`;
        # the result is still encoded with it released.)
        held = DB.fromtagged(call(() -> Ref(pystr("held")); nogil = false))
        @test held isa Base.RefValue{Py}
        @test pyconvert(String, held[]) == "held"
        @test DB.fromtagged(call(r -> r isa Base.RefValue{Py}, Ref(pystr("arg")))) === true
        # An error type (and its showerror) defined during the call is shown with
        # its own method: error trees are built in the newest world.
        newer = call() do
            Core.eval(
                Main,
                quote
                    struct NewerError <: Exception end
                    Base.showerror(io::IO, ::NewerError) = print(
                        io,
                        "shown in the newest world",
                    )
                end,
            )
            # Julia >= 1.12: bindings are world-aged, so look the new type up in the newest world.
            T = Base.invokelatest(getglobal, Main, :NewerError)
            throw(Base.invokelatest(T))
        end
        @test pyconvert(String, newer[2]) == "shown in the newest world"
        # A Python error is shown and pickled with the GIL held too.
        pyerr = call(() -> pyimport("operator").truediv(1, 0); nogil = false)
        @test pyconvert(String, pyerr[0]) == "error"
        @test occursin("PyException", pyconvert(String, pyerr[1]))
        @test occursin("ZeroDivisionError", pyconvert(String, pyerr[2]))
        @test !pyis(pyerr[4], pybuiltins.None)
    end

    @testset "Address" begin
        a = DB.Address("tcp://127.0.0.1:8786")
        @test (a.scheme, a.host, a.port) == ("tcp", "127.0.0.1", 8786)
        @test string(DB.Address(IPv4(127, 0, 0, 1), 9000)) == "tcp://127.0.0.1:9000"
        @test_throws PyException DB.Address("tcp://nope:notaport")
    end

    @testset "on a dask cluster, with a worker launched from Julia" begin
        port = 20000 + rand(0:20000)
        address = "127.0.0.1:$(port)"
        python = pyconvert(String, pyimport("sys").executable)
        scheduler = run(
            `$(python) -m distributed.cli.dask_scheduler --host 127.0.0.1 --port $(port) --no-dashboard`;
            wait = false,
        )
        worker = nothing
        try
            # The scheduler may take a while to come up on a cold machine: wait until it
            # answers (dask's Client retries the connection until its timeout), so the
            # first `Worker` below meets a scheduler that is there.
            pyimport("pydispatch.julia.hostapi").scheduler_workers(address, 120.0)

            # A worker process that exits at once fails `Worker` at once, not at the
            # timeout (the exit is noticed while Python polls the scheduler).
            elapsed = @elapsed @test_throws ErrorException DB.Worker(
                address;
                python = Sys.which("false"),
                timeout = 900,
            )
            @test elapsed < 120

            # Inside Pkg.test: the worker's environment must still find the stdlib.
            worker = DB.Worker(address; timeout = 900)
            @test startswith(worker.address, "tcp://127.0.0.1:")

            exec = DB.DaskExecutor(address)
            a = Dispatcher.Op(() -> 3)
            b = Dispatcher.Op(() -> 4)
            c = Dispatcher.Op(max, a, b)
            results = DB.run!(exec, Dispatcher.DispatchGraph(c); timeout = RUN_TIMEOUT)
            @test fetch(ResultTypes.unwrap(results[1])) == 4
            @test fetch(a) == 3 # an intermediate has its result too

            # The seed's "do" example, with named Main functions (@everywhere above).
            A = [Dispatcher.Op(slowinc, i) for i in [1, 2, 3]]
            B = [Dispatcher.Op(slowadd, x, 10) for x in A]
            C = [Dispatcher.Op(slowadd, x, 100) for x in A]
            total = Dispatcher.Op(
                +,
                Dispatcher.Op(slowsum, A...),
                Dispatcher.Op(slowsum, B...),
                Dispatcher.Op(slowsum, C...),
            )
            (r,) = DB.run!(exec, [total]; timeout = RUN_TIMEOUT)
            @test fetch(ResultTypes.unwrap(r)) == 357
            @test fetch(A[1]) == 2 && fetch(B[3]) == 14
            (ro,) = DB.run!(
                exec,
                (Dispatcher.Op(offset, 1),);
                timeout = RUN_TIMEOUT,
            ) # a Tuple
            @test fetch(ResultTypes.unwrap(ro)) == 101

            # An output listed twice.
            twice = Dispatcher.Op(slowinc, 1)
            rs = DB.run!(exec, [twice, twice]; timeout = RUN_TIMEOUT)
            @test fetch(ResultTypes.unwrap(rs[1])) == fetch(ResultTypes.unwrap(rs[2])) == 2

            # A worker that joins later has the @everywhere code too.
            late = DB.Worker(address; timeout = 900)
            try
                op = Dispatcher.Op(slowadd, 40, 2)
                client = exec.client
                DB.submit(client, op; workers = [DB.Address(late.address)])
                @test DB.gather(client, [op]) == [42]
            finally
                DB.shutdown(late)
            end

            # A named Main function no @everywhere defines fails before submission.
            @test_throws DB.UnavailableFunctionError DB.run!(
                exec,
                [Dispatcher.Op(local_only, 1)];
                timeout = RUN_TIMEOUT,
            )

            # ... and so does one passed as an argument, composed, or held by data.
            for node in (
                    Dispatcher.Op(map, local_only, [1, 2]),
                    Dispatcher.Op(local_only ∘ slowinc, 1),
                    Dispatcher.Op(Base.Fix2(local_only, 1)),
                    Dispatcher.DataNode(Scale(2)),
                    Dispatcher.Op(slowsum, Dispatcher.DataNode(1); w = Scale(1)),
                    Dispatcher.Op(DB.PyFunc(pybuiltins.repr), Scale(2)),
                )
                @test_throws DB.UnavailableFunctionError DB.run!(
                    exec,
                    [node];
                    timeout = RUN_TIMEOUT,
                )
            end

            # IndexNode: Julia's getindex on the Julia value, 1-based.
            mat = Dispatcher.Op(() -> [1 2; 3 4])
            nt = Dispatcher.Op(() -> (a = 10, b = 20))
            dict = Dispatcher.Op(() -> Dict(1 => "one", 2 => "two"))
            str = Dispatcher.Op(() -> "héllo")
            tup = Dispatcher.Op(() -> divrem(5, 2))
            q, rem = tup
            idx = [
                Dispatcher.IndexNode(mat, 2),
                Dispatcher.IndexNode(nt, 2),
                Dispatcher.IndexNode(dict, 1),
                Dispatcher.IndexNode(str, 1),
                q,
                rem,
            ]
            rs = DB.run!(exec, idx; timeout = RUN_TIMEOUT)
            @test [fetch(ResultTypes.unwrap(x)) for x in rs] == [3, 20, "one", 'h', 2, 1]

            # Errors: the node that failed, and its dependents (Dispatcher's ids).
            bad = Dispatcher.Op(x -> error("boom $(x)"), 1)
            after = Dispatcher.Op(slowinc, bad)
            (rb, ra) = DB.run!(
                exec,
                [bad, after];
                throw_error = false,
                timeout = RUN_TIMEOUT,
            )
            dep = ResultTypes.unwrap_error(rb)
            @test dep isa Dispatcher.DependencyError
            @test dep.err isa DB.RemoteTaskError
            @test dep.err.jltype == "ErrorException"
            @test occursin("boom 1", dep.err.message)
            graph = Dispatcher.DispatchGraph([bad, after])
            @test dep.id == graph.nodes[bad]
            dep_after = ResultTypes.unwrap_error(ra)
            @test dep_after.err === dep # did not run: the upstream error
            @test dep_after.id == graph.nodes[after]
            @test_throws Dispatcher.DependencyError fetch(after) # filled, not blocking
            @test_throws Dispatcher.DependencyError DB.run!(
                exec,
                [bad];
                timeout = RUN_TIMEOUT,
            )

            pyerr = Dispatcher.Op(DB.PyFunc(pyimport("operator").truediv), 1, 0)
            @test pyerr.label == "truediv"
            (rp,) = DB.run!(exec, [pyerr]; throw_error = false, timeout = RUN_TIMEOUT)
            @test ResultTypes.unwrap_error(rp).err isa PyException

            client = DB.Client(address)
            op = Dispatcher.Op(Int, 2.0)
            DB.submit(client, op)
            @test DB.gather(client, [op]) == [2]
            @test DB.get_key(op) == DB.get_key(Dispatcher.Op(Int, 2.0))
            @test DB.get_key(op) != DB.get_key(Dispatcher.Op(Int, 3.0))
            DB.cancel(client, [op])
            DB.shutdown(client)
            DB.reset!(exec)
        finally
            worker === nothing || DB.shutdown(worker)
            kill(scheduler)
            timedwait(() -> !process_running(scheduler), 30.0)
        end
    end
end
