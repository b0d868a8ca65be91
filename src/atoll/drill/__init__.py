"""`atoll drill`: re-enact a region outage against a live local cluster under a recorded
workload, and prove that nothing acknowledged was lost.

runner.py      one scenario's timeline: cluster up, workload, fault, heal, read back, check
cluster.py     the regions (fresh processes or a running cluster) and the simulated DNS
ports.py       loopback ports for listeners named before they bind
faultproxy.py  TCP proxies in front of peer endpoints: cuts, one-way cuts, latency, loss
workload.py    client threads and the operation record (`Operation`, `Recorder`)
lag.py         replication lag sampled from the regions while the drill runs
contents.py    the regions' final contents, convergence and conflict logs
checker.py     the invariants, from the operation record and the regions' contents (pure)
figures.py     availability, failover time, the timeline: the scenario's result (pure)
report.py      terminal summary, drill.json, drill.html (inline SVG timeline)
"""
