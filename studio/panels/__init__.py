"""The studio's dock panels: inspector, rounds and prompts, entities and monitors, players."""
