"""The virtual world: discrete-event engine, workload models and a simulated PBX."""
