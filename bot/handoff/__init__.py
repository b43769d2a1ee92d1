"""Human handoff: when to hand over, the context packet, the queue, the agents and the desk webhook."""
