"""ccd's inbound brain: agents, queues, routing, service-level statistics and Erlang maths.

IO-free by rule (DESIGN §2): nothing here touches sockets, asyncio, files or the wall
clock, so the live service and the simulator drive exactly the same code.
"""
