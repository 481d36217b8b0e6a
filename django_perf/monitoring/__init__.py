"""Request, system and memory metrics gathered across every worker process."""
