"""Payment providers behind one interface: a registry, and one adapter per wire dialect."""
