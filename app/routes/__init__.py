"""HTTP routes, one module per resource; each only parses, calls the data plane or registry, and returns."""
