# A graph file for `pydispatch run` (needs juliacall, and workers that run Julia):
#   pydispatch worker 127.0.0.1:8786 --julia &
#   pydispatch run examples/julia/graph.jl --scheduler 127.0.0.1:8786
# Julia evaluates this file in Main, here and on every worker (so its named
# functions exist there); `outputs` names the nodes to run. Keep such a file to
# definitions: it runs on every worker too.
import Dispatcher

double(x) = 2x
three = Dispatcher.Op(() -> 3)
four = Dispatcher.Op(() -> 4)
outputs = [Dispatcher.Op(max, three, four), Dispatcher.Op(double, three)]
