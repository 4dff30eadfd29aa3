"""Customer-service chat bot worker: intent, confidence, reply, fallback and hand-off to a human."""
