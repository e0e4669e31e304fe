"""SafePusher: Pusher with an infra check before the push, an atomic versioned push and a
model card (model_card.md / model_card.json) next to every pushed version."""
