"""Generation: backends, the world engine and the geometry preview."""
