"""The approval queue: park, decide, execute once, deliver."""
