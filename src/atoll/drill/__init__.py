"""`atoll drill`: re-enact a region outage against a live local cluster under a recorded
workload, and prove that nothing acknowledged was lost.

faultproxy.py  TCP proxies in front of peer endpoints: cuts, one-way cuts, latency, loss
runner.py      the cluster, the workload through failover clients, the scenarios
checker.py     the invariants, from the operation record and the regions' contents (pure)
report.py      terminal summary, drill.json, drill.html (inline SVG timeline)
"""
