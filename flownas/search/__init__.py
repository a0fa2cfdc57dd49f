"""Search strategies (ask/tell), registered by name, and the search loop."""
