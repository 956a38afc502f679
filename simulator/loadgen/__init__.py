"""The load generator: many simulated terminals against the host over real mutual TLS, with faults.

Modules (imported on demand; nothing runs at import):

- :mod:`~simulator.loadgen.run`: :func:`~simulator.loadgen.run.run_load`, a whole run and its report;
- :mod:`~simulator.loadgen.sim_terminal`: one simulated terminal (payments, SAF, reversals, settlement);
- :mod:`~simulator.loadgen.books`: its journal in memory and the comparison with the host's records;
- :mod:`~simulator.loadgen.cards`: the customers' cards, tapped through the terminal's kernels (real ARQCs);
- :mod:`~simulator.loadgen.fleet`: bulk enrolment, each terminal's certificate and TLS context;
- :mod:`~simulator.loadgen.https`: the light asyncio HTTPS client (TLS 1.3, h11);
- :mod:`~simulator.loadgen.schedule`: faults switched during the run;
- :mod:`~simulator.loadgen.stats`: latencies, outcomes, errors by kind;
- :mod:`~simulator.loadgen.cli`: ``posterm host load``.
"""

__all__: list[str] = []
