# A graph file for `pydispatch run` (needs juliacall, and workers that run Julia):
#   pydispatch worker 127.0.0.1:8786 --julia &
#   pydispatch run examples/julia/graph.jl --scheduler 127.0.0.1:8786
# Julia evaluates this file in Main; `outputs` names the nodes to run.
import Dispatcher

three = Dispatcher.Op(() -> 3)
four = Dispatcher.Op(() -> 4)
outputs = [Dispatcher.Op(max, three, four)]
