# Run with `julia --project=julia/DispatchBridge -e 'using Pkg; Pkg.test()'`, with
# JULIA_CONDAPKG_BACKEND=Null and JULIA_PYTHONCALL_EXE pointing at a Python that
# has pydispatch (and juliacall) installed. Starts its own dask scheduler.
import Dispatcher
import DispatchBridge
import ResultTypes
using PythonCall: PyException, pyconvert, pyimport
using Sockets: IPv4
using Test: @test, @test_throws, @testset

const DB = DispatchBridge

roundtrip(x) = DB.fromtagged(DB.hostapi().to_julia(DB.hostapi().decode(DB.totagged(x))))

@testset "DispatchBridge" begin
    @testset "conversions through Python and back" begin
        for x in (
                nothing,
                true,
                3,
                2.5,
                1 + 2im,
                big(2)^70,
                3 // 4,
                "héllo",
                (1, "a"),
                [1, 2, 3],
            )
            @test isequal(roundtrip(x), x)
        end
        @test roundtrip(Float32(1.5)) === Float32(1.5)
        @test roundtrip(:sym) == "sym"
        @test roundtrip(Dict("a" => 1, "b" => 2)) == Dict("a" => 1, "b" => 2)
        m = reshape(collect(1.0:6.0), 2, 3)
        @test roundtrip(m) == m
        @test size(roundtrip(m)) == (2, 3)
        @test roundtrip(Any[1, "x"]) == Any[1, "x"]
        nt = (a = 1, b = [1.0])
        @test roundtrip(nt) == Dict("a" => 1, "b" => [1.0])
        @test roundtrip(IPv4(127, 0, 0, 1)) == IPv4(127, 0, 0, 1) # a blob
    end

    @testset "function references and invoke_task" begin
        @test DB.funcref(max) == ("Base.max", "")
        @test DB.funcref(x -> x) === nothing
        box = pyimport("pydispatch.julia.backends")._Box
        spec = DB.funcspec(max)
        args = [DB.totagged(3), DB.totagged(4)]
        out = DB.invoke_task(box((spec, args, [])))
        @test DB.fromtagged(out) == 4
        closure = let k = 10
            x -> x + k
        end
        out = DB.invoke_task(box((DB.funcspec(closure), [DB.totagged(1)], [])))
        @test DB.fromtagged(out) == 11
        err = DB.invoke_task(box((DB.funcspec(sqrt), [DB.totagged(-1.0)], [])))
        @test pyconvert(String, err[0]) == "error"
        @test pyconvert(String, err[1]) == "DomainError"
    end

    @testset "Address" begin
        a = DB.Address("tcp://127.0.0.1:8786")
        @test (a.scheme, a.host, a.port) == ("tcp", "127.0.0.1", 8786)
        @test string(DB.Address(IPv4(127, 0, 0, 1), 9000)) == "tcp://127.0.0.1:9000"
        @test_throws PyException DB.Address("tcp://nope:notaport")
    end

    @testset "on a dask cluster" begin
        port = 20000 + rand(0:20000)
        address = "127.0.0.1:$(port)"
        python = pyconvert(String, pyimport("sys").executable)
        scheduler = run(
            `$(python) -m distributed.cli.dask_scheduler --host 127.0.0.1 --port $(port) --no-dashboard`;
            wait = false,
        )
        worker = nothing
        try
            worker = DB.Worker(address; timeout = 600)
            @test startswith(worker.address, "tcp://127.0.0.1:")

            exec = DB.DaskExecutor(address)
            a = Dispatcher.Op(() -> 3)
            b = Dispatcher.Op(() -> 4)
            c = Dispatcher.Op(max, a, b)
            results = DB.run!(exec, Dispatcher.DispatchGraph(c))
            @test fetch(ResultTypes.unwrap(results[1])) == 4

            slowadd(x, y) = x + y
            slowinc(x) = x + 1
            slowsum(a...) = sum(a)
            A = [Dispatcher.Op(slowinc, i) for i in [1, 2, 3]]
            B = [Dispatcher.Op(slowadd, x, 10) for x in A]
            C = [Dispatcher.Op(slowadd, x, 100) for x in A]
            total = Dispatcher.Op(
                +,
                Dispatcher.Op(slowsum, A...),
                Dispatcher.Op(slowsum, B...),
                Dispatcher.Op(slowsum, C...),
            )
            (r,) = DB.run!(exec, [total])
            @test fetch(ResultTypes.unwrap(r)) == 357

            bad = Dispatcher.Op(x -> error("boom $(x)"), 1)
            (rb,) = DB.run!(exec, [bad]; throw_error = false)
            dep = ResultTypes.unwrap_error(rb)
            @test dep isa Dispatcher.DependencyError
            @test dep.err isa DB.RemoteTaskError
            @test dep.err.jltype == "ErrorException"
            @test occursin("boom 1", dep.err.message)
            @test_throws Dispatcher.DependencyError DB.run!(exec, [bad])

            pyerr = Dispatcher.Op(DB.PyFunc(pyimport("operator").truediv), 1, 0)
            (rp,) = DB.run!(exec, [pyerr]; throw_error = false)
            @test ResultTypes.unwrap_error(rp).err isa PyException

            client = DB.Client(address)
            op = Dispatcher.Op(Int, 2.0)
            DB.submit(client, op)
            @test DB.gather(client, [op]) == [2]
            @test DB.get_key(op) == DB.get_key(op)
            DB.cancel(client, [op])
            DB.shutdown(client)
            DB.reset!(exec)
        finally
            worker === nothing || DB.shutdown(worker)
            kill(scheduler)
            wait(scheduler)
        end
    end
end
