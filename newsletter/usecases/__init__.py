"""Use cases: the life of an issue, sending, building and checking; one home for each rule."""
